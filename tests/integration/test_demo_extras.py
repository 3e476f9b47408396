"""What `make run` gives a newcomer beyond the calls: the demo's own mail catcher keeps what the
center e-mails (through the same sender the voicemail and fax code use), and the sample rows the
README's journeys need are there, added once, never overwriting someone's change."""

from __future__ import annotations

import mailbox
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from psycopg_pool import AsyncConnectionPool

from app.adapters.db import Store, migrate
from app.adapters.mail import MailError, send_mail
from app.adapters.mail_catcher import MailCatcher, maildir_bytes
from app.config import SmtpSettings, load_settings
from tests.support.stack import free_port, scratch_database

pytestmark = pytest.mark.asyncio(loop_scope="session")

DEMO = Path(__file__).resolve().parents[2] / "config" / "demo.yaml"


@pytest.fixture(scope="module")
def db_url() -> Iterator[str]:
    with scratch_database("lianluo_demo_extras") as url:
        yield url


@pytest_asyncio.fixture(loop_scope="session")
async def store(db_url: str) -> AsyncIterator[Store]:
    pool = AsyncConnectionPool(db_url, min_size=1, max_size=2, open=False)
    await pool.open()
    await migrate(pool)
    try:
        yield Store(pool)
    finally:
        await pool.close()


async def test_mail_the_center_sends_is_kept_in_the_catchers_maildir(tmp_path: Path) -> None:
    port = free_port()
    catcher = MailCatcher(tmp_path / "mail", port)
    catcher.start()
    try:
        await send_mail(
            SmtpSettings(host="127.0.0.1", port=port),
            ("supervisors@localhost",),
            "Voicemail from 13800000001",
            "A message was left.",
        )
    finally:
        catcher.stop()
    box = mailbox.Maildir(tmp_path / "mail", create=False)
    (message,) = list(box)
    assert message["Subject"] == "Voicemail from 13800000001"
    assert message["To"] == "supervisors@localhost"
    assert (tmp_path / "mail").stat().st_mode & 0o077 == 0  # personal data: the owner only


async def test_a_full_catcher_refuses_new_mail_and_keeps_what_it_has(tmp_path: Path) -> None:
    # Whatever reaches the loopback port cannot fill the disk: past its limit the catcher says
    # "452, try later", the sender gets a MailError (the center logs it and keeps the voicemail).
    port = free_port()
    catcher = MailCatcher(tmp_path / "mail", port, max_bytes=3000)
    catcher.start()
    smtp = SmtpSettings(host="127.0.0.1", port=port)
    try:
        await send_mail(smtp, ("qa@localhost",), "First", "x" * 1000)
        with pytest.raises(MailError, match="452"):
            await send_mail(smtp, ("qa@localhost",), "Second", "y" * 2500)
        await send_mail(smtp, ("qa@localhost",), "Small", "z")  # still room for this one
    finally:
        catcher.stop()
    subjects = sorted(m["Subject"] for m in mailbox.Maildir(tmp_path / "mail", create=False))
    assert subjects == ["First", "Small"]
    assert maildir_bytes(tmp_path / "mail") <= 3000


async def test_the_demos_sample_rows_are_added_once_and_a_change_survives_a_restart(store: Store) -> None:
    sample = load_settings(DEMO).sample_data
    assert await store.add_sample_data(sample) == len(sample.customers) + len(sample.accounts) + len(
        sample.orders
    )
    async with store.pool.connection() as conn:
        await conn.execute("UPDATE accounts SET balance = 1 WHERE account_number = '79927398713'")
    assert await store.add_sample_data(sample) == 0  # the next start
    balance = await store.self_service("account_balance", "79927398713")
    assert balance is not None and float(balance["balance"]) == 1
    assert balance["name"] == "Iris Xu (VIP)"
    order = await store.self_service("order_status", "20261203")
    assert order is not None and order["status"] == "shipped"
    vip = await store.customer_by_phone("1009")
    assert vip is not None and vip.vip
