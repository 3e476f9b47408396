"""Configuration: YAML validated at load into frozen, typed settings.

Validation walks the YAML node tree (not the plain parsed data) so every error can name
the file, the line and the field path, e.g. ``demo.yaml:12: asterisk.sip_port: expected
an integer, got 'abc'``. Unknown fields are errors: a typo must not be silently ignored.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from app.errors import ConfigError

# ---------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AsteriskSettings:
    """One project-local Asterisk instance. Ports differ per instance so several run side by side."""

    instance: str = "main"
    sip_bind: str = "127.0.0.1"
    sip_port: int = 5060
    http_port: int = 8088
    ami_port: int = 5038
    rtp_start: int = 10000
    rtp_end: int = 10999
    # Start and supervise Asterisk from the app. False: connect to one started elsewhere.
    manage: bool = True


@dataclass(frozen=True)
class CarrierSettings:
    """The SIP trunk: identified by source address, no registration, as real trunks are."""

    name: str = "carrier"
    match: tuple[str, ...] = ("127.0.0.2",)
    dids: tuple[str, ...] = ("7000",)


@dataclass(frozen=True)
class AgentSettings:
    id: str
    name: str
    # Demo phones register with a generated password; see var/secrets.yaml.
    codecs: tuple[str, ...] = ("ulaw", "alaw", "g722")


@dataclass(frozen=True)
class PromptText:
    text: str
    lang: Literal["en", "zh"] = "en"


Prompts = tuple[PromptText, ...]


@dataclass(frozen=True)
class IvrSettings:
    """What the caller hears. Each prompt is one text or a list played in order, e.g.
    English then Mandarin."""

    greeting: Prompts = (PromptText("Welcome to Lianluo. To speak with an agent, press 1."),)
    connecting: Prompts = (PromptText("Please hold while we connect you to an agent."),)
    no_agent: Prompts = (
        PromptText("Sorry, no agent is available right now. Please call again later. Goodbye."),
    )
    invalid: Prompts = (PromptText("Sorry, that is not a valid choice."),)
    goodbye: Prompts = (PromptText("Thank you for calling. Goodbye."),)
    digit_timeout_s: float = 6.0
    attempts: int = 3


@dataclass(frozen=True)
class OfferSettings:
    ring_timeout_s: float = 15.0


@dataclass(frozen=True)
class WebSettings:
    host: str = "127.0.0.1"
    port: int = 8080


@dataclass(frozen=True)
class DatabaseSettings:
    # None: DATABASE_URL, else the local server on 127.0.0.1:5432, else a private cluster.
    url: str | None = None


@dataclass(frozen=True)
class Settings:
    center_name: str = "Lianluo"
    ari_app: str = "lianluo"
    var_dir: str = "var"
    asterisk: AsteriskSettings = AsteriskSettings()
    carrier: CarrierSettings = CarrierSettings()
    agents: tuple[AgentSettings, ...] = ()
    ivr: IvrSettings = IvrSettings()
    offer: OfferSettings = OfferSettings()
    web: WebSettings = WebSettings()
    database: DatabaseSettings = DatabaseSettings()
    # Where this configuration came from, for messages; not read from YAML.
    source: str = field(default="<defaults>", metadata={"internal": True})


# ---------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------


def load_settings(path: str | Path) -> Settings:
    path = Path(path)
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", file=file, line=None, field_path="") from exc
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise ConfigError(
            f"malformed YAML: {exc.problem or exc}", file=file, line=line, field_path=""
        ) from exc
    reader = _Reader(file)
    settings = Settings() if node is None else reader.read(Settings, node, "")
    settings = dataclasses.replace(settings, source=file)
    _check_semantics(settings, file, reader.lines)
    return settings


class _Reader:
    def __init__(self, file: str) -> None:
        self.file = file
        # field path -> line, so checks made after reading can still point at a line
        self.lines: dict[str, int] = {}

    def fail(self, node: yaml.Node | None, path: str, message: str) -> ConfigError:
        line = node.start_mark.line + 1 if node is not None else None
        return ConfigError(message, file=self.file, line=line, field_path=path)

    def read(self, tp: Any, node: yaml.Node, path: str) -> Any:
        self.lines[path] = node.start_mark.line + 1
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if origin in (typing.Union, types.UnionType):
            if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null":
                if type(None) in args:
                    return None
            inner = [a for a in args if a is not type(None)]
            return self.read(inner[0], node, path)
        if dataclasses.is_dataclass(tp):
            return self.read_dataclass(tp, node, path)
        if origin is tuple:
            if isinstance(node, yaml.MappingNode) and dataclasses.is_dataclass(args[0]):
                return (self.read(args[0], node, path),)  # one item may be written without a list
            if not isinstance(node, yaml.SequenceNode):
                raise self.fail(node, path, f"expected a list, got {_describe(node)}")
            return tuple(self.read(args[0], item, f"{path}[{i}]") for i, item in enumerate(node.value))
        if origin is Literal:
            value = self.scalar(node, path)
            if value not in args:
                choices = ", ".join(repr(a) for a in args)
                raise self.fail(node, path, f"expected one of {choices}, got {value!r}")
            return value
        if tp is str:
            value = self.scalar(node, path)
            if isinstance(value, bool) or value is None:
                raise self.fail(node, path, f"expected text, got {node.value!r}")
            return str(value) if isinstance(value, int) else _require(self, node, path, value, str, "text")
        if tp is bool:
            return _require(self, node, path, self.scalar(node, path), bool, "true or false")
        if tp is int:
            value = self.scalar(node, path)
            if isinstance(value, bool) or not isinstance(value, int):
                raise self.fail(node, path, f"expected an integer, got {node.value!r}")
            return value
        if tp is float:
            value = self.scalar(node, path)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise self.fail(node, path, f"expected a number, got {node.value!r}")
            return float(value)
        raise TypeError(f"unsupported settings type {tp!r} at {path}")  # a bug in this module

    def scalar(self, node: yaml.Node, path: str) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            raise self.fail(node, path, f"expected a single value, got {_describe(node)}")
        return _construct(node)

    def read_dataclass(self, tp: Any, node: yaml.Node, path: str) -> Any:
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, path or "(top level)", f"expected a mapping, got {_describe(node)}")
        hints = typing.get_type_hints(tp)
        fields = {f.name: f for f in dataclasses.fields(tp) if not f.metadata.get("internal")}
        values: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            sub = f"{path}.{key}" if path else str(key)
            if key not in fields:
                known = ", ".join(sorted(fields))
                raise self.fail(key_node, sub, f"unknown field (known fields: {known})")
            if key in values:
                raise self.fail(key_node, sub, "given twice")
            values[key] = self.read(hints[key], value_node, sub)
        for name, f in fields.items():
            if (
                name not in values
                and f.default is dataclasses.MISSING
                and f.default_factory is dataclasses.MISSING
            ):
                raise self.fail(node, f"{path}.{name}" if path else name, "required field is missing")
        return tp(**values)


def _construct(node: yaml.ScalarNode) -> Any:
    # Resolve the scalar exactly as safe_load would (int, float, bool, null, str).
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()


def _require(reader: _Reader, node: yaml.Node, path: str, value: Any, tp: type, what: str) -> Any:
    if not isinstance(value, tp):
        raise reader.fail(node, path, f"expected {what}, got {node.value!r}")
    return value


def _describe(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return repr(node.value)


_AGENT_ID = re.compile(r"^[0-9]{2,8}$")
_DID = re.compile(r"^\+?[0-9]{2,20}$")


def _check_semantics(s: Settings, file: str, lines: dict[str, int]) -> None:
    """Rules that span fields or need more than a type check."""

    def bad(path: str, message: str) -> ConfigError:
        return ConfigError(message, file=file, line=lines.get(path), field_path=path)

    ports = {
        "asterisk.sip_port": s.asterisk.sip_port,
        "asterisk.http_port": s.asterisk.http_port,
        "asterisk.ami_port": s.asterisk.ami_port,
        "web.port": s.web.port,
    }
    for path, port in ports.items():
        if not 1 <= port <= 65535:
            raise bad(path, f"port {port} is out of range 1-65535")
    seen: dict[int, str] = {}
    for path, port in ports.items():
        if port in seen:
            # Point at the one the file actually sets; the other may be a default.
            here, other = (
                (path, seen[port]) if path in lines or seen[port] not in lines else (seen[port], path)
            )
            raise bad(here, f"port {port} is already used by {other}")
        seen[port] = path
    if not (1024 <= s.asterisk.rtp_start < s.asterisk.rtp_end <= 65535):
        raise bad("asterisk.rtp_start", "RTP range must satisfy 1024 <= rtp_start < rtp_end <= 65535")
    if not re.fullmatch(r"[a-z0-9_-]{1,32}", s.asterisk.instance):
        raise bad("asterisk.instance", "use 1-32 characters from a-z, 0-9, '_' and '-'")
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,32}", s.ari_app):
        raise bad("ari_app", "use 1-32 characters from letters, digits, '_' and '-'")
    for i, addr in enumerate(s.carrier.match):
        try:
            ipaddress.ip_network(addr, strict=False)
        except ValueError as exc:
            raise bad(f"carrier.match[{i}]", f"not an IP address or network: {addr!r}") from exc
    for i, did in enumerate(s.carrier.dids):
        if not _DID.fullmatch(did):
            raise bad(f"carrier.dids[{i}]", f"not a phone number: {did!r}")
    ids: set[str] = set()
    for i, agent in enumerate(s.agents):
        if not _AGENT_ID.fullmatch(agent.id):
            raise bad(f"agents[{i}].id", f"agent id must be 2-8 digits, got {agent.id!r}")
        if agent.id in ids:
            raise bad(f"agents[{i}].id", f"agent id {agent.id} is given twice")
        if agent.id in s.carrier.dids:
            raise bad(f"agents[{i}].id", f"agent id {agent.id} clashes with a carrier DID")
        ids.add(agent.id)
    if s.ivr.attempts < 1:
        raise bad("ivr.attempts", "must be at least 1")
    if s.ivr.digit_timeout_s <= 0 or s.offer.ring_timeout_s <= 0:
        raise bad("ivr.digit_timeout_s", "timeouts must be positive")
