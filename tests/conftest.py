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
