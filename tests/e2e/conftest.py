"""End-to-end fixtures: one running Lianluo per test module, real SIP phones per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.audio import write_tone
from tests.support.calls import AGENT_TONE_HZ, CALLER_TONE_HZ
from tests.support.sip_phone import PhoneLab
from tests.support.stack import Stack, scratch_database, write_config


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory,
    asterisk_prefix: Path,
    artifacts: Path,
    request: pytest.FixtureRequest,
) -> Iterator[Stack]:
    name = request.module.__name__.rsplit(".", 1)[-1]
    d = tmp_path_factory.mktemp(name)
    # A test module may shape its contact center with a module-level STACK_CONFIG.
    settings = write_config(d / "center.yaml", d / "var", **getattr(request.module, "STACK_CONFIG", {}))
    # Each module's center has a database of its own: a center restores its agents and its
    # queues' statistics from its history at start, and another module's history is not its own.
    with scratch_database(f"lianluo_{name}"[:40]) as db_url:
        s = Stack(d / "center.yaml", d / "var", db_url, asterisk_prefix, artifacts / f"{name}.log", settings)
        s.start()
        yield s
        assert s.stop() == 0, s.tail()
        assert s.asterisk_pids() == [], "Asterisk still running after the app stopped"


@pytest.fixture
def lab(artifacts: Path, request: pytest.FixtureRequest) -> Iterator[PhoneLab]:
    log_dir = artifacts / "pjsua" / request.node.module.__name__.rsplit(".", 1)[-1] / request.node.name
    log_dir.mkdir(parents=True, exist_ok=True)
    with PhoneLab(log_dir=log_dir) as lab:
        yield lab


@pytest.fixture
def tones(tmp_path: Path) -> tuple[Path, Path]:
    """(caller's tone, agent's tone): each side plays its own frequency."""
    caller, agent = tmp_path / "caller-tone.wav", tmp_path / "agent-tone.wav"
    write_tone(caller, CALLER_TONE_HZ, 60)
    write_tone(agent, AGENT_TONE_HZ, 60)
    return caller, agent
