"""The demo's sample list (config/leads-sample.csv, used by the README's outbound walk-through)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from app.config import load_settings
from app.dialer.lists import ImportReport, parse_leads
from app.domain.outbound import OutboundPolicy, Purpose


def test_the_demos_sample_leads_import_cleanly_and_are_all_numbers_the_demo_may_dial() -> None:
    repo = Path(__file__).resolve().parents[2]
    settings = load_settings(repo / "config" / "demo.yaml")
    report = ImportReport()
    text = (repo / "config" / "leads-sample.csv").read_text(encoding="utf-8")
    rows = parse_leads(text, report, settings.languages)
    assert report.refused == [] and len(rows) == 5
    assert [r.language for r in rows] == ["zh", "zh", None, "en", None]
    assert all("language" not in r.attributes for r in rows)
    policy = OutboundPolicy(settings.outbound.dial_plan())
    now = datetime(2026, 12, 3, 10, tzinfo=UTC)
    assert [policy.check(r.phone, Purpose.DIALER, "carrier", now) for r in rows] == [None] * 5
