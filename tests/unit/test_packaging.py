"""The containers and CI use the same install scripts and configuration as a developer's machine."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from app.config import load_settings

REPO = Path(__file__).resolve().parents[2]


def test_dockerfile_builds_asterisk_with_the_project_script_and_starts_nothing_to_build() -> None:
    text = (REPO / "docker" / "Dockerfile").read_text()
    run_lines = [line for line in text.splitlines() if line.startswith("RUN ")]
    # The Asterisk stage: a copy of this machine's build, or the same script as `make run`.
    assert "scripts/install-asterisk" in text
    assert any("/build/prebuilt/asterisk" in line for line in run_lines + text.splitlines())
    # The base is a build argument (a made base where no registry answers), Docker Hub's by default.
    assert "ARG BASE=debian:bookworm" in text and "FROM ${BASE}" in text
    # No build at start: the container's command is a role of the entrypoint, not make.
    assert 'ENTRYPOINT ["/srv/lianluo/docker/entrypoint"]' in text
    assert "make run" not in text.split("ENTRYPOINT")[1]
    for script in ("setup", "install-asterisk", "ensure-postgres", "containers"):
        assert os.access(REPO / "scripts" / script, os.X_OK), script
    assert os.access(REPO / "docker" / "entrypoint", os.X_OK)


def test_compose_file_matches_the_container_configuration() -> None:
    compose = yaml.safe_load((REPO / "docker" / "compose.yaml").read_text())
    settings = load_settings(REPO / "config" / "container.yaml")
    services = compose["services"]
    assert set(services) == {"postgres", "asterisk", "app", "smtp", "agent1001", "agent1002", "caller"}
    for name, service in services.items():
        assert service["healthcheck"]["test"][:3] == ["CMD", "/srv/lianluo/docker/entrypoint", "health"], name
        assert service["networks"] == ["center"] or set(service["networks"]) == {"center"}, name
        assert service["restart"] == "unless-stopped", name  # a part that dies comes back
    # Only the documented ports are published: SIP, RTP and the panel.
    published = {
        name: [p.rsplit(":", 1)[1] for p in service.get("ports", [])] for name, service in services.items()
    }
    a = settings.asterisk
    assert published.pop("asterisk") == ["5060/udp", "5060/tcp", f"{a.rtp_start}-{a.rtp_end}/udp"]
    assert published.pop("app") == [f"{settings.web.port}/tcp"]
    assert all(ports == [] for ports in published.values()), published
    # The caller is the carrier trunk, known by its fixed address.
    assert list(settings.carrier.match) == [services["caller"]["networks"]["center"]["ipv4_address"]]
    # Services reach each other by name; Asterisk is its own container, never started by the app.
    assert (a.host, a.api_bind, a.sip_bind, a.manage) == ("asterisk", "0.0.0.0", "0.0.0.0", False)
    assert settings.voicemail.smtp.host == "smtp" and settings.web.host == "0.0.0.0"
    assert a.sip_port == 5060 and settings.web.port == 8080


def _compose_spec_problems(compose: Path) -> str:
    """What the Compose Specification's JSON schema (the one Docker Compose v2 validates with,
    as check-jsonschema vendors it) says of a compose file; empty when it holds."""
    done = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", str(compose)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return "" if done.returncode == 0 else done.stdout + done.stderr


def test_the_compose_file_holds_to_the_compose_specification(tmp_path: Path) -> None:
    # No Docker engine runs here: the container test starts this file with Podman, and this is
    # what Docker Compose would refuse before starting anything.
    compose = REPO / "docker" / "compose.yaml"
    assert _compose_spec_problems(compose) == ""
    # The check can fail: a misspelt key in a service is refused, naming it.
    wrong = tmp_path / "compose.yaml"
    wrong.write_text(compose.read_text().replace("    healthcheck:", "    healthchek:", 1))
    assert "healthchek" in _compose_spec_problems(wrong)


def test_ci_calls_the_readme_test_command() -> None:
    ci = (REPO / ".ci" / "run").read_text()
    readme = (REPO / "README.md").read_text()
    assert "exec make test" in ci
    assert "make test" in readme and "make run" in readme
