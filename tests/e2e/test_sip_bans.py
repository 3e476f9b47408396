"""Edge defence: a source guessing SIP passwords is banned inside Asterisk, fail2ban-style.

Small thresholds here (5 failures in 60 s, an 8 s ban) so the whole life of a ban fits in a
test: guessed, banned (refused even with the right password, while another address still
registers), shown to supervisors, expired, welcome again. The guesser is a raw UDP digest
client bound to its own 127.0.0.x address (tests/support/sip_register.py).
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import CHROMIUM, CHROMIUM_FLAGS
from tests.support.calls import call_in, register_agent
from tests.support.sip_phone import PhoneLab
from tests.support.sip_register import register
from tests.support.stack import Stack, eventually

pytestmark = pytest.mark.e2e

MAX_FAILURES, BAN_S = 5, 8
STACK_CONFIG = {
    "security": {
        "sip_bans": {
            "max_failures": MAX_FAILURES,
            "find_time_s": 60,
            "ban_time_s": BAN_S,
            "allow": ["127.0.0.1/32", "127.0.0.4/32"],
        }
    },
    "web": {"users": [{"username": "lead", "name": "Lee Lead", "role": "supervisor"}]},
}


def server(stack: Stack) -> tuple[str, int]:
    return ("127.0.0.1", stack.sip_port)


def bans(stack: Stack) -> dict[str, dict[str, Any]]:
    status, body = stack.api("GET", "/api/security/bans")
    assert status == 200, body
    return {b["address"]: b for b in body}


def ban_events(stack: Stack, address: str) -> list[str]:
    rows = stack.query("SELECT kind FROM sip_ban_events WHERE address = %s ORDER BY id", address)
    return [r[0] for r in rows]


def guess(stack: Stack, source: str, user: str, times: int) -> list[int]:
    return [register(server(stack), source, user, f"wrong-{i}") for i in range(times)]


def test_guesser_is_banned_refused_even_with_the_right_password_and_welcome_again_after_the_ban(
    stack: Stack,
) -> None:
    guesser, other = "127.0.0.3", "127.0.0.5"
    password = stack.agent_password("1001")
    assert guess(stack, guesser, "1001", MAX_FAILURES - 1) == [401] * (MAX_FAILURES - 1)
    assert register(server(stack), guesser, "1001", password) == 200, "banned before the limit"

    started = time.monotonic()
    assert guess(stack, guesser, "1001", 1) == [401]  # a success does not wipe the slate
    ban = eventually(lambda: bans(stack).get(guesser), 5, "the guesser's ban in the API")
    eventually(
        lambda: register(server(stack), guesser, "1001", password, timeout=0.5) in (403, 0) or None,
        5,
        "the guesser refused with the right password",
    )
    print(f"\nbanned and enforced {time.monotonic() - started:.3f} s after the {MAX_FAILURES}th guess")
    assert ban["failures"] == MAX_FAILURES and 0 < ban["left_s"] <= BAN_S
    assert register(server(stack), guesser, "1001", password, timeout=0.5) in (403, 0)
    assert register(server(stack), other, "1001", password) == 200, "another address is refused too"
    assert ban_events(stack, guesser) == ["banned"]
    status, _ = stack.api("GET", "/api/security/bans", token="not-the-token")
    assert status in (401, 403)

    eventually(lambda: guesser not in bans(stack) or None, BAN_S + 5, "the ban's end")
    eventually(
        lambda: register(server(stack), guesser, "1001", password) == 200 or None,
        5,
        "the right password from the former guesser",
    )
    print(f"welcome again {time.monotonic() - started:.1f} s after the ban (ban {BAN_S} s)")
    assert ban_events(stack, guesser) == ["banned", "expired"]


def test_unknown_account_guesses_ban_too_and_a_supervisor_lifts_the_ban(stack: Stack) -> None:
    guesser = "127.0.0.6"
    assert set(guess(stack, guesser, "9999", MAX_FAILURES)) <= {401, 403}
    eventually(lambda: bans(stack).get(guesser), 5, "the ban of a source guessing accounts")
    password = stack.agent_password("1002")
    eventually(
        lambda: register(server(stack), guesser, "1002", password, timeout=0.5) in (403, 0) or None,
        5,
        "the guesser refused",
    )
    status, body = stack.api("DELETE", f"/api/security/bans/{guesser}")
    assert status == 200 and body["address"] == guesser, body
    eventually(
        lambda: register(server(stack), guesser, "1002", password) == 200 or None, 5, "the lifted source"
    )
    assert guesser not in bans(stack)
    assert ban_events(stack, guesser) == ["banned", "lifted"]
    assert stack.api("DELETE", f"/api/security/bans/{guesser}")[0] == 404
    assert stack.api("DELETE", "/api/security/bans/not-an-address")[0] == 400


def test_allow_listed_address_is_never_banned(stack: Stack) -> None:
    friend = "127.0.0.4"
    assert guess(stack, friend, "1001", MAX_FAILURES * 3) == [401] * (MAX_FAILURES * 3)
    assert register(server(stack), friend, "1001", stack.agent_password("1001")) == 200
    assert friend not in bans(stack)
    assert ban_events(stack, friend) == []


def test_banning_and_unbanning_leave_a_call_in_progress_and_registered_phones_alone(
    stack: Stack, lab: PhoneLab, tones: tuple[Path, Path], tmp_path: Path
) -> None:
    agent = register_agent(lab, stack, "1002")
    call, it = call_in(lab, stack, "13800138009", tones[0], tmp_path / "caller.wav")
    stack.wait_event(it["id"], "prompt_played", timeout=20)
    call.send_dtmf("1")
    ringing = agent.wait_incoming(timeout=15)
    ringing.answer(play=tones[1], record=tmp_path / "agent.wav", loop=True)
    stack.wait_event(it["id"], "connected", timeout=10)
    ringing.wait_rx_audio(1.0, timeout=10)

    guesser = "127.0.0.7"
    guess(stack, guesser, "1002", MAX_FAILURES)
    eventually(lambda: bans(stack).get(guesser), 5, "the ban")  # the ACL reloaded
    assert stack.api("DELETE", f"/api/security/bans/{guesser}")[0] == 200  # and again

    before_agent, before_caller = ringing.rx_audio_seconds(), call.rx_audio_seconds()
    ringing.wait_rx_audio(before_agent + 2.0, timeout=10)  # media still flows both ways
    call.wait_rx_audio(before_caller + 2.0, timeout=10)
    assert not call.is_disconnected and not ringing.is_disconnected
    assert stack.agent_state("1002")["device_registered"] is True
    call.hangup()
    call.wait_disconnected(timeout=10)
    ringing.wait_disconnected(timeout=10)


def test_a_fast_guesser_gets_few_guesses_checked_past_the_limit(stack: Stack) -> None:
    """Guessing as fast as one client can (each guess waits for its answer): count how many
    passwords Asterisk still checks between the limit and the ACL taking effect."""
    guesser = "127.0.0.8"
    checked, refused, started = 0, 0, time.monotonic()
    while time.monotonic() - started < 5:
        status = register(server(stack), guesser, "1001", f"guess-{checked}", timeout=0.5)
        if status != 401:
            refused = status
            break
        checked += 1
    elapsed = time.monotonic() - started
    print(f"\n{checked} guesses checked in {elapsed:.3f} s, then refused with {refused or 'no answer'}")
    assert refused in (403, 0), "never refused"
    assert MAX_FAILURES <= checked <= MAX_FAILURES + 200
    eventually(lambda: bans(stack).get(guesser), 5, "the fast guesser's ban")


def test_bans_kept_in_the_database_are_enforced_again_after_an_app_restart(stack: Stack) -> None:
    """The ban is put in PostgreSQL only (no ACL file had it), so only the restart's rebuild can
    enforce it."""
    kept = "127.0.0.9"
    password = stack.agent_password("1001")
    stack.query(
        "INSERT INTO sip_bans (address, since, until, failures)"
        " VALUES (%s, now(), now() + interval '10 minutes', 10)",
        kept,
    )
    assert register(server(stack), kept, "1001", password) == 200  # not yet enforced
    assert stack.stop() == 0, stack.tail()
    stack.start()
    assert kept in bans(stack)
    assert register(server(stack), kept, "1001", password, timeout=0.5) in (403, 0)
    assert stack.api("DELETE", f"/api/security/bans/{kept}")[0] == 200
    eventually(lambda: register(server(stack), kept, "1001", password) == 200 or None, 5, "the lifted source")


def test_guessers_are_still_banned_after_the_app_is_killed_and_adopts_its_running_asterisk(
    stack: Stack,
) -> None:
    stack.kill()
    stack.start()  # Asterisk ran on; the new app adopts it and logs in to AMI again
    guesser = "127.0.0.10"
    guess(stack, guesser, "1001", MAX_FAILURES)
    eventually(lambda: bans(stack).get(guesser), 5, "the ban after adoption")
    password = stack.agent_password("1001")
    eventually(  # the API shows the decision; the ACL follows within milliseconds
        lambda: register(server(stack), guesser, "1001", password, timeout=0.5) in (403, 0) or None,
        5,
        "the guesser refused after adoption",
    )
    assert stack.api("DELETE", f"/api/security/bans/{guesser}")[0] == 200


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium (scripts/setup)")
def test_a_supervisor_sees_a_ban_appear_on_the_screen_live_and_lifts_it_there(stack: Stack) -> None:
    from playwright.sync_api import expect, sync_playwright

    guesser = "127.0.0.11"
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            page = chromium.new_context(locale="en-US").new_page()
            page.goto(stack.web_url + "/supervisor")
            page.fill("#username", "lead")
            page.fill("#password", str(stack.secrets["panel_passwords"]["lead"]))
            page.click("#sign-in")
            expect(page).to_have_url(re.compile(r"/supervisor$"))
            expect(page.locator("#live")).to_have_attribute("data-live", "true")
            row = page.locator(f'#sip-bans-table tr[data-address="{guesser}"]')
            expect(row).to_have_count(0)

            guess(stack, guesser, "1001", MAX_FAILURES)
            # On the open page without reloading it: pushed over the supervisor's socket.
            expect(row).to_have_count(1, timeout=5000)
            expect(row).to_contain_text(str(MAX_FAILURES))
            row.get_by_role("button", name="Lift ban").click()
            expect(row).to_have_count(0, timeout=5000)
            expect(page.locator("#sip-bans-none")).to_be_visible()
        finally:
            chromium.close()
    assert guesser not in bans(stack)
    password = stack.agent_password("1001")
    eventually(
        lambda: register(server(stack), guesser, "1001", password) == 200 or None, 5, "the lifted source"
    )
    assert ban_events(stack, guesser) == ["banned", "lifted"]
