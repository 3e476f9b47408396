"""A day of a center written straight into its tables (interactions and their events, agent
state changes, callbacks, voicemails, dial attempts), in Shanghai's time zone, for the report
tests (tests/integration/test_reports.py, tests/e2e/test_reports.py) to read back."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from psycopg.types.json import Jsonb

ZONE = ZoneInfo("Asia/Shanghai")
DAY = "2026-11-30"  # a Monday; its 10:00 in Shanghai is 02:00 UTC


def local(hms: str, day: str = DAY) -> datetime:
    return datetime.fromisoformat(f"{day}T{hms}").replace(tzinfo=ZONE)


async def write_day(db_url: str) -> None:
    """A morning of the center: three callers through the menu (one answered after 20 s and
    served 300 s, one giving up after 60 s, one hanging up in the menu), a voicemail, a
    callback, Alice's day, and a campaign's dials; and a replay of a recorded call
    (`python -m app replay`), which no report counts."""
    a, b, c, d, r = (str(uuid.uuid4()) for _ in range(5))
    interactions = [
        (a, local("10:00:00"), local("10:05:30"), "completed", "general"),
        (b, local("10:00:40"), local("10:02:00"), "abandoned", "general"),
        (c, local("10:02:00"), local("10:03:00"), "hung_up_in_ivr", None),
        (d, local("10:19:00"), local("10:20:30"), "voicemail", "general"),
        (r, local("10:30:00"), local("10:30:10"), "replayed", None),
    ]
    events: list[tuple[str, datetime, str, dict[str, Any]]] = [
        (a, local("10:00:00"), "flow", {"name": "main"}),
        (a, local("10:00:08"), "menu_choice", {"menu": "welcome", "key": "1", "to": "general"}),
        (a, local("10:00:10"), "queued", {"queue": "general", "tier": "medium"}),
        (a, local("10:00:30"), "connected", {"agent_id": "1001"}),
        (a, local("10:05:30"), "ended", {"outcome": "completed"}),
        (b, local("10:00:40"), "flow", {"name": "main"}),
        (b, local("10:00:55"), "menu_choice", {"menu": "welcome", "key": "1", "to": "general"}),
        (b, local("10:01:00"), "queued", {"queue": "general", "tier": "medium"}),
        (b, local("10:02:00"), "ended", {"outcome": "abandoned"}),
        (c, local("10:02:00"), "flow", {"name": "main"}),
        (c, local("10:02:20"), "prompt_played", {"prompt": "welcome", "attempt": 1}),
        (c, local("10:03:00"), "ended", {"outcome": "hung_up_in_ivr"}),
        (d, local("10:19:00"), "flow", {"name": "main"}),
        (d, local("10:19:10"), "menu_choice", {"menu": "welcome", "key": "9", "to": "messages"}),
        (d, local("10:19:20"), "voicemail_started", {"queue": "general"}),
        (d, local("10:20:30"), "ended", {"outcome": "voicemail"}),
        (r, local("10:30:00"), "flow", {"name": "main"}),
        (r, local("10:30:00"), "replay", {"of": a.replace("-", ""), "nonce": "ab12"}),
        (r, local("10:30:08"), "menu_choice", {"menu": "welcome", "key": "9", "to": "messages"}),
        (r, local("10:30:10"), "ended", {"outcome": "replayed", "stopped_at": "voicemail"}),
    ]
    states = [
        ("1001", local("09:00:00"), "logged_out", "ready", None),
        ("1001", local("10:00:30"), "ready", "on_call", None),
        ("1001", local("10:05:30"), "on_call", "wrap_up", None),
        ("1001", local("10:06:00"), "wrap_up", "not_ready", "lunch"),
        ("1001", local("11:00:00"), "not_ready", "logged_out", None),
    ]
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn, conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO interactions (id, ani, dnis, phase, arrived_at, ended_at, outcome, queue)"
            " VALUES (%s, '13800000001', '7000', 'ended', %s, %s, %s, %s)",
            interactions,
        )
        await cur.executemany(
            "INSERT INTO interaction_events (interaction_id, at, kind, data) VALUES (%s, %s, %s, %s)",
            [(i, at, kind, Jsonb(data)) for i, at, kind, data in events],
        )
        await cur.executemany(
            "INSERT INTO agent_state_events (agent_id, at, from_state, to_state, reason)"
            " VALUES (%s, %s, %s, %s, %s)",
            states,
        )
        callback = str(uuid.uuid4())
        await cur.execute(
            "INSERT INTO callbacks (id, phone, queue, source, place_at, requested_at, status, attempts,"
            " updated_at) VALUES (%s, '13800000001', 'general', 'ivr', %s, %s, 'completed', 1, %s)",
            (callback, local("10:01:00"), local("10:02:00"), local("10:12:00")),
        )
        await cur.execute(
            "INSERT INTO voicemails (id, interaction_id, phone, queue, recorded_at, duration_s, file_path,"
            " size_bytes) VALUES (%s, %s, '13800000001', 'general', %s, 12.5, '/nowhere.wav', 1000)",
            (str(uuid.uuid4()), d, local("10:20:00")),
        )
        dials = [
            (local("14:00:00"), "connected", True, False),
            (local("14:01:00"), "abandoned", True, True),
            (local("14:02:00"), "no_answer", False, False),
            (local("14:03:00"), "no_answer", False, False),
            (local("14:00:00", "2026-11-10"), "connected", True, False),  # in the 30 days
        ]
        await cur.executemany(
            "INSERT INTO dial_attempts (id, campaign, phone, trunk, started_at, result, live_answer,"
            " abandoned) VALUES (%s, 'renewals', '13900000000', 'carrier', %s, %s, %s, %s)",
            [(str(uuid.uuid4()), *row) for row in dials],
        )
