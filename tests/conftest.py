"""Shared fixtures: a database per test session, the Asterisk install, artifacts."""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"


def _server_url() -> str:
    return os.environ.get("DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def db_url() -> Iterator[str]:
    """A fresh database for this test session, dropped afterwards."""
    server = _server_url()
    name = f"lianluo_test_{os.getpid()}_{secrets.token_hex(3)}"
    admin = psycopg.conninfo.make_conninfo(server, dbname="postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield psycopg.conninfo.make_conninfo(server, dbname=name)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def asterisk_prefix() -> Path:
    env = os.environ.get("LIANLUO_ASTERISK_PREFIX")
    if env:
        return Path(env)
    out = subprocess.run(
        [str(REPO / "scripts" / "install-asterisk")], check=True, stdout=subprocess.PIPE, text=True
    ).stdout
    return Path(out.strip().splitlines()[-1])
