"""The domain stays pure: no asyncio, no I/O libraries."""

from __future__ import annotations

import ast
from pathlib import Path

DOMAIN = Path(__file__).resolve().parents[2] / "app" / "domain"
FORBIDDEN = {
    "asyncio",
    "aiohttp",
    "panoramisk",
    "psycopg",
    "psycopg_pool",
    "socket",
    "subprocess",
    "requests",
}


def test_domain_imports_no_io() -> None:
    offenders = []
    for path in DOMAIN.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                if (
                    name.split(".")[0] in FORBIDDEN
                    or name.startswith("app.adapters")
                    or name.startswith("app.flows")
                ):
                    offenders.append(f"{path.name}: {name}")
    assert not offenders, offenders
