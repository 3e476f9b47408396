"""Campaign lists and the do-not-call list: CSV in, checked rows into PostgreSQL.

A list is a CSV file with a header row: `phone` (required), `name`, `timezone` and
`language` (optional; one of the center's languages, the one the customer hears the
campaign's messages in), and any other column becomes a customer attribute the campaign's
selection rules can test (e.g. `owns_product_x`). A bad row is reported with its line and reason and
the rest are imported; importing the same list again updates names and attributes, never
resets a lead's attempts.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from app.adapters.db import Store
from app.config import CampaignSettings, Settings
from app.domain.campaign import (
    DEFAULT_RETRIES,
    CallingWindow,
    CallResult,
    CampaignRules,
    Exclusion,
    RetryRule,
    TrunkRoute,
    normalise_phone,
)


def rules_of(c: CampaignSettings, settings: Settings) -> CampaignRules:
    retries = dict(DEFAULT_RETRIES)
    for result, rule in c.retries.items():
        retries[CallResult(result)] = RetryRule(rule.after_s, rule.max_attempts)
    trunks = tuple(TrunkRoute(t.prefix, t.trunk) for t in c.trunks) or (
        TrunkRoute("", settings.carrier.name),
    )
    return CampaignRules(
        name=c.name,
        window=CallingWindow(c.window.days, c.window.start, c.window.end),
        default_timezone=c.timezone,
        retries=retries,
        max_attempts=c.max_attempts,
        lockout_after_abandon_s=c.lockout_after_abandon_s,
        exclusions=tuple(Exclusion(e.attribute, e.equals) for e in c.exclude),
        trunks=trunks,
    )


@dataclass(frozen=True)
class LeadRow:
    line: int
    phone: str
    name: str
    timezone: str | None
    attributes: dict[str, str]
    language: str | None = None


@dataclass
class ImportReport:
    rows: int = 0
    imported: int = 0
    updated: int = 0
    on_dnc_list: int = 0
    refused: list[tuple[int, str]] = field(default_factory=list)  # (line, reason)

    def summary(self) -> str:
        lines = [
            f"{self.rows} rows: {self.imported} new, {self.updated} updated, "
            f"{len(self.refused)} refused, {self.on_dnc_list} on the do-not-call list (kept, never dialled)"
        ]
        lines += [f"  line {line}: {reason}" for line, reason in self.refused[:50]]
        if len(self.refused) > 50:
            lines.append(f"  ... and {len(self.refused) - 50} more")
        return "\n".join(lines)


_OWN_COLUMNS = ("phone", "name", "timezone", "language")


def parse_leads(text: str, report: ImportReport, languages: tuple[str, ...] = ("en",)) -> list[LeadRow]:
    """The rows worth importing; each refused one is in `report` with its line and why.
    `languages`: the center's, which a row's `language` must be one of (empty: none given)."""
    reader = csv.DictReader(io.StringIO(text))
    fields = [f.strip().lower() for f in (reader.fieldnames or [])]
    if "phone" not in fields:
        raise ValueError("the first line must name the columns, one of them `phone`")
    reader.fieldnames = fields
    rows: list[LeadRow] = []
    seen: set[str] = set()
    for record in reader:
        line = reader.line_num
        report.rows += 1
        phone = normalise_phone(record.get("phone") or "")
        if phone is None:
            report.refused.append((line, f"not a phone number: {record.get('phone')!r}"))
            continue
        if phone in seen:
            report.refused.append((line, f"{phone} is already in this file"))
            continue
        tz = (record.get("timezone") or "").strip() or None
        if tz is not None:
            try:
                ZoneInfo(tz)
            except (ZoneInfoNotFoundError, ValueError):
                report.refused.append((line, f"unknown time zone {tz!r}"))
                continue
        language = (record.get("language") or "").strip().lower() or None
        if language is not None and language not in languages:
            report.refused.append(
                (line, f"language {language!r} is not one the center offers ({', '.join(languages)})")
            )
            continue
        seen.add(phone)
        attributes = {k: (v or "").strip() for k, v in record.items() if k not in _OWN_COLUMNS and k}
        rows.append(LeadRow(line, phone, (record.get("name") or "").strip(), tz, attributes, language))
    return rows


async def import_leads(
    store: Store, campaign: str, text: str, languages: tuple[str, ...] = ("en",)
) -> ImportReport:
    report = ImportReport()
    rows = parse_leads(text, report, languages)
    inserted, updated, on_dnc = await store.import_leads(
        campaign, [(r.phone, r.name, r.timezone, r.attributes, r.language) for r in rows]
    )
    report.imported, report.updated, report.on_dnc_list = inserted, updated, on_dnc
    return report


async def import_dnc(store: Store, text: str, source: str) -> tuple[int, list[tuple[int, str]]]:
    """One number per line, or a CSV whose first column is the number. (added, refused)."""
    phones: list[str] = []
    refused: list[tuple[int, str]] = []
    for line, raw in enumerate(text.splitlines(), start=1):
        cell = raw.split(",")[0].strip()
        if not cell or cell.lower() == "phone" or cell.startswith("#"):
            continue
        phone = normalise_phone(cell)
        if phone is None:
            refused.append((line, f"not a phone number: {cell!r}"))
        else:
            phones.append(phone)
    return await store.add_dnc(phones, source), refused
