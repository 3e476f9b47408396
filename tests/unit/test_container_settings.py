"""What lets Asterisk and the app run in separate containers: where ARI and AMI listen and are
reached (`asterisk.api_bind`, `asterisk.host`), and an Asterisk started elsewhere counting as
running while its control socket answers."""

from __future__ import annotations

import socket
import tempfile
from pathlib import Path

import pytest

from app.adapters.asterisk_instance import (
    TEMPLATES,
    AsteriskProcess,
    InstancePaths,
    _ami_permit,
    render_template,
)
from app.config import load_settings
from app.errors import ConfigError


def rendered(name: str, api_bind: str) -> list[str]:
    values = {
        "api_bind": api_bind,
        "ami_permit": _ami_permit(api_bind),
        "ami_port": "5038",
        "ami_user": "lianluo",
        "ami_password": "secret",
        "http_port": "8088",
        "http_tls": "",
    }
    return [
        line.strip() for line in render_template((TEMPLATES / name).read_text(), values, name).splitlines()
    ]


def test_ari_and_ami_stay_on_loopback_by_default(tmp_path: Path) -> None:
    path = tmp_path / "center.yaml"
    path.write_text("agents:\n  - {id: '1001', name: A}\n")
    a = load_settings(path).asterisk
    assert (a.api_bind, a.host) == ("127.0.0.1", "127.0.0.1")
    manager = rendered("manager.conf", a.api_bind)
    assert "bindaddr = 127.0.0.1" in manager
    assert [line for line in manager if line.startswith("permit")] == ["permit = 127.0.0.1/255.255.255.255"]
    assert "bindaddr = 127.0.0.1" in rendered("http.conf", a.api_bind)


def test_ari_and_ami_on_the_container_network() -> None:
    settings = load_settings(Path(__file__).resolve().parents[2] / "config" / "container.yaml")
    a = settings.asterisk
    manager = rendered("manager.conf", a.api_bind)
    assert "bindaddr = 0.0.0.0" in manager
    assert [line for line in manager if line.startswith("permit")] == ["permit = 0.0.0.0/0.0.0.0"]
    assert "bindaddr = 0.0.0.0" in rendered("http.conf", a.api_bind)
    assert a.host == "asterisk" and not a.manage


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("asterisk: {api_bind: asterisk}", "asterisk.api_bind"),
        ("asterisk: {host: 'two words'}", "asterisk.host"),
    ],
)
def test_bad_api_addresses_are_named(tmp_path: Path, text: str, field: str) -> None:
    path = tmp_path / "center.yaml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert err.value.details["field"] == field


def test_an_asterisk_started_elsewhere_runs_while_its_control_socket_answers() -> None:
    with tempfile.TemporaryDirectory(dir="/tmp") as d:  # a short path: unix sockets allow 107 bytes
        paths = InstancePaths.under(Path(d), "main")
        paths.run.mkdir(parents=True)
        process = AsteriskProcess(Path("/nonexistent"), paths, external=True)
        assert not process.running
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
            listener.bind(str(paths.control_socket))
            listener.listen(1)
            assert process.running
        assert not process.running  # the socket file is left, but nobody answers
        assert not AsteriskProcess(Path("/nonexistent"), paths).running  # managed: by its pid
