"""Campaign lists and the do-not-call list, imported from CSV into a real PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg

from tests.support.stack import REPO

CENTER = """
carrier: {outbound_contact: "sip:127.0.0.2:5062"}
queues: [{name: general}]
campaigns:
  - name: list-import
    queue: general
    exclude: [{attribute: owns_product_x, equals: "yes"}]
"""


def run(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        cwd=REPO,
        env={**os.environ, "DATABASE_URL": db_url},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_leads_and_dnc_import_report_every_bad_row_and_keep_attempts(db_url: str, tmp_path: Path) -> None:
    (tmp_path / "center.yaml").write_text(CENTER)
    config = str(tmp_path / "center.yaml")
    dnc = "# numbers that asked not to be called\n+86 138 0000 0003\nnot-a-number\n"
    (tmp_path / "dnc.txt").write_text(dnc)
    done = run(db_url, "import-dnc", "--config", config, str(tmp_path / "dnc.txt"))
    assert done.returncode == 0, done.stderr
    assert "1 numbers added" in done.stdout and "line 3: not a phone number" in done.stdout

    (tmp_path / "leads.csv").write_text(
        "phone,name,timezone,owns_product_x\n"
        "13800000001,Li Na,Asia/Shanghai,no\n"
        "+8613800000003,Wang Wei,,yes\n"
        "call me,Nobody,,no\n"
        "13800000004,Zhou,Mars/Olympus,no\n"
        "13800000001,Li Na again,,no\n"
    )
    done = run(db_url, "import-leads", "--config", config, "list-import", str(tmp_path / "leads.csv"))
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "5 rows: 2 new, 0 updated, 3 refused, 1 on the do-not-call list" in out, out
    assert "line 4: not a phone number" in out and "line 5: unknown time zone 'Mars/Olympus'" in out
    assert "line 6: 13800000001 is already in this file" in out

    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE campaign_leads SET attempts = 2 WHERE campaign = 'list-import' AND phone = '13800000001'"
        )
    (tmp_path / "again.csv").write_text("phone,name\n13800000001,Li Na (renewed)\n")
    done = run(db_url, "import-leads", "--config", config, "list-import", str(tmp_path / "again.csv"))
    assert "1 rows: 0 new, 1 updated" in done.stdout, done.stdout
    with psycopg.connect(db_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT phone, name, timezone, attributes, attempts, status FROM campaign_leads"
            " WHERE campaign = 'list-import' ORDER BY phone"
        ).fetchall()
    assert rows == [
        ("+8613800000003", "Wang Wei", None, {"owns_product_x": "yes"}, 0, "pending"),
        ("13800000001", "Li Na (renewed)", None, {}, 2, "pending"),
    ]

    unknown = run(db_url, "import-leads", "--config", config, "nope", str(tmp_path / "leads.csv"))
    assert unknown.returncode == 2 and "no campaign 'nope'" in unknown.stderr
    no_phone = tmp_path / "bad.csv"
    no_phone.write_text("name\nLi\n")
    bad = run(db_url, "import-leads", "--config", config, "list-import", str(no_phone))
    assert bad.returncode == 2 and "`phone`" in bad.stderr
