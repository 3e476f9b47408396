"""Callbacks keep the caller's place: agent first, then the customer through the carrier."""

from __future__ import annotations

import http.cookiejar
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from app.config import PromptText
from tests.support.audio import heard_whole
from tests.support.calls import HEARD, call_in, ended, prompt_wav, register_agent
from tests.support.sip_phone import Call, Phone, PhoneLab
from tests.support.stack import Stack, eventually, free_sip_port

pytestmark = pytest.mark.e2e

# Where the carrier takes the calls we place: a phone bound there plays the customers' network.
CARRIER_PORT = free_sip_port()
POSITION = "You are number {position} in line."
OFFER = "For a callback, press {key}."
CONFIRMED = "We will call you back at {number}. Goodbye."
STACK_CONFIG = {
    "carrier": {"outbound_contact": f"sip:127.0.0.2:{CARRIER_PORT}", "caller_id": "7000"},
    "agents": [{"id": "1001", "name": "Alice Wang"}],
    "queues": [
        {
            "name": "general",
            "ring_timeout_s": 8,
            "wrap_up_s": 1,
            "announce_every_s": 4,
            "callback": {"offer": True, "retry_after_s": 1, "max_attempts": 2, "customer_ring_s": 15},
        }
    ],
    "ivr": {
        "greeting": [{"text": "Press 1.", "lang": "en"}],
        "connecting": [],
        "position": [{"text": POSITION, "lang": "en"}],
        "callback_offer": [{"text": OFFER, "lang": "en"}],
        "callback_confirmed": [{"text": CONFIRMED, "lang": "en"}],
        "menu": [{"digit": "1", "queue": "general"}],
    },
}


def queue_up(
    lab: PhoneLab, stack: Stack, ani: str, tone: Path, tmp_path: Path
) -> tuple[Call, dict[str, Any]]:
    call, it = call_in(lab, stack, ani, tone, tmp_path / f"{ani}.wav")
    stack.wait_event(it["id"], "answered_by_ivr", timeout=10)
    call.send_dtmf("1")
    stack.wait_event(it["id"], "queued", timeout=10)
    return call, it


def announced(stack: Stack, it: dict[str, Any], position: int) -> bool:
    return any(k == "announced" and d["position"] == position for k, d in stack.events(it["id"]))


def callback_row(stack: Stack, where: str, *params: Any) -> dict[str, Any] | None:
    rows = stack.query(
        f"SELECT id, phone, status, attempts, last_result, place_at, source FROM callbacks WHERE {where}",
        *params,
    )
    if not rows:
        return None
    keys = ("id", "phone", "status", "attempts", "last_result", "place_at", "source")
    return dict(zip(keys, rows[0], strict=True))


def attempts_of(stack: Stack, callback_id: Any) -> list[dict[str, Any]]:
    rows = stack.query(
        "SELECT id, answered_at, outcome, agent_id FROM interactions"
        " WHERE callback_id = %s ORDER BY arrived_at",
        callback_id,
    )
    return [dict(zip(("id", "answered_at", "outcome", "agent_id"), r, strict=True)) for r in rows]


def panel_post(stack: Stack, username: str, path: str, body: dict[str, Any]) -> tuple[int, Any]:
    """A write through the panel's JSON API as a signed-in user: session cookie and CSRF token."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    origin = {"Origin": stack.web_url, "Content-Type": "application/json", "Accept": "application/json"}

    def send(url: str, data: dict[str, Any], headers: dict[str, str]) -> tuple[int, Any]:
        req = urllib.request.Request(stack.web_url + url, json.dumps(data).encode(), headers, method="POST")
        try:
            with opener.open(req, timeout=5) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    password = str(stack.secrets["panel_passwords"][username])
    status, signed = send("/login", {"username": username, "password": password}, origin)
    assert status == 200, signed
    return send(path, body, {**origin, "X-CSRF-Token": signed["csrf_token"]})


def dialled_number(call: Call) -> str:
    """The user part of the request URI of an INVITE the carrier received."""
    request_line = (call.invite or "").splitlines()[0]
    return request_line.split("sip:", 1)[1].split("@", 1)[0]


def test_callback_keeps_place_between_earlier_and_later_callers(
    stack: Stack, lab: PhoneLab, tones: tuple[Path, Path], tmp_path: Path
) -> None:
    carrier = lab.phone("127.0.0.2", port=CARRIER_PORT)
    agent = register_agent(lab, stack, "1001")
    busy, busy_it = queue_up(lab, stack, "13700000000", tones[0], tmp_path)
    talking = agent.wait_incoming(timeout=15)
    talking.answer(play=tones[1], loop=True)
    stack.wait_event(busy_it["id"], "connected")

    # pjsua holds 4 calls per process: caller 3 dials once caller 2 has left the line.
    first, first_it = queue_up(lab, stack, "13700000001", tones[0], tmp_path)
    second, second_it = queue_up(lab, stack, "13700000002", tones[0], tmp_path)
    eventually(lambda: announced(stack, first_it, 1), 15, "caller 1 told they are next")
    eventually(lambda: announced(stack, second_it, 2), 15, "caller 2 told they are second")

    # Caller 2 hears the offer out, then asks for a callback: told the number, hung up,
    # the callback recorded in their place.
    second.wait_rx_audio(second.rx_audio_seconds() + 4.0, timeout=10)
    second.send_dtmf("1")
    second.wait_disconnected(timeout=30)
    assert ended(stack, second_it["id"])["outcome"] == "callback_requested"
    cb = eventually(
        lambda: callback_row(stack, "origin_interaction_id = %s", second_it["id"]), 10, "the callback row"
    )
    assert cb["phone"] == "13700000002" and cb["source"] == "ivr"
    queued_at = stack.interaction_row("id = %s", second_it["id"])["queued_at"]
    assert cb["place_at"] == queued_at, "the callback keeps the caller's place in line"
    heard = second.recording()
    confirmed = PromptText(CONFIRMED.format(number=" ".join("13700000002")))
    assert heard_whole(heard, prompt_wav(confirmed)) > HEARD, "caller 2 did not hear the confirmation"
    offer = PromptText(OFFER.format(key="1"))
    assert heard_whole(heard, prompt_wav(offer)) > HEARD, "caller 2 was not offered a callback"

    # Caller 3 arrives later: the callback still holds place 2.
    third, third_it = queue_up(lab, stack, "13700000003", tones[0], tmp_path)
    eventually(lambda: announced(stack, third_it, 3), 15, "caller 3 told they are third")

    # The agent frees up: caller 1 (earlier) goes first.
    talking.hangup()
    agent.wait_incoming(timeout=15).answer(play=tones[1], loop=True)
    stack.wait_event(first_it["id"], "connected")
    eventually(lambda: announced(stack, third_it, 2), 15, "caller 3 still behind the callback")

    # Next: the callback, agent first (the call data says so), then the customer's phone.
    first.hangup()
    agent_leg = agent.wait_incoming(timeout=15)
    assert agent_leg.header("X-Lianluo-Callback") == str(cb["id"])
    agent_leg.answer(play=tones[1], loop=True)
    customer = carrier.wait_incoming(timeout=20)
    assert dialled_number(customer) == "13700000002"
    assert customer.from_user == "7000", "the customer sees the service number"
    customer.answer(play=tones[0], loop=True)
    attempt = eventually(
        lambda: next((a for a in attempts_of(stack, cb["id"]) if a["answered_at"]), None), 10, "connected"
    )
    assert attempt["agent_id"] == "1001"
    customer.wait_rx_audio(2.0, timeout=10)  # the agent's voice reaches the customer
    assert stack.interaction_row("id = %s", third_it["id"])["answered_at"] is None, "caller 3 waits"
    assert stack.interaction_row("id = %s", first_it["id"])["answered_at"] < attempt["answered_at"]

    customer.hangup()
    agent_leg.wait_disconnected(timeout=10)
    agent.wait_incoming(timeout=15).answer(play=tones[1], loop=True)
    stack.wait_event(third_it["id"], "connected")
    assert stack.interaction_row("id = %s", third_it["id"])["answered_at"] > attempt["answered_at"]
    done = callback_row(stack, "id = %s", cb["id"])
    assert done is not None and done["status"] == "completed" and done["attempts"] == 1
    for call in (busy, first, third):
        if not call.is_disconnected:
            call.hangup()
    for it in (busy_it, first_it, third_it):
        ended(stack, it["id"])


def test_web_call_me_request_retries_a_busy_customer(
    stack: Stack, lab: PhoneLab, tones: tuple[Path, Path]
) -> None:
    carrier: Phone = lab.phone("127.0.0.2", port=CARRIER_PORT)
    agent = register_agent(lab, stack, "1001")
    eventually(lambda: stack.agent_state("1001")["state"] == "ready", 15, "agent ready")

    assert stack.api("POST", "/api/callbacks", {"phone": "call me", "queue": "general"})[0] == 400
    assert stack.api("POST", "/api/callbacks", {"phone": "13700000009", "queue": "nope"})[0] == 404
    assert stack.api("POST", "/api/callbacks", {"phone": "13700000009"})[0] == 400
    status, cb = stack.api("POST", "/api/callbacks", {"phone": "13700000009", "queue": "general"})
    assert status == 201, cb
    assert cb["source"] == "web" and cb["status"] == "waiting"

    # First try: the customer is busy. The agent is told, the callback waits for its retry.
    leg = agent.wait_incoming(timeout=15)
    leg.answer(play=tones[1], loop=True)
    busy = carrier.wait_incoming(timeout=20)
    assert dialled_number(busy) == "13700000009"
    busy.reject(486)
    leg.wait_disconnected(timeout=20)
    row = eventually(
        lambda: (r := callback_row(stack, "id = %s", cb["id"])) and r["attempts"] == 1 and r, 10, "attempt 1"
    )
    assert row["last_result"] == "busy" and row["status"] in ("waiting", "dialing")
    # The agent spent that try with the callback: their wrap-up code is taken, though no
    # customer was ever reached (it used to be refused with 403).
    unreached = eventually(
        lambda: (a := attempts_of(stack, cb["id"])) and a[0]["outcome"] == "customer_unreached" and a[0],
        10,
        "the first try ended unreached",
    )
    status, saved = panel_post(
        stack, "1001", f"/panel/api/interactions/{unreached['id']}/disposition", {"code": "follow_up"}
    )
    assert status == 200 and saved["code"] == "follow_up", saved
    stored = stack.query("SELECT disposition FROM interactions WHERE id = %s", unreached["id"])
    assert stored == [("follow_up",)]

    # Second try after the pause (and the agent's wrap-up): answered.
    agent.wait_incoming(timeout=20).answer(play=tones[1], loop=True)
    carrier.wait_incoming(timeout=20).answer(play=tones[0], loop=True)
    done = eventually(
        lambda: (r := callback_row(stack, "id = %s", cb["id"])) and r["status"] == "completed" and r,
        15,
        "callback completed",
    )
    assert done["attempts"] == 2
    outcomes = [a["outcome"] for a in attempts_of(stack, cb["id"])]
    assert outcomes[0] == "customer_unreached"
    status, listed = stack.api("GET", "/api/callbacks")
    assert status == 200 and any(c["id"] == cb["id"] and c["status"] == "completed" for c in listed)
    for phone_calls in (agent.calls, carrier.calls):
        for call in phone_calls:
            if not call.is_disconnected:
                call.hangup()


def test_waiting_callback_survives_a_restart_and_can_be_cancelled(
    stack: Stack, lab: PhoneLab, tones: tuple[Path, Path]
) -> None:
    """Nobody can answer yet (no phone registered); the callbacks wait across a restart."""
    status, kept = stack.api("POST", "/api/callbacks", {"phone": "13700000021", "queue": "general"})
    assert status == 201, kept
    status, dropped = stack.api("POST", "/api/callbacks", {"phone": "13700000022", "queue": "general"})
    assert status == 201, dropped
    assert stack.api("DELETE", f"/api/callbacks/{dropped['id']}")[1]["status"] == "cancelled"
    assert stack.api("DELETE", f"/api/callbacks/{dropped['id']}")[0] == 404

    assert stack.stop() == 0, stack.tail()
    stack.start()
    status, open_ones = stack.api("GET", "/api/callbacks?open=1")
    assert status == 200 and [c["id"] for c in open_ones] == [kept["id"]]

    carrier = lab.phone("127.0.0.2", port=CARRIER_PORT)
    agent = register_agent(lab, stack, "1001")
    leg = agent.wait_incoming(timeout=20)
    assert leg.header("X-Lianluo-Callback") == kept["id"]
    leg.answer(play=tones[1], loop=True)
    customer = carrier.wait_incoming(timeout=20)
    assert dialled_number(customer) == "13700000021"
    customer.answer(play=tones[0], loop=True)
    eventually(
        lambda: (r := callback_row(stack, "id = %s", kept["id"])) and r["status"] == "completed", 15, "done"
    )
    customer.hangup()
    leg.wait_disconnected(timeout=10)
