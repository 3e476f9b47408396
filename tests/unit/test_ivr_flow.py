"""IVR flow rules: where answers lead, which input is valid, which branch a caller takes."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from app.config import PromptText, Settings, load_settings
from app.domain.ivr_flow import (
    CallFacts,
    Flow,
    FlowError,
    Hours,
    Node,
    Rule,
    after_attempts,
    ask_again,
    branch_target,
    check_flow,
    check_flow_languages,
    describe_choices,
    fill,
    input_problem,
    is_open,
    luhn_ok,
    main_menu,
    menu_target,
    panel_labels,
)
from app.domain.prompt import date_aloud, digits_aloud, label_aloud, money_aloud, time_aloud
from app.errors import ConfigError
from app.inbound.flow_files import classic_flow, load_flows

REPO = Path(__file__).resolve().parents[2]
SAY = (PromptText("Hello."),)


def flow(**nodes: Node) -> Flow:
    base = {
        "menu": Node(type="menu", prompt=SAY, options={"1": "general", "2": "account"}),
        "account": Node(
            type="collect", prompt=SAY, into="account", min_digits=4, max_digits=12, next="general"
        ),
        "general": Node(type="queue", queue="general"),
    }
    base.update(nodes)
    return Flow(name="main", start="menu", nodes=base, operator="general", default=True)


def facts(ani: str = "13700000001", known: bool = False, vip: bool = False, **collected: str) -> CallFacts:
    return CallFacts(ani, known, vip, datetime(2026, 11, 30, 3, 0, tzinfo=UTC), collected)


def test_keys_lead_to_their_nodes_and_0_reaches_a_person() -> None:
    f = flow()
    menu = f.nodes["menu"]
    assert menu_target(f, menu, "2") == "account"
    assert menu_target(f, menu, "0") == "general"
    assert menu_target(f, menu, "9") is None
    assert after_attempts(f, menu) == "general"


def test_collected_digits_are_checked() -> None:
    node = Node(type="collect", into="account", min_digits=4, max_digits=12, pattern=r"7\d+", checksum="luhn")
    assert input_problem(node, "") == "empty"
    assert input_problem(node, "123") == "too short"
    assert input_problem(node, "1234567890123") == "too long"
    assert input_problem(node, "12345674") == "wrong format"
    assert input_problem(node, "79927398710") == "check digit wrong"
    assert input_problem(node, "79927398713") is None
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")


def test_branches_by_number_customer_hours_and_collected_data() -> None:
    office = Hours(
        days=("mon", "tue", "wed", "thu", "fri"), start="09:00", end="18:00", timezone="Asia/Shanghai"
    )
    f = flow(
        entry=Node(
            type="branch",
            rules=(
                Rule(goto="blocked", ani_in="blocked"),
                Rule(goto="closed", closed="office"),
                Rule(goto="vip", customer="vip"),
                Rule(goto="known", collected={"lang": "zh"}),
            ),
            otherwise="menu",
        ),
        blocked=Node(type="hangup", outcome="blocked"),
        closed=Node(type="voicemail", queue="general"),
        vip=Node(type="queue", queue="general"),
        known=Node(type="queue", queue="general"),
    )
    f = Flow(**{**f.__dict__, "lists": {"blocked": ("13800000000",)}, "hours": {"office": office}})
    entry = f.nodes["entry"]
    # Monday 2026-11-30 03:00 UTC is 11:00 in Shanghai: open.
    assert branch_target(f, entry, facts(ani="13800000000")) == "blocked"
    assert branch_target(f, entry, facts(vip=True, known=True)) == "vip"
    assert branch_target(f, entry, facts(lang="zh")) == "known"
    assert branch_target(f, entry, facts()) == "menu"
    night = CallFacts("1", False, False, datetime(2026, 11, 30, 14, 0, tzinfo=UTC), {})  # 22:00 there
    assert branch_target(f, entry, night) == "closed"


def test_opening_hours_holidays_and_overnight() -> None:
    monday_11_shanghai = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)
    office = Hours(start="09:00", end="18:00", timezone="Asia/Shanghai")
    assert is_open(office, monday_11_shanghai)
    assert not is_open(
        Hours(start="09:00", end="18:00", timezone="Asia/Shanghai", holidays=("2026-11-30",)),
        monday_11_shanghai,
    )
    assert not is_open(Hours(days=("sat", "sun"), timezone="Asia/Shanghai"), monday_11_shanghai)
    overnight = Hours(days=("mon",), start="20:00", end="02:00", timezone="UTC")
    assert is_open(overnight, datetime(2026, 11, 30, 21, 0, tzinfo=UTC))
    assert not is_open(overnight, datetime(2026, 11, 30, 12, 0, tzinfo=UTC))
    assert is_open(Hours(days=("mon",), start="00:00", end="00:00"), monday_11_shanghai)


def test_prompt_placeholders_are_filled_and_unknown_ones_said_as_unknown() -> None:
    said = fill(
        (PromptText("Your balance is {balance} {currency}. {nope}"),),
        {"balance": "12.50", "currency": "yuan"},
    )
    assert said[0].text == "Your balance is 12.50 yuan. unknown"


@pytest.mark.parametrize(
    ("change", "path", "words"),
    [
        ({"start": "nowhere"}, "start", "no node"),
        ({"operator": "menu"}, "operator", "must name a queue node"),
    ],
)
def test_broken_flows_are_refused(change: dict[str, str], path: str, words: str) -> None:
    f = Flow(**{**flow().__dict__, **change})
    with pytest.raises(FlowError) as err:
        check_flow(f, {"general"})
    assert err.value.path == path and words in err.value.message


def test_dangling_targets_unknown_queues_and_dead_end_menus_are_refused() -> None:
    with pytest.raises(FlowError, match="no node named 'nowhere'") as err:
        check_flow(flow(menu=Node(type="menu", prompt=SAY, options={"1": "nowhere"})), {"general"})
    assert err.value.path == "nodes.menu.options.1"
    with pytest.raises(FlowError, match="no queue named") as err:
        check_flow(flow(general=Node(type="queue", queue="sales")), {"general"})
    no_operator = Flow(**{**flow().__dict__, "operator": None})
    no_operator = Flow(
        **{
            **no_operator.__dict__,
            "nodes": {**no_operator.nodes, "menu": Node(type="menu", prompt=SAY, options={"2": "account"})},
        }
    )
    with pytest.raises(FlowError, match="lead to a person"):
        check_flow(no_operator, {"general"})


def test_classic_settings_make_one_default_flow() -> None:
    f = classic_flow(Settings())
    assert f.default and f.start == "greeting"
    assert f.nodes["greeting"].options == {"1": "queue-1"}
    assert f.nodes["queue-1"].queue == "general"
    assert f.nodes["goodbye"].outcome == "no_input"
    assert f.nodes["greeting"].on_fail == "queue-1", "after the last try: a person"


def test_a_silent_caller_is_asked_again_only_while_a_person_is_still_reached_in_time() -> None:
    menu = Node(type="menu", options={"1": "q"}, attempts=3)
    # Short tries (a 4 s prompt and 6 s wait): the three tries fit in 30 s.
    assert ask_again(menu, 1, silent_s=11.5, last_try_s=10, limit_s=30)
    assert ask_again(menu, 2, silent_s=20, last_try_s=10, limit_s=30)
    assert not ask_again(menu, 3, silent_s=1, last_try_s=1, limit_s=30), "no tries left"
    # A 17 s menu and its 6 s wait: one more would end past 30 s, so on to a person now.
    assert not ask_again(menu, 1, silent_s=24.5, last_try_s=23, limit_s=30)


def write_flow(directory: Path, name: str, text: str) -> None:
    directory.mkdir(exist_ok=True)
    (directory / f"{name}.yaml").write_text(text)


def center(tmp_path: Path) -> Path:
    (tmp_path / "center.yaml").write_text("ivr:\n  flows: flows\nqueues:\n  - {name: general}\n")
    return tmp_path / "center.yaml"


GOOD = """name: main
default: true
start: menu
operator: person
nodes:
  menu:
    type: menu
    prompt: {text: "Press 1."}
    options: {"1": person}
  person: {type: queue, queue: general}
"""


def test_flow_files_load_and_errors_name_file_line_and_field(tmp_path: Path) -> None:
    write_flow(tmp_path / "flows", "main", GOOD)
    flows = load_flows(load_settings(center(tmp_path)))
    assert list(flows.flows) == ["main"] and flows.for_dnis("7000").name == "main"

    write_flow(tmp_path / "flows", "main", GOOD.replace('options: {"1": person}', 'options: {"1": nobody}'))
    with pytest.raises(ConfigError) as err:
        load_flows(load_settings(center(tmp_path)))
    assert str(err.value).startswith(f"{tmp_path / 'flows' / 'main.yaml'}:9: nodes.menu.options.1: ")
    assert "no node named 'nobody'" in str(err.value)

    write_flow(tmp_path / "flows", "main", GOOD.replace("type: queue", "type: queeue"))
    with pytest.raises(ConfigError, match=r"main.yaml:10: nodes.person.type: expected one of"):
        load_flows(load_settings(center(tmp_path)))


def test_two_defaults_or_a_number_claimed_twice_are_refused(tmp_path: Path) -> None:
    write_flow(tmp_path / "flows", "a", GOOD)
    write_flow(tmp_path / "flows", "b", GOOD.replace("name: main", "name: other"))
    with pytest.raises(ConfigError, match="exactly one flow must be `default: true`"):
        load_flows(load_settings(center(tmp_path)))


def test_demo_flows_load() -> None:
    flows = load_flows(load_settings(REPO / "config" / "demo.yaml"))
    assert flows.for_dnis("7000").name == "main"


def test_the_run_banner_lists_the_main_menu_a_caller_really_hears() -> None:
    flow = load_flows(load_settings(REPO / "config" / "demo.yaml")).for_dnis("7000")
    menu = main_menu(flow)  # past the blocked / closed / VIP branch and any greeting
    assert menu is flow.nodes["main_menu"]
    choices = dict(describe_choices(flow, menu))
    assert choices["1"] == "General questions"  # the flow's labels, where it has them
    assert choices["2"] == "Billing (1 Account number, 2 Billing team)"
    assert choices["4"] == "Order number"
    assert choices["5"] == "Documents by fax"
    assert list(choices)[-1] == "0" and choices["0"] == "an operator"


def test_choices_without_labels_are_said_by_what_they_do() -> None:
    flow = Flow(
        "f",
        "m",
        {
            "m": Node("menu", options={"1": "q", "2": "sub", "3": "vm"}),
            "sub": Node("menu", options={"1": "ask"}),
            "ask": Node("collect", into="account", next="q"),
            "q": Node("queue", queue="billing"),
            "vm": Node("voicemail", queue="billing"),
        },
        operator="q",
    )
    menu = main_menu(flow)
    assert menu is not None
    assert describe_choices(flow, menu) == [
        ("1", "the billing team"),
        ("2", "sub (1 enter your account)"),
        ("3", "leave a message"),
        ("0", "an operator"),
    ]


def test_identifiers_are_read_digit_by_digit_and_money_as_money_in_both_languages() -> None:
    values = {
        "account": "79900012345",
        "order": "20231125",
        "count": "42",
        "area": "0755",
        "balance": "1234.50",
    }
    en, zh = fill(
        (
            PromptText("Account {account}, order {order}, {count} items, area {area}, {balance:money}."),
            PromptText("账户{account}，余额{balance:money}，订单{order:number}。", "zh"),
        ),
        values,
    )
    assert en.text == (
        "Account 7 9 9, 0 0 0 1, 2 3 4 5, order 2 0 2 3, 1 1 2 5, 42 items, area 0 7 5 5, 1234 yuan 50 fen."
    )
    assert zh.text == "账户七九九，零零零幺，二三四五，余额1234元5角，订单20231125。"
    assert digits_aloud("+86 138-0013-8000") == "8 6 1, 3 8, 0 0 1 3, 8 0 0 0"
    assert money_aloud("-3.00") == "minus 3 yuan" and money_aloud("not money") == "not money"


def test_labels_name_the_choices_and_fields_for_the_panel_and_bad_ones_are_refused(tmp_path: Path) -> None:
    labelled = flow(
        account=Node(
            type="collect",
            prompt=SAY,
            into="account",
            next="general",
            label={"en": "Account number", "zh": "账号"},
        ),
        general=Node(type="queue", queue="general", label={"en": "General questions"}),
    )
    check_flow(labelled, {"general"})
    labels = panel_labels(labelled)
    assert labels.choices == {
        "account": {"en": "Account number", "zh": "账号"},
        "general": {"en": "General questions"},
    }
    assert labels.fields == {"account": {"en": "Account number", "zh": "账号"}}

    write_flow(
        tmp_path / "flows", "main", GOOD.replace("queue: general}", "queue: general, label: {fr: Général}}")
    )
    with pytest.raises(ConfigError, match=r"main.yaml:\d+: nodes.person.label: give labels as en and zh"):
        load_flows(load_settings(center(tmp_path)))


def test_dates_and_times_are_read_as_people_say_them_in_both_languages() -> None:
    said = fill(
        (
            PromptText("Your engineer comes on {visit:date} at {visit:time}.", "en"),
            PromptText("工程师将于{visit:date}{visit:time}上门。", "zh"),
        ),
        {"visit": "2026-12-03T14:30:00+08:00"},
    )
    assert [p.text for p in said] == [
        "Your engineer comes on the third of December, 2026 at 2:30 pm.",
        "工程师将于2026年12月3日下午2点30分上门。",
    ]
    assert date_aloud("2027-01-31") == "the thirty-first of January, 2027"
    assert date_aloud("2027-01-31", "zh") == "2027年1月31日"
    # The twelve-hour clock: on the hour without minutes; in Mandarin the part of the day.
    cases = {
        "00:05": ("12:05 am", "凌晨0点零5分"),
        "09:00": ("9 am", "上午9点"),
        "12:00": ("12 pm", "中午12点"),
        "14:30:59": ("2:30 pm", "下午2点30分"),
        "19:45": ("7:45 pm", "晚上7点45分"),
    }
    for value, (en, zh) in cases.items():
        assert (time_aloud(value), time_aloud(value, "zh")) == (en, zh), value
    # Not a date or a time (a date is no time of day): read as written, never a wrong one.
    assert date_aloud("soon") == "soon" and time_aloud("2026-12-03") == "2026-12-03"
    assert date_aloud("14:30", "zh") == "14:30"


STATUS = {
    "shipped": {"en": "shipped", "zh": "已发货"},
    "being repaired": {"en": "being repaired", "zh": "维修中"},
}


def test_a_status_code_is_read_by_its_label_in_the_callers_language() -> None:
    prompt = (
        PromptText("Order {order_number} is {status}.", "en"),
        PromptText("订单{order_number}的状态：{status}。", "zh"),
    )
    said = fill(prompt, {"order_number": "4711", "status": "shipped"}, {"status": STATUS})
    assert [p.text for p in said] == ["Order 4711 is shipped.", "订单4711的状态：已发货。"]
    # A code nobody labelled is read as written rather than not at all.
    said = fill(prompt, {"order_number": "4711", "status": "lost"}, {"status": STATUS})
    assert said[1].text == "订单4711的状态：lost。"
    assert label_aloud("being repaired", STATUS, "zh") == "维修中"


def test_the_demo_reads_its_orders_status_by_label() -> None:
    node = load_flows(load_settings(REPO / "config" / "demo.yaml")).flows["main"].nodes["say_order"]
    said = fill(node.prompt, {"order_number": "20261203", "status": "shipped"}, node.value_labels)
    assert [p.text for p in said] == [
        "Order 2 0 2 6, 1 2 0 3 is shipped.",
        "订单二零二六，幺二零三的状态：已发货。",
    ]


LOOKUP = GOOD.replace(
    '    options: {"1": person}\n',
    """    options: {"1": person, "2": order}
  order: {type: collect, prompt: {text: "Order?"}, into: order, next: say}
  say:
    type: lookup
    lookup: order_status
    key: order
    prompt: {text: "It is {status}."}
    value_labels:
      status:
        shipped: {en: shipped, zh: 已发货}
    next: person
""",
)


def test_status_labels_missing_a_language_or_in_no_language_are_refused_with_file_line_and_field(
    tmp_path: Path,
) -> None:
    write_flow(tmp_path / "flows", "main", LOOKUP)
    assert load_flows(load_settings(center(tmp_path))).flows["main"].nodes["say"].value_labels == {
        "status": {"shipped": {"en": "shipped", "zh": "已发货"}}
    }
    write_flow(tmp_path / "flows", "main", LOOKUP.replace("zh: 已发货", "fr: expédié"))
    with pytest.raises(ConfigError, match=r"main.yaml:18: nodes.say.value_labels.status.shipped.fr: a label"):
        load_flows(load_settings(center(tmp_path)))
    # A bilingual center: every code needs a label in each language it offers (the loader
    # names this path's line as above).
    say = Node(
        type="lookup",
        prompt=(PromptText("It is {status}."), PromptText("{status}。", "zh")),
        lookup="order_status",
        key="order",
        next="general",
        value_labels={"status": {"shipped": {"en": "shipped"}}},
    )
    bilingual = Flow(
        name="main",
        start="say",
        nodes={"say": say, "general": Node(type="queue", queue="general")},
        invalid=(PromptText("Not valid."), PromptText("无效。", "zh")),
        no_input=(PromptText("Not heard."), PromptText("没有听到。", "zh")),
    )
    check_flow_languages(bilingual, ["en"])
    with pytest.raises(FlowError) as err:
        check_flow_languages(bilingual, ["en", "zh"])
    assert (err.value.path, err.value.message.split(";")[0]) == (
        "nodes.say.value_labels.status.shipped",
        "no label in zh",
    )
