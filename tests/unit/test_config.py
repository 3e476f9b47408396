"""Configuration errors name the file, the line and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.config import Settings, ban_rules, call_limits, load_settings
from app.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "center.yaml"
    p.write_text(text)
    return p


def test_demo_config_is_valid() -> None:
    s = load_settings(REPO / "config" / "demo.yaml")
    assert [a.id for a in s.agents] == [str(i) for i in range(1001, 1011)]
    assert s.carrier.dids[0] == "7000"
    assert s.carrier.match == ("127.0.0.2",)
    assert s.web.host == "127.0.0.1"


def test_empty_file_gives_defaults(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, ""))
    assert s.asterisk == Settings().asterisk
    assert s.source.endswith("center.yaml")


@pytest.mark.parametrize(
    ("text", "line", "field", "words"),
    [
        ("asterisk:\n  sip_port: abc\n", 2, "asterisk.sip_port", "expected an integer"),
        ("asterisk:\n  sip_prot: 5060\n", 2, "asterisk.sip_prot", "unknown field"),
        ("web:\n  port: 8080\n  host: [a, b]\n", 3, "web.host", "expected a single value"),
        ("agents:\n  - id: '1001'\n", 2, "agents[0].name", "required field is missing"),
        ("ivr:\n  greeting:\n    text: hi\n    lang: fr\n", 4, "ivr.greeting.lang", "expected one of"),
        ("asterisk:\n  manage: yes please\n", 2, "asterisk.manage", "true or false"),
        ("supervision:\n  summary_after_min: 1440\n", 2, "supervision.summary_after_min", "0 to 720"),
        (
            "supervision:\n  tiles:\n    amber_wait_s: 90\n    red_wait_s: 60\n",
            4,
            "supervision.tiles.red_wait_s",
            "at least amber_wait_s",
        ),
        (
            "supervision:\n  tiles: {amber_below_percent: 70, red_below_percent: 75}\n",
            2,
            "supervision.tiles.red_below_percent",
            "from 0 to amber_below_percent",
        ),
        ("carrier:\n  match: [127.0.0.2, not-an-ip]\n", 2, "carrier.match[1]", "not an IP"),
        ("asterisk:\n  sip_port: 8080\n", 2, "asterisk.sip_port", "already used by web.port"),
        ("agents:\n  - {id: '1001', name: A}\n  - {id: '1001', name: B}\n", 3, "agents[1].id", "twice"),
        (
            "queues:\n  - name: a\n    overflow: [{to_queue: b, max_wait_s: 5}]\n"
            "  - name: b\n    overflow: [{to_queue: a, max_wait_s: 5}]\n"
            "ivr:\n  menu: [{digit: '1', queue: a}]\n",
            3,
            "queues[0].overflow",
            "leads back",
        ),
        ("ivr:\n  menu: [{digit: '1', queue: nope}]\n", 2, "ivr.menu[0].queue", "no queue named"),
        ("ivr:\n  position: [{text: 'You are {place}'}]\n", 2, "ivr.position[0].text", "unknown placeholder"),
        ("queues:\n  - {name: general, announce_every_s: 1}\n", 2, "queues[0].announce_every_s", "least 2"),
        (
            "agents:\n  - {id: '1001', name: A, skills: {billing: 11}}\n",
            2,
            "agents[0].skills.billing",
            "1-10",
        ),
        ("agents:\n  - {id: '1001', name: A, skills: {'a b': 3}}\n", 2, "agents[0].skills", "skill name"),
        ("mail_catcher:\n  max_mb: 0\n", 2, "mail_catcher.max_mb", "megabytes"),
        (
            'queues:\n  - {name: general, skills: [{skill: "tech\\nnical"}]}\n',
            2,
            "queues[0].skills[0].skill",
            "skill name",
        ),
        (
            "queues:\n  - {name: general, callback: {offer: true}}\n",
            2,
            "queues[0].callback.offer",
            "carrier.outbound_contact",
        ),
        ("carrier:\n  outbound_contact: 127.0.0.2\n", 2, "carrier.outbound_contact", "not a SIP URI"),
        (
            "carrier: {outbound_contact: 'sip:127.0.0.2:5062'}\n"
            "queues:\n  - {name: general, callback: {offer: true, customer_ring_s: 5}}\n",
            3,
            "queues[0].callback.customer_ring_s",
            "at least 15 s",
        ),
        (
            "queues:\n  - {name: general, voicemail: {offer: true, key: '1'}, callback: {offer: false}}\n"
            "  - {name: b, voicemail: {key: '22'}}\n",
            3,
            "queues[1].voicemail.key",
            "one key",
        ),
        ("voicemail:\n  email_to: [not-an-address]\n", 2, "voicemail.email_to[0]", "not an e-mail"),
        (
            "carrier: {outbound_contact: 'sip:127.0.0.2:5062'}\n"
            "campaigns:\n  - {name: c, queue: general, ring_s: 10}\n",
            3,
            "campaigns[0].ring_s",
            "at least 15 s",
        ),
        (
            "carrier: {outbound_contact: 'sip:127.0.0.2:5062'}\n"
            "campaigns:\n  - name: c\n    queue: general\n"
            "    retries: {sunny: {after_s: 1, max_attempts: 1}}\n",
            5,
            "campaigns[0].retries.sunny",
            "can be retried",
        ),
        ("campaigns:\n  - {name: c, queue: general}\n", 2, "campaigns[0]", "carrier.outbound_contact"),
        ("routing:\n  transfer_numbers: ['139']\n", 2, "routing.transfer_numbers[0]", "outbound_contact"),
        ("routing:\n  transfer_numbers: ['13x']\n", 2, "routing.transfer_numbers[0]", "number prefix"),
        (
            "outbound:\n  numbers: {mobile: '1[3-9'}\n",
            2,
            "outbound.numbers.mobile",
            "not a regular expression",
        ),
        ("outbound:\n  numbers: {}\n", 2, "outbound.numbers", "can call nobody"),
        ("outbound:\n  purposes: {robocall: [mobile]}\n", 2, "outbound.purposes.robocall", "unknown purpose"),
        (
            "outbound:\n  purposes:\n    callback: [satellite]\n",
            3,
            "outbound.purposes.callback[0]",
            "no kind",
        ),
        ("outbound:\n  deny: ['+882']\n", 2, "outbound.deny[0]", "number prefix"),
        ("outbound:\n  per_number: {per_hour: 5, per_day: 2}\n", 2, "outbound.per_number", "per_day"),
        ("outbound:\n  country_code: ''\n", 2, "outbound.country_code", "digits"),
        (
            "ivr:\n  callback_offer: [{text: 'press {digit}'}]\n",
            2,
            "ivr.callback_offer[0].text",
            "unknown placeholder",
        ),
        ("agents:\n  - {id: '1001', name: A, role: boss}\n", 2, "agents[0].role", "expected one of"),
        (
            "web:\n  users: [{username: Lead, name: L}]\n",
            2,
            "web.users[0].username",
            "starting with a letter",
        ),
        (
            "web:\n  users: [{username: lead, name: L, role: agent}]\n",
            2,
            "web.users[0].role",
            "expected one of",
        ),
        (
            "web:\n  users:\n    - {username: lead, name: L}\n    - {username: lead, name: M}\n",
            4,
            "web.users[1].username",
            "twice",
        ),
        ("web:\n  not_ready_reasons: []\n", 2, "web.not_ready_reasons", "at least one"),
        ("web:\n  not_ready_reasons: [{code: Lunch Break}]\n", 2, "web.not_ready_reasons[0].code", "a-z"),
        ("web:\n  session_idle_s: 10\n", 2, "web.session_idle_s", ">= 60"),
        (
            "security:\n  sip_bans:\n    allow:\n      - 10.0.0.0/8\n      - the office\n",
            5,
            "security.sip_bans.allow[1]",
            "not an IP address or network",
        ),
        ("security:\n  sip_bans:\n    max_failures: 0\n", 3, "security.sip_bans.max_failures", "at least 1"),
        ("security:\n  sip_bans:\n    ban_time_s: -5\n", 3, "security.sip_bans.ban_time_s", "positive"),
        ("security:\n  sip_bans:\n    bantime: 5\n", 3, "security.sip_bans.bantime", "unknown field"),
        (
            "security:\n  call_limits:\n    per_source: {calls_per_s: 0, burst: 5}\n",
            3,
            "security.call_limits.per_source.calls_per_s",
            "positive",
        ),
        (
            "security:\n  call_limits:\n    per_trunk: {calls_per_s: 5, burst: 5, concurrent: 3000}\n",
            3,
            "security.call_limits.per_trunk.concurrent",
            "between 1 and 2500",
        ),
        (
            "voicemail:\n  smtp: {host: 127.0.0.1, port: 25}\nmail_catcher: {port: 2525}\n",
            2,
            "voicemail.smtp",
            "mail goes to 127.0.0.1:25",
        ),
        ("mail_catcher: {maildir: ../../etc}\n", 1, "mail_catcher.maildir", "under var_dir"),
        (
            "sample_data:\n  accounts:\n    - {account_number: '123456', balance: 1, customer_phone: '42'}\n",
            3,
            "sample_data.accounts[0].customer_phone",
            "no sample customer",
        ),
        (
            "sample_data:\n  orders: [{order_number: 'A1', status: x}]\n",
            2,
            "sample_data.orders[0].order_number",
            "digits",
        ),
        (
            "queues:\n  - name: general\n    offer: {accept: true, offer_s: 1}\n",
            3,
            "queues[0].offer.offer_s",
            "3-120 seconds",
        ),
        (
            "queues:\n  - name: general\n    offer: {accept: true, no_response_reason: ''}\n",
            3,
            "queues[0].offer.no_response_reason",
            "1-40 characters",
        ),
        (
            "queues:\n  - name: general\n    strategy: ring_all\n    offer: {accept: true}\n",
            4,
            "queues[0].offer.accept",
            "ring_all",
        ),
        (
            "sample_data:\n  customers: [{name: A, phone: '1009', tier: gold}]\n",
            2,
            "sample_data.customers[0].tier",
            "top",
        ),
    ],
)
def test_bad_config_names_file_line_and_field(
    tmp_path: Path, text: str, line: int | None, field: str, words: str
) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, text))
    msg = str(err.value)
    assert msg.startswith(f"{tmp_path / 'center.yaml'}:{line}: {field}: "), msg
    assert words in msg
    assert err.value.details["field"] == field


def test_panel_settings_read_from_yaml(tmp_path: Path) -> None:
    s = load_settings(
        write(
            tmp_path,
            "agents:\n  - {id: '1001', name: A, role: expert}\n"
            "web:\n  users: [{username: lead, name: Lee}, {username: root, name: R, role: admin}]\n"
            "  not_ready_reasons: [{code: lunch, en: Lunch, zh: 午餐}, {code: coaching}]\n",
        )
    )
    assert s.agents[0].role == "expert"
    assert [(u.username, u.role) for u in s.web.users] == [("lead", "supervisor"), ("root", "admin")]
    assert [r.code for r in s.web.not_ready_reasons] == ["lunch", "coaching"]
    assert Settings().web.not_ready_reasons[0].code == "break"  # a default list when none is given


def test_malformed_yaml_names_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, "asterisk:\n  sip_port: 5060\n   http_port: [\n"))
    assert ":3:" in str(err.value) or ":4:" in str(err.value)
    assert "malformed YAML" in str(err.value)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "nope.yaml")


def test_numbers_are_accepted_for_text_fields(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, "carrier:\n  dids: [7000, '7001']\n"))
    assert s.carrier.dids == ("7000", "7001")


def test_sip_ban_rules_allow_the_carrier_trunk_and_loopback_by_default(tmp_path: Path) -> None:
    s = load_settings(
        write(
            tmp_path,
            "carrier:\n  match: [192.0.2.10, 198.51.100.0/24]\nsecurity:\n  sip_bans:\n    ban_time_s: 60\n",
        )
    )
    rules = ban_rules(s)
    assert (rules.max_failures, rules.find_time_s, rules.ban_time_s) == (10, 600, 60)
    assert [str(n) for n in rules.allow] == ["127.0.0.1/32", "192.0.2.10/32", "198.51.100.0/24"]


def test_call_limits_default_to_what_the_rtp_range_carries(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, "asterisk:\n  rtp_start: 10000\n  rtp_end: 19999\n"))
    limits = call_limits(s)
    assert limits is not None
    assert (limits.per_source.calls_per_s, limits.per_source.burst, limits.per_source.concurrent) == (
        10,
        50,
        2500,
    )
    assert limits.per_trunk.concurrent == 2500 and limits.trunks == {"carrier"}
    off = load_settings(write(tmp_path, "security:\n  call_limits: {enabled: false}\n"))
    assert call_limits(off) is None


def test_wallboard_tile_thresholds_read_from_yaml(tmp_path: Path) -> None:
    from app.config import tile_thresholds
    from app.domain.wallboard import TileThresholds

    assert tile_thresholds(load_settings(write(tmp_path, ""))) == TileThresholds(60, 120, 80, 60)
    text = "supervision:\n  tiles: {amber_wait_s: 20, red_wait_s: 45, amber_below_percent: 90}\n"
    assert tile_thresholds(load_settings(write(tmp_path, text))) == TileThresholds(20, 45, 90, 60)
