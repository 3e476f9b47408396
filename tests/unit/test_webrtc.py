"""The WebRTC softphone's pure parts: configuration, the rendered Asterisk sections, the
generated certificate, and what the panel tells the browser (websocket address, CSP)."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest
from cryptography import x509

from app.adapters.asterisk_instance import (
    Secrets,
    WebRtcMedia,
    _agent_sections,
    _http_tls,
    webrtc_media_address,
)
from app.adapters.certificates import CertFiles, ensure_certificate
from app.config import AgentSettings, AsteriskSettings, Settings, load_settings
from app.errors import ConfigError
from app.panel import softphone

AGENTS = (AgentSettings("1001", "Alice Wang", webrtc=True), AgentSettings("1002", "Bob Li"))
SECRETS = Secrets("a", "b", "c", "d", {"1001": "pw-1001", "1002": "pw-1002"}, "token")


def settings(**asterisk: object) -> Settings:
    return Settings(asterisk=AsteriskSettings(**asterisk), agents=AGENTS)  # type: ignore[arg-type]


def sections(text: str) -> dict[str, list[dict[str, str]]]:
    """Rendered pjsip text -> {section name: [its option dicts, in order]}."""
    out: dict[str, list[dict[str, str]]] = {}
    current: dict[str, str] = {}
    for line in text.splitlines():
        if m := re.fullmatch(r"\[(.+)\]", line.strip()):
            current = {}
            out.setdefault(m.group(1), []).append(current)
        elif "=" in line:
            key, value = (p.strip() for p in line.split("=", 1))
            current[key] = value
    return out


# -- configuration ---------------------------------------------------------------------------------


def test_wss_port_is_free_to_reuse_without_webrtc_agents(tmp_path: Path) -> None:
    path = tmp_path / "center.yaml"
    path.write_text("web: {port: 8089}\nagents:\n  - {id: '1001', name: A}\n")
    assert load_settings(path).web.port == 8089


def test_webrtc_is_off_by_default_and_read_from_yaml(tmp_path: Path) -> None:
    path = tmp_path / "center.yaml"
    path.write_text(
        "asterisk: {webrtc_socket: wss, wss_bind: 0.0.0.0, wss_port: 8443}\n"
        "agents:\n  - {id: '1001', name: A, webrtc: true}\n  - {id: '1002', name: B}\n"
    )
    s = load_settings(path)
    assert [a.webrtc for a in s.agents] == [True, False]
    assert (s.asterisk.webrtc_socket, s.asterisk.wss_bind, s.asterisk.wss_port) == ("wss", "0.0.0.0", 8443)
    assert AsteriskSettings().webrtc_socket == "ws"


@pytest.mark.parametrize(
    ("text", "field", "words"),
    [
        ("agents:\n  - {id: '1001', name: A, webrtc: maybe}\n", "agents[0].webrtc", "true or false"),
        (
            "agents:\n  - {id: '1001', name: A, webrtc: true, contact: 'sip:1001@10.0.0.5'}\n",
            "agents[0].webrtc",
            "drop `contact`",
        ),
        ("asterisk:\n  webrtc_socket: wsx\n", "asterisk.webrtc_socket", "expected one of"),
        ("asterisk:\n  wss_bind: pbx.lan\n", "asterisk.wss_bind", "not an IP address"),
        (
            "asterisk:\n  wss_port: 8088\nagents:\n  - {id: '1001', name: A, webrtc: true}\n",
            "asterisk.wss_port",
            "already used by asterisk.http_port",
        ),
    ],
)
def test_bad_webrtc_settings_are_named(tmp_path: Path, text: str, field: str, words: str) -> None:
    path = tmp_path / "center.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert err.value.details["field"] == field
    assert words in err.value.message


# -- Asterisk --------------------------------------------------------------------------------------


def test_webrtc_agent_gets_a_dtls_endpoint_and_desk_agent_keeps_todays(tmp_path: Path) -> None:
    cert = CertFiles(tmp_path / "webrtc.crt", tmp_path / "webrtc.key")
    media = WebRtcMedia(cert, "127.0.0.1", opus=False)
    webrtc_text = _agent_sections(settings(), SECRETS, media)
    plain_text = _agent_sections(settings(), SECRETS, None)
    rendered = sections(webrtc_text)
    endpoint, auth = rendered["1001"][0], rendered["1001-auth"][0]
    assert endpoint["webrtc"] == "yes"
    assert endpoint["dtls_cert_file"] == str(cert.cert)
    assert endpoint["dtls_private_key"] == str(cert.key)
    assert endpoint["media_address"] == "127.0.0.1"
    assert endpoint["bind_rtp_to_media_address"] == "yes"
    assert endpoint["auth"] == "1001-auth"  # no endpoint without digest authentication
    assert (auth["auth_type"], auth["username"], auth["password"]) == ("digest", "1001", "pw-1001")
    assert endpoint["allow"] == "ulaw,alaw,g722"
    # The desk agent's sections are exactly what they were without any WebRTC agent.
    plain = sections(plain_text)
    assert rendered["1002"] == plain["1002"] and rendered["1002-auth"] == plain["1002-auth"]
    assert "webrtc" not in rendered["1002"][0] and "webrtc" not in plain["1001"][0]


def test_opus_is_offered_only_with_a_transcoder(tmp_path: Path) -> None:
    cert = CertFiles(tmp_path / "c", tmp_path / "k")
    with_opus = sections(_agent_sections(settings(), SECRETS, WebRtcMedia(cert, None, opus=True)))
    assert with_opus["1001"][0]["allow"] == "opus,ulaw,alaw,g722"
    assert "media_address" not in with_opus["1001"][0]
    assert with_opus["1002"][0]["allow"] == "ulaw,alaw,g722"


def test_media_follows_the_signalling() -> None:
    assert webrtc_media_address(settings()) == "127.0.0.1"
    assert webrtc_media_address(settings(webrtc_socket="wss", wss_bind="192.0.2.10")) == "192.0.2.10"
    assert webrtc_media_address(settings(webrtc_socket="wss", wss_bind="0.0.0.0")) is None


def test_tls_listener_only_with_a_webrtc_agent(tmp_path: Path) -> None:
    cert = CertFiles(tmp_path / "webrtc.crt", tmp_path / "webrtc.key")
    text = _http_tls(settings(wss_bind="::1", wss_port=8443), cert)
    assert "tlsenable = yes" in text
    assert "tlsbindaddr = [::1]:8443" in text
    assert f"tlsprivatekey = {cert.key}" in text
    assert "tlsenable" not in _http_tls(settings(), None)


# -- the certificate -------------------------------------------------------------------------------


def _sans(path: Path) -> list[str]:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return sorted(
        [*san.get_values_for_type(x509.DNSName), *map(str, san.get_values_for_type(x509.IPAddress))]
    )


def test_certificate_is_made_once_with_a_private_key(tmp_path: Path) -> None:
    files = ensure_certificate(tmp_path, ["127.0.0.1"])
    assert files.key.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "tls").stat().st_mode & 0o777 == 0o700
    assert _sans(files.cert) == ["127.0.0.1", "localhost"]
    first = files.cert.read_bytes()
    assert ensure_certificate(tmp_path, ["127.0.0.1", "0.0.0.0"]).cert.read_bytes() == first  # reused


def test_certificate_is_remade_for_a_new_address_or_near_expiry(tmp_path: Path) -> None:
    files = ensure_certificate(tmp_path, [])
    first = files.cert.read_bytes()
    ensure_certificate(tmp_path, ["192.0.2.10"])
    assert files.cert.read_bytes() != first
    assert _sans(files.cert) == ["127.0.0.1", "192.0.2.10", "localhost"]
    second = files.cert.read_bytes()
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=340)
    ensure_certificate(tmp_path, ["192.0.2.10"], now=later)
    assert files.cert.read_bytes() != second
    files.key.write_text("garbage")
    ensure_certificate(tmp_path, [])
    assert files.key.read_text().startswith("-----BEGIN PRIVATE KEY-----")


# -- what the panel tells the browser --------------------------------------------------------------


def test_websocket_address_and_csp_sources() -> None:
    s = settings(http_port=8088, wss_port=8089)
    assert softphone.websocket_url(s, "127.0.0.1:8080") == "ws://127.0.0.1:8088/ws"
    assert softphone.connect_sources(s, "127.0.0.1:8080") == ("ws://127.0.0.1:8088",)
    lan = settings(webrtc_socket="wss", wss_bind="192.0.2.10", wss_port=8089)
    assert softphone.websocket_url(lan, "anything:8080") == "wss://192.0.2.10:8089/ws"
    every = settings(webrtc_socket="wss", wss_bind="0.0.0.0", wss_port=8089)
    assert softphone.websocket_url(every, "pbx.example.lan:8080") == "wss://pbx.example.lan:8089/ws"
    assert softphone.websocket_url(every, "[fd00::2]:8080") == "wss://[fd00::2]:8089/ws"
    assert softphone.connect_sources(every, "pbx.example.lan:8080") == ("wss://pbx.example.lan:8089",)
    no_webrtc = Settings(agents=(AgentSettings("1002", "Bob Li"),))
    assert softphone.connect_sources(no_webrtc, "127.0.0.1:8080") == ()


def test_softphone_is_only_for_webrtc_agents() -> None:
    s = settings()
    assert softphone.enabled(s, "1001")
    assert not softphone.enabled(s, "1002")
    assert not softphone.enabled(s, None)
    assert not softphone.enabled(s, "9999")


def test_widget_has_no_inline_code_and_both_languages(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    bundle = tmp_path / "jssip.min.js"
    bundle.write_text("var JsSIP={};")
    monkeypatch.setattr(softphone, "BUNDLE", bundle)
    for lang in ("en", "zh"):
        html = softphone.widget(lang)
        scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html)
        # Only JSON data and external files: the page's CSP forbids inline script.
        assert all('type="application/json"' in attrs or not body for attrs, body in scripts)
        data = json.loads(re.search(r'id="softphone-data">(.*?)</script>', html).group(1))  # type: ignore[union-attr]
        assert data["text"] == softphone.TEXT[lang]
        assert data["api"] == "/panel/api/softphone"
        assert 'src="/static/softphone.js' in html and 'src="/static/vendor/jssip.min.js' in html
    assert softphone.TEXT["en"].keys() == softphone.TEXT["zh"].keys()
    monkeypatch.setattr(softphone, "BUNDLE", tmp_path / "missing.js")
    assert "scripts/setup" in softphone.widget("en")
    assert "<script" not in softphone.widget("en")
