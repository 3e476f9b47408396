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
    transport_nat,
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


def transport_lines(tmp: Path, settings_text: str) -> list[str]:
    path = tmp / "center.yaml"
    path.write_text(settings_text)
    a = load_settings(path).asterisk
    values = {
        "sip_bind": a.sip_bind,
        "sip_port": str(a.sip_port),
        "transport_nat": transport_nat(a),
        "carrier_sections": "",
        "agent_sections": "",
    }
    text = render_template((TEMPLATES / "pjsip.conf").read_text(), values, "pjsip.conf")
    return [line.strip() for line in text.split("[transport-udp]")[1].split("\n\n;")[0].splitlines()]


def test_without_nat_every_phone_is_told_asterisks_own_address(tmp_path: Path) -> None:
    lines = transport_lines(tmp_path, "asterisk: {sip_port: 5062}\n")
    assert "bind = 127.0.0.1:5062" in lines
    assert not [line for line in lines if line.startswith(("external_", "local_net"))]


def test_behind_nat_phones_outside_the_local_nets_are_told_the_published_address(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The containers' file takes the address and the published SIP port from the environment.
    monkeypatch.setenv("LIANLUO_EXTERNAL_ADDRESS", "192.0.2.7")
    monkeypatch.setenv("LIANLUO_SIP_PORT", "5070")
    a = load_settings(Path(__file__).resolve().parents[2] / "config" / "container.yaml").asterisk
    assert (a.external_address, a.external_sip_port) == ("192.0.2.7", 5070)
    assert transport_nat(a).splitlines() == [
        "external_media_address = 192.0.2.7",
        "external_signaling_address = 192.0.2.7",
        "external_signaling_port = 5070",
        "local_net = 172.29.71.0/24",
        "local_net = 127.0.0.0/8",
    ]
    # Unset, the same file means no NAT.
    monkeypatch.delenv("LIANLUO_EXTERNAL_ADDRESS")
    monkeypatch.delenv("LIANLUO_SIP_PORT")
    a = load_settings(Path(__file__).resolve().parents[2] / "config" / "container.yaml").asterisk
    assert (a.external_address, a.external_sip_port) == ("", 5060)
    assert "external_media_address" not in transport_nat(a)


def test_sip_is_offered_over_tcp_on_the_same_address_as_udp() -> None:
    text = (TEMPLATES / "pjsip.conf").read_text()
    tcp = text.split("[transport-tcp]")[1].split("\n\n")[0]
    assert "protocol = tcp" in tcp and "bind = {{sip_bind}}:{{sip_port}}" in tcp
    assert "{{transport_nat}}" in tcp


@pytest.mark.parametrize(
    ("text", "field", "words"),
    [
        ("asterisk: {external_address: 'a b'}", "asterisk.external_address", "not a host name"),
        ("asterisk: {external_address: 192.0.2.7}", "asterisk.external_address", "needs asterisk.local_nets"),
        ("asterisk: {external_address: h, local_nets: [10.0.0.0/33]}", "asterisk.local_nets[0]", "not an IP"),
        ("asterisk: {external_sip_port: 70000}", "asterisk.external_sip_port", "out of range"),
        ("asterisk: {external_address: '${LIANLUO_TEST_UNSET}'}", "asterisk.external_address", "is not set"),
    ],
)
def test_bad_nat_settings_are_named(tmp_path: Path, text: str, field: str, words: str) -> None:
    path = tmp_path / "center.yaml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert err.value.details["field"] == field
    assert words in str(err.value)
    assert f"{path}:1:" in str(err.value)


def test_an_environment_value_is_typed_as_if_written_and_text_keeps_its_dollars(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIANLUO_TEST_PORT", "5064")
    path = tmp_path / "center.yaml"
    path.write_text("asterisk: {sip_port: '${LIANLUO_TEST_PORT}'}\ncenter_name: 'Pay ${5} now'\n")
    settings = load_settings(path)
    assert settings.asterisk.sip_port == 5064
    assert settings.center_name == "Pay ${5} now"
