"""The running center, attacked as a scanner, a toll fraudster and a fuzzer would.

One stack whose carrier trunk has an outbound contact: the "PSTN", a UDP listener that counts
every INVITE the center sends out through the trunk (and answers 486 Busy). Each test names
what it proves. Other attacks have their own modules: password guessing and bans
(test_sip_bans.py), call floods (test_call_limits.py), a hostile caller ID on a voicemail
(test_voicemail.py), and the panel's CSRF, roles and injection tests (integration/).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.calls import register_agent
from tests.support.flood import free_udp_port
from tests.support.sip_phone import Call, PhoneLab
from tests.support.sip_register import register
from tests.support.stack import REPO, Stack, eventually

pytestmark = pytest.mark.e2e

CARRIER, STRANGER = "127.0.0.2", "127.0.0.23"
PSTN_PORT = free_udp_port(CARRIER)
STACK_CONFIG = {
    "carrier": {
        "name": "carrier",
        "match": [CARRIER],
        "dids": ["7000"],
        "outbound_contact": f"sip:{CARRIER}:{PSTN_PORT}",
    },
    "queues": [
        {
            "name": "general",
            "ring_timeout_s": 8,
            "wrap_up_s": 0,
            "callback": {"offer": True, "max_attempts": 1, "customer_ring_s": 15},
        }
    ],
    "security": {"sip_bans": {"max_failures": 10, "find_time_s": 60, "ban_time_s": 60}},
    "web": {"users": [{"username": "lead", "name": "Lee Lead", "role": "supervisor"}]},
}
# Numbers a fraudster wants dialled: international in every notation, satellite, premium.
FRAUD_NUMBERS = [
    "9011441234567",  # "9 for an outside line", then the North American international prefix
    "011441234567",  # in China a Beijing landline (the API may call it), from a phone never
    "00441234567",
    "+441234567",
    "0088212345678",
    "+88212345678",
    "+8613800138000",  # our own country, but in a form only the application may dial
    "13800138000",  # a plausible mobile: still never dialled from a phone or the trunk
]


class Pstn:
    """The carrier's side of the trunk: every request the center sends there, answered 486."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((CARRIER, PSTN_PORT))
        self.sock.settimeout(0.2)
        self.invites: list[str] = []
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop:
            try:
                data, peer = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            text = data.decode(errors="replace")
            if text.startswith("INVITE "):
                self.invites.append(text.split("\r\n", 1)[0])
                self.sock.sendto(_answer(text, "486 Busy Here"), peer)
            elif text.startswith("ACK "):
                continue

    def close(self) -> None:
        self._stop = True
        self._thread.join(2)
        self.sock.close()


def _answer(request: str, status: str) -> bytes:
    keep = ("via", "from", "to", "call-id", "cseq")
    lines = [f"SIP/2.0 {status}"]
    for line in request.split("\r\n")[1:]:
        if not line:
            break
        name = line.split(":", 1)[0].strip().lower()
        if name in keep:
            lines.append(line + (";tag=pstn" if name == "to" and "tag=" not in line else ""))
    return ("\r\n".join([*lines, "Content-Length: 0", "", ""])).encode()


@pytest.fixture(scope="module")
def pstn() -> Iterator[Pstn]:
    p = Pstn()
    try:
        yield p
    finally:
        p.close()


def settled(call: Call) -> Callable[[], bool]:
    return lambda: call.is_confirmed or call.is_disconnected


def server(stack: Stack) -> tuple[str, int]:
    return ("127.0.0.1", stack.sip_port)


# -- toll fraud ---------------------------------------------------------------------------------


def test_toll_fraud_from_the_carrier_an_unknown_peer_and_an_agent_phone_never_reaches_the_trunk(
    stack: Stack, lab: PhoneLab, pstn: Pstn
) -> None:
    agent = register_agent(lab, stack, "1001")
    carrier = lab.phone(CARRIER, user="13900000001")
    stranger = lab.phone(STRANGER, user="attacker")
    outcomes: dict[tuple[str, str], int] = {}
    for who, phone in (("carrier", carrier), ("stranger", stranger), ("agent", agent)):
        for number in FRAUD_NUMBERS:
            call = phone.call(f"sip:{number}@127.0.0.1:{stack.sip_port}")
            eventually(settled(call), 10, f"{who} -> {number} answered or refused")
            outcomes[(who, number)] = call.last_status_code
            if not call.is_disconnected:
                call.hangup()
            call.wait_disconnected(timeout=10)
    # The carrier and the agent hear "no service" (answered, 200) or are told no such number;
    # the stranger is challenged for credentials it does not have.
    assert all(code in (200, 404, 484) for (who, _), code in outcomes.items() if who != "stranger"), outcomes
    assert all(code in (401, 403) for (who, _), code in outcomes.items() if who == "stranger"), outcomes
    assert pstn.invites == [], f"{len(pstn.invites)} INVITE(s) reached the trunk: {pstn.invites}"


def sip_over_tcp(stack: Stack, source: str, request: str) -> str:
    """One request over TCP from `source`; the final response's status line."""
    with socket.create_connection(server(stack), timeout=10, source_address=(source, 0)) as s:
        host, port = s.getsockname()
        s.sendall(request.format(here=f"{host}:{port}", server=f"127.0.0.1:{stack.sip_port}").encode())
        received = b""
        while True:
            chunk = s.recv(65535)
            assert chunk, f"connection closed with no final response: {received!r}"
            received += chunk
            statuses = re.findall(rb"^SIP/2.0 (\d{3}) [^\r]*", received, re.M)
            if any(not code.startswith(b"1") for code in statuses):
                return next(
                    line for line in received.decode().split("\r\n") if re.match(r"SIP/2.0 [2-6]", line)
                )


def test_sip_over_tcp_is_as_closed_as_over_udp(stack: Stack, pstn: Pstn) -> None:
    # The same port takes TCP (the containers publish it): a stranger still gets a challenge it
    # cannot answer, for a trunk number and for a registration as an agent.
    invite = (
        "INVITE sip:00441234567@{server} SIP/2.0\r\n"
        "Via: SIP/2.0/TCP {here};branch=z9hG4bK-tcp-invite\r\n"
        "Max-Forwards: 70\r\nFrom: <sip:attacker@{here}>;tag=a1\r\nTo: <sip:00441234567@{server}>\r\n"
        "Call-ID: tcp-invite-1\r\nCSeq: 1 INVITE\r\nContact: <sip:attacker@{here};transport=tcp>\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    registration = (
        "REGISTER sip:{server} SIP/2.0\r\n"
        "Via: SIP/2.0/TCP {here};branch=z9hG4bK-tcp-register\r\n"
        "Max-Forwards: 70\r\nFrom: <sip:1001@{server}>;tag=r1\r\nTo: <sip:1001@{server}>\r\n"
        "Call-ID: tcp-register-1\r\nCSeq: 1 REGISTER\r\nContact: <sip:1001@{here};transport=tcp>\r\n"
        "Expires: 60\r\nContent-Length: 0\r\n\r\n"
    )
    before = len(pstn.invites)
    assert re.match(r"SIP/2.0 40[13] ", sip_over_tcp(stack, STRANGER, invite))
    assert re.match(r"SIP/2.0 401 ", sip_over_tcp(stack, STRANGER, registration))
    assert len(pstn.invites) == before


def test_callback_and_call_me_requests_for_numbers_outside_the_dial_plan_are_refused_never_dialled(
    stack: Stack, pstn: Pstn
) -> None:
    before = len(pstn.invites)
    fraud = [n for n in FRAUD_NUMBERS[:6] if n != "011441234567"]
    for number in [*fraud, "1900123456", "12593", "138001380001234", "+1 (555) 0100"]:
        status, body = stack.api("POST", "/api/callbacks", {"phone": number, "queue": "general"})
        assert status in (400, 403), (number, status, body)
    assert stack.query("SELECT phone FROM callbacks") == []
    assert len(pstn.invites) == before


def test_the_trunk_path_itself_works_so_the_zero_above_means_refused(
    stack: Stack, lab: PhoneLab, pstn: Pstn
) -> None:
    """A control: a callback for a number in the dial plan does reach the trunk's listener."""
    agent = register_agent(lab, stack, "1002")
    eventually(lambda: stack.agent_state("1002")["state"] == "ready", 15, "agent 1002 ready")
    status, cb = stack.api("POST", "/api/callbacks", {"phone": "13700000009", "queue": "general"})
    assert status == 201, cb
    leg = agent.wait_incoming(timeout=15)
    leg.answer()
    eventually(lambda: any("13700000009" in i for i in pstn.invites), 20, "the callback's INVITE at the PSTN")
    leg.wait_disconnected(timeout=20)
    assert all("13700000009" in i for i in pstn.invites), pstn.invites


# -- scanners -------------------------------------------------------------------------------------


def sipvicious(tool: str, source: str, *args: str) -> list[str]:
    """The command running a SIPVicious tool from `source` (tests/support/sipvicious_from.py)."""
    return [sys.executable, "-m", "tests.support.sipvicious_from", tool, source, *args]


def run_for(cmd: list[str], seconds: float, home: Path) -> str:
    """Run a scanner for at most `seconds` (an attacker's tool may go on for ever); its output."""
    env = {**os.environ, "HOME": str(home)}
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=REPO) as proc:
        try:
            out, _ = proc.communicate(timeout=seconds)
        except subprocess.TimeoutExpired:
            proc.terminate()
            out, _ = proc.communicate()
    return out.decode(errors="replace")


def security_events(stack: Stack, source: str, events: str) -> int:
    """Asterisk's security events of these kinds from `source` (in the app's log)."""
    log = stack.log_path.read_text(errors="replace")
    return len(re.findall(rf"Event='(?:{events})'.*RemoteAddress='IPV4/UDP/{re.escape(source)}/", log))


def test_sipvicious_svwar_cannot_tell_real_extensions_from_made_up_ones(stack: Stack, tmp_path: Path) -> None:
    source = "127.0.0.24"
    cmd = sipvicious(
        "svwar", source, "-e", "995-1015", "-m", "REGISTER", "-p", str(stack.sip_port), "--force",
        "-t", "0.05", "127.0.0.1",
    )  # fmt: skip
    out = run_for(cmd, 60, tmp_path)
    assert security_events(stack, source, "ChallengeSent|InvalidAccountID") > 0, "it scanned from there"
    found = set(re.findall(r"\|\s*(\d{3,4})\s*\|", out))
    # Every extension answers alike (a challenge), so the scan lists none or all of them.
    everything = {str(n) for n in range(995, 1016)}
    assert found in (set(), everything), out
    print(f"svwar: {len(found)} of {len(everything)} extensions listed (real ones: 1001, 1002)")


def test_sipvicious_svcrack_is_cut_off_after_a_few_dozen_guesses_and_misses_the_password(
    stack: Stack, tmp_path: Path
) -> None:
    """svcrack sends guesses without waiting for each answer, so a few are checked between the
    10th failure and the ban taking effect (the ACL reload). From then on every guess is refused
    unchecked; the right password, 300 words in, is never tried. (A patient guesser waiting out
    each ban gets about ten guesses per ban, and each ban of it doubles: 12 random characters.)"""
    source = "127.0.0.25"
    password = stack.agent_password("1001")
    words = tmp_path / "words.txt"
    words.write_text("\n".join([f"guess{i}" for i in range(300)] + [password]) + "\n")
    cmd = sipvicious(
        "svcrack", source, "-u", "1001", "-d", str(words), "-p", str(stack.sip_port), "-t", "0.05",
        "127.0.0.1",
    )  # fmt: skip
    # The ban outlasts this: what svcrack finds by then is what one ban period gives it.
    out = run_for(cmd, CRACK_S, tmp_path)
    assert password not in out, "the cracker never learns the password"
    status, bans = stack.api("GET", "/api/security/bans")
    assert status == 200 and source in [b["address"] for b in bans], (bans, out[-2000:])
    checked = security_events(stack, source, "ChallengeResponseFailed|InvalidPassword")
    print(f"svcrack: {checked} guesses checked, then banned")
    assert 10 <= checked <= 100, checked
    # Banned: even the right password from there is refused.
    assert register(server(stack), source, "1001", password) in (403, 0)


CRACK_S = 30  # well inside the module's 60 s ban


# -- malformed SIP and hostile headers ---------------------------------------------------------------


def test_malformed_sip_and_hostile_headers_break_nothing_and_forge_no_log_line(
    stack: Stack, lab: PhoneLab
) -> None:
    port = stack.sip_port
    junk = [
        b"\x00" * 100,
        os.urandom(1400),
        b"INVITE sip:7000@127.0.0.1 SIP/2.0\r\n\r\n",  # no headers at all
        b"OPTIONS sip:7000@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:5999\r\n"
        + b"X-Long: "
        + b"A" * 60000
        + b"\r\n\r\n",
        (
            b"INVITE sip:7000@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:5999;branch=z9hG4bKx\r\n"
            b'From: "evil\r\nX-Forged: yes" <sip:1\r\n38@127.0.0.2>;tag=1\r\nTo: <sip:7000@127.0.0.1>\r\n'
            b"Call-ID: forged-1\r\nCSeq: 1 INVITE\r\nContent-Length: 999\r\n\r\nv=0"
        ),
    ]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((CARRIER, 0))
        for packet in junk:
            s.sendto(packet, ("127.0.0.1", port))
    # A caller ID made of everything a log or a header should never see.
    hostile = lab.phone(CARRIER, user="13800000001", display_name="Eve; DROP TABLE interactions;--")
    call = hostile.call(f"sip:7000@127.0.0.1:{port}")
    call.wait_confirmed(timeout=10)
    call.hangup()
    call.wait_disconnected(timeout=10)
    assert stack.health()[0] == 200
    log = stack.log_path.read_text(errors="replace")
    assert not re.search(r"^X-Forged", log, re.M), "no input became a log line of its own"
    assert stack.query("SELECT count(*) FROM interactions")[0][0] >= 1


# -- fuzzing the HTTP API --------------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
POSTS = [
    "/api/callbacks",
    "/api/agents/1001/state",
    "/api/agents/1001/skills/billing",
    "/api/campaigns/renewals/active",
    "/api/ivr/reload",
    "/api/calls/00000000-0000-4000-8000-000000000000/hold",
    "/api/security/bans",
]


def raw(stack: Stack, method: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    req = urllib.request.Request(stack.web_url + path, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_fuzzed_json_bodies_never_cause_a_server_error(stack: Stack) -> None:
    token = stack.secrets["api_token"]

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(path=st.sampled_from(POSTS), method=st.sampled_from(["POST", "PUT", "DELETE"]), body=JSON)
    def one(path: str, method: str, body: Any) -> None:
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        status, data = raw(stack, method, path, json.dumps(body).encode(), headers)
        assert status < 500, (method, path, body, status, data[:300])
        if data:
            json.loads(data)  # errors are JSON too, never an HTML traceback

    one()


def test_fuzzed_sign_in_forms_and_raw_bytes_never_cause_a_server_error(stack: Stack) -> None:
    @settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(
        body=st.binary(max_size=300)
        | st.dictionaries(st.text(max_size=20), st.text(max_size=40), max_size=4).map(
            lambda d: "&".join(f"{k}={v}" for k, v in d.items()).encode("utf-8", "surrogatepass")
        ),
        kind=st.sampled_from(["application/x-www-form-urlencoded", "application/json", "text/plain"]),
    )
    def one(body: bytes, kind: str) -> None:
        status, data = raw(stack, "POST", "/login", body, {"Content-Type": kind})
        assert status < 500, (body, kind, status, data[:300])

    one()
