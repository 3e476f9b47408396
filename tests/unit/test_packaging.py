"""The container and CI use the same install scripts as a developer's machine."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_dockerfile_runs_the_project_install_scripts() -> None:
    text = (REPO / "docker" / "Dockerfile").read_text()
    run_lines = [line for line in text.splitlines() if line.startswith("RUN ")]
    assert any("scripts/install-asterisk" in line and "scripts/setup" in line for line in run_lines)
    assert 'CMD ["make", "run"]' in text
    for script in ("setup", "install-asterisk", "ensure-postgres"):
        assert os.access(REPO / "scripts" / script, os.X_OK), script


def test_ci_calls_the_readme_test_command() -> None:
    ci = (REPO / ".ci" / "run").read_text()
    readme = (REPO / "README.md").read_text()
    assert "exec make test" in ci
    assert "make test" in readme and "make run" in readme
