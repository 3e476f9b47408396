"""Bad configuration stops start-up with a clear message; nothing half-started stays."""

from __future__ import annotations

import contextlib
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support.stack import REPO, asterisk_pids_for, write_config

pytestmark = pytest.mark.e2e


def run_app(config: Path, env: dict[str, str], timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", "run", "--config", str(config)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


@contextlib.contextmanager
def squatting(port: int) -> Iterator[None]:
    """Another program holds this loopback port (listening, never answering)."""
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        yield


@pytest.fixture
def env(db_url: str, asterisk_prefix: Path) -> dict[str, str]:
    import os

    return {**os.environ, "DATABASE_URL": db_url, "LIANLUO_ASTERISK_PREFIX": str(asterisk_prefix)}


@pytest.mark.parametrize(
    ("old", "new", "field", "words"),
    [
        ("sip_port:", "sip_prot:", "asterisk.sip_prot", "unknown field"),
        ("ring_timeout_s: 8", "ring_timeout_s: soon", "queues[0].ring_timeout_s", "expected a number"),
        ("agents:", "agents: [", "", "malformed YAML"),
    ],
    ids=["unknown-field", "wrong-type", "malformed-yaml"],
)
def test_bad_config_stops_start_up_naming_file_line_and_field(
    tmp_path: Path, env: dict[str, str], old: str, new: str, field: str, words: str
) -> None:
    cfg = tmp_path / "center.yaml"
    write_config(cfg, tmp_path / "var")
    text = cfg.read_text()
    assert old in text
    cfg.write_text(text.replace(old, new, 1))
    result = run_app(cfg, env)
    assert result.returncode == 2, result.stderr
    message = result.stderr.strip().splitlines()[-1]
    assert re.search(rf"{re.escape(str(cfg))}:\d+: {re.escape(field)}", message), message
    assert words in message, message
    assert not (tmp_path / "var").exists(), "nothing may start before the config is valid"


def test_failure_after_asterisk_started_leaves_nothing_running(tmp_path: Path, env: dict[str, str]) -> None:
    cfg = tmp_path / "center.yaml"
    settings = write_config(cfg, tmp_path / "var")
    # Something else holds the AMI port: the last step of start-up (AMI login) fails,
    # after Asterisk, the database and ARI are up.
    with squatting(settings["asterisk"]["ami_port"]):
        result = run_app(cfg, env)
    assert result.returncode != 0
    assert "start-up failed" in result.stderr, result.stderr[-2000:]
    assert "Asterisk fully booted" in result.stderr, "the failure should come after Asterisk started"
    assert asterisk_pids_for(tmp_path / "var") == [], "Asterisk left running after a failed start"
    assert yaml.safe_load((tmp_path / "var" / "secrets.yaml").read_text())["ari_password"]


def test_busy_web_port_fails_before_anything_starts(tmp_path: Path, env: dict[str, str]) -> None:
    cfg = tmp_path / "center.yaml"
    settings = write_config(cfg, tmp_path / "var")
    with squatting(settings["web"]["port"]):
        result = run_app(cfg, env)
    assert result.returncode == 1
    assert f"web.port 127.0.0.1:{settings['web']['port']}: Address already in use" in result.stderr
    assert "Lianluo is running" not in result.stdout
    assert "starting Asterisk" not in result.stderr
