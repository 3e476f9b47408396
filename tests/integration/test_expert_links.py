"""One-time preview links for outside experts, against a real PostgreSQL (app/experts/store.py):
a link opens once, before it expires; a wrong, expired or used token gets nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest_asyncio
from psycopg_pool import AsyncConnectionPool

from app.adapters.db import migrate
from app.experts.service import token_hash
from app.experts.store import ExpertStore
from tests.support.stack import scratch_database

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
PREVIEW = {"note": "early repayment", "customer": {"ani": "13700000001"}}


@pytest_asyncio.fixture(scope="module")
async def store() -> AsyncIterator[ExpertStore]:
    with scratch_database("lianluo_links") as url:
        pool = AsyncConnectionPool(url, min_size=1, max_size=2, open=False)
        await pool.open(wait=True, timeout=15)
        try:
            await migrate(pool)
            yield ExpertStore(pool)
        finally:
            await pool.close()


async def test_a_link_opens_once_before_it_expires(store: ExpertStore) -> None:
    await store.create_link(
        token_hash("good-token"), "it-1", "zhou", PREVIEW, NOW, NOW + timedelta(seconds=60)
    )
    assert await store.open_link(token_hash("wrong-token"), NOW) is None
    assert await store.open_link(token_hash("good-token"), NOW + timedelta(seconds=10)) == PREVIEW
    assert await store.open_link(token_hash("good-token"), NOW + timedelta(seconds=11)) is None, (
        "one look only"
    )


async def test_an_expired_link_reveals_nothing(store: ExpertStore) -> None:
    await store.create_link(
        token_hash("late-token"), "it-2", "zhou", PREVIEW, NOW, NOW + timedelta(seconds=60)
    )
    assert await store.open_link(token_hash("late-token"), NOW + timedelta(seconds=60)) is None


async def test_changes_made_over_the_api_are_kept_and_merged(store: ExpertStore) -> None:
    await store.save_expert_changes("zhou", {"expertise": {"mortgage": 8}}, "lead", NOW)
    await store.save_expert_changes("zhou", {"max_calls": 2}, "lead", NOW + timedelta(seconds=1))
    await store.save_expert_changes(
        "zhou", {"expertise": {"repairs": 5}}, "admin", NOW + timedelta(seconds=2)
    )
    assert await store.expert_changes() == {"zhou": {"expertise": {"repairs": 5}, "max_calls": 2}}
