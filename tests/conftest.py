"""Shared fixtures: a database per test session, the Asterisk install, artifacts."""

from __future__ import annotations

import fcntl
import os
import tempfile
import typing
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


class _MachineShare:
    """Under `make test`, two test modules run at a time (pytest-xdist). A module marked
    `alone` (many calls at once, a fax modem, a build) runs with no other module beside it, so
    that neither starves the other's phones of the CPU and a late packet is not read as lost
    audio. A reader-writer lock in a directory of this run (flock; every other module shares
    it), taken before a module's first test and given back after its last one is torn down.
    Waiting `alone` modules go first (the turnstile), so they are not starved. Taken outside
    pytest-timeout's clock: waiting for the other worker's module is not the test's time."""

    def __init__(self, run: str) -> None:
        self.dir = Path(tempfile.gettempdir()) / f"lianluo-tests-{run}"
        self.dir.mkdir(exist_ok=True)
        self.held: tuple[Path, typing.IO[str]] | None = None

    def enter(self, module: Path, alone: bool) -> None:
        if self.held is not None and self.held[0] == module:
            return
        self.leave()
        lock = (self.dir / "machine.lock").open("a")
        with (self.dir / "machine.turnstile").open("a") as turnstile:
            fcntl.flock(turnstile, fcntl.LOCK_EX)
            fcntl.flock(lock, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
        self.held = (module, lock)

    def leave(self) -> None:
        if self.held is not None:
            self.held[1].close()  # closing gives the flock back
            self.held = None


_share = _MachineShare(os.environ["PYTEST_XDIST_TESTRUNUID"]) if "PYTEST_XDIST_WORKER" in os.environ else None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Modules marked `long` (minutes each) first: the two workers take them at the start
    rather than one of them finishing the run alone with a three-minute module. Modules marked
    `alone` last: one waits only for the short module the other worker is in, not a long one."""

    def place(item: pytest.Item) -> int:
        return 0 if item.get_closest_marker("long") else 2 if item.get_closest_marker("alone") else 1

    items.sort(key=place)  # stable: otherwise as collected


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    if _share is not None:
        _share.enter(item.path, item.get_closest_marker("alone") is not None)
    yield
    if _share is not None and (nextitem is None or nextitem.path != item.path):
        _share.leave()  # the module's center is stopped by now (its teardown ran above)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Write each failure down at once: pjsua can abort the process in a later teardown,
    and pytest's own summary would then never be printed."""
    # Under pytest-xdist the controller hears every worker's report again: the worker wrote it.
    if report.failed and getattr(report, "node", None) is None:
        ARTIFACTS.mkdir(exist_ok=True)
        with (ARTIFACTS / "failures.txt").open("a") as f:
            f.write(f"=== {report.nodeid} ({report.when})\n{report.longreprtext}\n\n")
