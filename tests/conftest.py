"""Shared fixtures: a database per test session, the Asterisk install, artifacts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.stack import installed_asterisk_prefix, scratch_database

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def db_url() -> Iterator[str]:
    """A fresh database for this test session, dropped afterwards."""
    with scratch_database("lianluo_test") as url:
        yield url


@pytest.fixture(scope="session")
def asterisk_prefix() -> Path:
    return installed_asterisk_prefix()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Write each failure down at once: pjsua can abort the process in a later teardown,
    and pytest's own summary would then never be printed."""
    if report.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        with (ARTIFACTS / "failures.txt").open("a") as f:
            f.write(f"=== {report.nodeid} ({report.when})\n{report.longreprtext}\n\n")
