"""One-time preview links for outside experts, against a real PostgreSQL (app/experts/store.py):
a link opens once, before it expires; a wrong, expired or used token gets nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
import pytest_asyncio
from psycopg_pool import AsyncConnectionPool

from app.adapters.db import migrate
from app.domain.experts import Directory, Expert, ExpertGroup
from app.experts.service import ExpertError, ExpertService, token_hash
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


async def test_experts_added_and_removed_over_the_api_are_kept_and_drop_their_old_changes(
    store: ExpertStore,
) -> None:
    await store.save_expert_changes("wu", {"max_calls": 3}, "lead", NOW)
    await store.save_roster("wu", {"id": "wu", "name": "Wu", "number": "139"}, False, "lead", NOW)
    await store.save_roster("li", None, True, "admin", NOW + timedelta(seconds=1))
    assert await store.roster() == [
        ("wu", {"id": "wu", "name": "Wu", "number": "139"}, False),
        ("li", None, True),
    ]
    assert "wu" not in await store.expert_changes()  # a change to an earlier expert of that id
    await store.save_roster("wu", None, True, "lead", NOW + timedelta(seconds=2))
    assert await store.roster() == [("li", None, True), ("wu", None, True)]


async def test_the_directory_after_a_restart_has_the_experts_added_and_not_those_removed(
    store: ExpertStore,
) -> None:
    config = Directory(
        (Expert("xu", "Xu", {"mortgage": 9}, ("mortgage",), agent_id="1101"),),
        (ExpertGroup("mortgage", 15, "mortgage"),),
    )
    desk = SimpleNamespace(agents={})  # nobody signed in: the agent expert is offline
    before = ExpertService(config, desk, lambda: NOW, changes=store)
    await before.start()
    view = await before.add(
        {"id": "fan", "name": "Fan Bo", "number": "13912340007", "groups": ["mortgage"]}, "lead"
    )
    assert (view["reach"], view["state"], view["groups"]) == ("number", "ready", ["mortgage"])
    await before.change("fan", {"expertise": {"mortgage": 7}}, "lead")
    await before.remove("xu", "lead")
    with pytest.raises(ExpertError, match="exists already"):
        await before.add({"id": "fan", "name": "Fan", "number": "139"}, "lead")

    after = ExpertService(config, desk, lambda: NOW, changes=store)  # the next start, same YAML
    await after.start()
    assert [(e.id, dict(e.expertise)) for e in after.directory.experts] == [("fan", {"mortgage": 7})]
    after.outside["fan"].calls.add("00000000-0000-4000-8000-000000000001")  # on a call now
    with pytest.raises(ExpertError, match="on a call") as refused:
        await after.remove("fan", "lead")
    assert refused.value.http_status == 409
    with pytest.raises(ExpertError, match="no expert"):
        await after.remove("xu", "lead")
