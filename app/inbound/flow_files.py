"""IVR flow files: one YAML file per flow, loaded and checked as a whole.

A reload either replaces every flow or none: an edit with a mistake is refused with the
file, line and field, and the flows already running stay. Without a flow directory the
classic `ivr:` settings (greeting, menu) make one default flow, so small centers need no
flow files at all.
"""

from __future__ import annotations

from pathlib import Path

from app.adapters.prompts import Prompt, PromptCache
from app.config import Settings, _Reader, compose_file
from app.domain.ivr_flow import (
    Flow,
    FlowError,
    FlowSet,
    Node,
    check_flow,
    check_flow_languages,
    check_flow_set,
    flow_prompts,
)
from app.errors import ConfigError


def flows_dir(settings: Settings) -> Path | None:
    if settings.ivr.flows is None:
        return None
    path = Path(settings.ivr.flows)
    if not path.is_absolute():
        path = Path(settings.source).parent / path
    return path


def load_flows(settings: Settings) -> FlowSet:
    """All flows for these settings. Raises ConfigError naming file, line and field."""
    directory = flows_dir(settings)
    if directory is None:
        return FlowSet({"main": classic_flow(settings)})
    files = sorted(directory.glob("*.yaml")) if directory.is_dir() else []
    if not files:
        raise ConfigError(
            "no flow files (*.yaml) here", file=str(directory), line=None, field_path="ivr.flows"
        )
    queues = {q.name for q in settings.queues}
    flows: list[Flow] = []
    lines: dict[str, dict[str, int]] = {}
    for path in files:
        flow, where = _load_one(path, queues, settings.languages)
        flows.append(flow)
        lines[flow.source] = where
    try:
        check_flow_set(flows)
    except FlowError as exc:
        culprit = flows[-1].source
        raise ConfigError(
            exc.message, file=culprit, line=lines[culprit].get(exc.path), field_path=exc.path
        ) from exc
    return FlowSet({f.name: f for f in flows})


def _load_one(path: Path, queues: set[str], languages: tuple[str, ...]) -> tuple[Flow, dict[str, int]]:
    file = str(path)
    node = compose_file(path)
    if node is None:
        raise ConfigError("empty flow file", file=file, line=None, field_path="")
    reader = _Reader(file)
    flow: Flow = reader.read(Flow, node, "")
    flow = Flow(**{**flow.__dict__, "source": file})
    try:
        check_flow(flow, queues)
        check_flow_languages(flow, languages)
    except FlowError as exc:
        line = reader.lines.get(exc.path)
        message = exc.message
        if line is None and exc.path in ("invalid", "no_input"):
            # Not in the file: its built-in text (English) is what is missing a language.
            line = reader.lines.get("name")
            message += f" (`{exc.path}` is not set in this file: its built-in text is English only)"
        raise ConfigError(message, file=file, line=line, field_path=exc.path) from exc
    return flow, reader.lines


def classic_flow(settings: Settings) -> Flow:
    """The `ivr:` greeting and menu as a flow: the menu, a queue per key; after the last try the
    first key's queue (a person), or goodbye when the menu has no keys."""
    ivr = settings.ivr
    person = f"queue-{ivr.menu[0].digit}" if ivr.menu else "goodbye"
    nodes: dict[str, Node] = {
        "greeting": Node(
            type="menu",
            prompt=ivr.greeting,
            options={o.digit: f"queue-{o.digit}" for o in ivr.menu},
            timeout_s=ivr.digit_timeout_s,
            attempts=ivr.attempts,
            invalid=ivr.invalid,
            no_input=ivr.no_input,
            on_fail=person,
        ),
        "goodbye": Node(type="hangup", prompt=ivr.goodbye, outcome="no_input"),
    }
    for option in ivr.menu:
        nodes[f"queue-{option.digit}"] = Node(
            type="queue",
            queue=option.queue,
            skills={n.skill: n.min_level for n in option.skills},
            label=dict(option.label),
        )
    return Flow(
        name="main",
        start="greeting",
        nodes=nodes,
        default=True,
        invalid=ivr.invalid,
        source=settings.source,
    )


async def prerender_flow_prompts(cache: PromptCache, flows: FlowSet) -> None:
    """Every fixed prompt of every flow, so no caller waits for synthesis; prompts with
    {placeholders} (a balance, a position) are made at call time and cached then."""
    for flow in flows.flows.values():
        for _, prompt in flow_prompts(flow):
            for text in prompt:
                if "{" not in text.text:
                    await cache.render(Prompt(text.text, text.lang))
