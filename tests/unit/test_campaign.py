"""Campaign rules: who may be called now, and what each call's result means for the customer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.domain.campaign import (
    CallingWindow,
    CallResult,
    CampaignRules,
    Exclusion,
    Lead,
    LeadStatus,
    RetryRule,
    TrunkRoute,
    after_call,
    agent_line,
    answered_result,
    normalise_phone,
    trunk_for,
    unanswered_result,
    why_not_callable,
)

# Monday 2026-11-30 02:00 UTC: 10:00 in Shanghai, 21:00 the day before in New York.
NOW = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)
RULES = CampaignRules(
    name="renewals",
    window=CallingWindow(days=("mon", "tue", "wed", "thu", "fri"), start="09:00", end="20:00"),
    default_timezone="Asia/Shanghai",
    retries={CallResult.BUSY: RetryRule(600, 2), CallResult.ABANDONED: RetryRule(72 * 3600, 2)},
    max_attempts=4,
    exclusions=(Exclusion("owns_product_x", "yes"),),
)


def test_a_fresh_lead_in_its_window_is_callable() -> None:
    assert why_not_callable(Lead(1, "13800000001"), RULES, NOW, on_dnc_list=False) is None


def test_dnc_exclusion_kill_switch_and_the_customers_own_time_zone() -> None:
    lead = Lead(1, "13800000001")
    assert why_not_callable(lead, RULES, NOW, on_dnc_list=True) == "on the do-not-call list"
    assert why_not_callable(lead, RULES, NOW, False, active=False) == "campaign stopped"
    owner = Lead(2, "13800000002", attributes={"owns_product_x": "yes"})
    assert why_not_callable(owner, RULES, NOW, False) == "excluded: owns_product_x = yes"
    new_york = Lead(3, "12125550100", timezone="America/New_York")  # Sunday 21:00 there
    assert "calling window" in (why_not_callable(new_york, RULES, NOW, False) or "")
    assert why_not_callable(new_york, RULES, NOW + timedelta(hours=13), False) is None  # Monday 10:00


def test_busy_is_retried_after_its_pause_up_to_its_limit() -> None:
    lead = Lead(1, "13800000001")
    after_call(lead, CallResult.BUSY, RULES, NOW)
    assert lead.status is LeadStatus.PENDING and lead.next_attempt_at == NOW + timedelta(seconds=600)
    assert why_not_callable(lead, RULES, NOW + timedelta(seconds=599), False) == "retry pause"
    assert why_not_callable(lead, RULES, NOW + timedelta(seconds=600), False) is None
    after_call(lead, CallResult.BUSY, RULES, NOW)
    assert lead.status is LeadStatus.EXHAUSTED  # type: ignore[comparison-overlap]


def test_an_abandoned_call_locks_the_number_out_for_72_hours() -> None:
    lead = Lead(1, "13800000001")
    after_call(lead, CallResult.ABANDONED, RULES, NOW)
    assert lead.locked_until == NOW + timedelta(hours=72)
    assert (
        why_not_callable(lead, RULES, NOW + timedelta(hours=71), False)
        == "locked out after an abandoned call"
    )


def test_results_without_a_retry_rule_end_the_lead_and_connected_is_done() -> None:
    lead = Lead(1, "13800000001")
    after_call(lead, CallResult.MACHINE, RULES, NOW)  # no machine rule in this campaign
    assert lead.status is LeadStatus.EXHAUSTED
    talked = Lead(2, "13800000002")
    after_call(talked, CallResult.CONNECTED, RULES, NOW)
    assert talked.status is LeadStatus.DONE
    bad = Lead(3, "13800000003")
    after_call(bad, CallResult.INVALID, RULES, NOW)
    assert bad.status is LeadStatus.INVALID


def test_total_attempts_cap_all_results() -> None:
    rules = CampaignRules(name="c", retries={CallResult.BUSY: RetryRule(0, 10)}, max_attempts=2)
    lead = Lead(1, "13800000001")
    after_call(lead, CallResult.BUSY, rules, NOW)
    after_call(lead, CallResult.BUSY, rules, NOW)
    assert lead.status is LeadStatus.EXHAUSTED


def test_causes_and_amd_verdicts() -> None:
    assert unanswered_result(17) is CallResult.BUSY
    assert unanswered_result(19) is CallResult.NO_ANSWER
    assert unanswered_result(34) is CallResult.CONGESTION
    assert unanswered_result(1) is CallResult.INVALID
    assert unanswered_result(111) is CallResult.FAILED
    assert answered_result("MACHINE") is CallResult.MACHINE
    assert (
        answered_result("NOTSURE") is None
        and answered_result("HUMAN") is None
        and answered_result(None) is None
    )


def test_least_cost_route_is_the_longest_prefix() -> None:
    routes = (TrunkRoute("", "carrier"), TrunkRoute("86", "china"), TrunkRoute("8610", "beijing"))
    assert trunk_for("861012345678", routes) == "beijing"
    assert trunk_for("862012345678", routes) == "china"
    assert trunk_for("12125550100", routes) == "carrier"
    assert trunk_for("1", (TrunkRoute("86", "china"),)) is None


def test_window_next_open_and_phone_cleanup() -> None:
    window = CallingWindow(days=("mon",), start="09:00", end="18:00")
    sunday_noon = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    assert window.next_open(sunday_noon) == datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    assert normalise_phone(" +86 (138) 0000-0001 ") == "+8613800000001"
    assert normalise_phone("call me") is None


def test_agents_are_nailed_up_by_default_except_in_preview_and_their_own_choice_wins() -> None:
    assert agent_line("predictive", None, None) == "nailed"
    assert agent_line("progressive", None, None) == "nailed"
    assert agent_line("progressive", "ringing", None) == "ringing"
    assert agent_line("progressive", "ringing", "nailed") == "nailed"
    assert agent_line("predictive", None, "ringing") == "ringing"
    assert agent_line("preview", "nailed", "nailed") == "ringing"
