"""The shape of the code, as rules a regression breaks (every import counts, including those
made only for type checking):

- no import cycle anywhere: not between the app's packages, not between its modules;
- the call runtime (app/calls) imports no call kind (inbound, callbacks, voicemail, dialer);
- the domain imports no I/O library, no adapter, no configuration, nothing outside app/domain;
- the shared web edge (app/web) does not import the panel (app/panel);
- a call kind's folder does not import the composition root;
- a number is dialled through a trunk in one place only, behind the outbound policy.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "app"
CALL_KINDS = ("app.inbound", "app.callbacks", "app.voicemail", "app.dialer", "app.experts")
IO_LIBRARIES = {
    "asyncio",
    "aiohttp",
    "panoramisk",
    "psycopg",
    "psycopg_pool",
    "socket",
    "subprocess",
    "requests",
    "yaml",
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(APP.rglob("*.py"))}


def imports_of(path: Path, name: str) -> Iterator[str]:
    """Every module this file imports, absolute (relative imports resolved)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            yield base
            for alias in node.names:  # `from app.web import health` imports app.web.health
                yield f"{base}.{alias.name}"


def graph() -> dict[str, set[str]]:
    known = modules()
    out: dict[str, set[str]] = {}
    for name, path in known.items():
        out[name] = {m for m in imports_of(path, name) if m in known and m != name}
    return out


def unit(module: str) -> str:
    """The package a module belongs to for the package rule (app.calls, app.domain, ...); a
    module directly under app/ is a unit of its own."""
    parts = module.split(".")
    return ".".join(parts[:2])


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one member (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle_between_modules() -> None:
    assert cycles(graph()) == []


def test_no_import_cycle_between_packages() -> None:
    edges: dict[str, set[str]] = {}
    for source, targets in graph().items():
        for target in targets:
            if unit(source) != unit(target):
                edges.setdefault(unit(source), set()).add(unit(target))
    assert cycles(edges) == []


def offenders(prefix: str, forbidden: tuple[str, ...]) -> list[str]:
    return sorted(
        f"{source} imports {target}"
        for source, targets in graph().items()
        if source == prefix or source.startswith(prefix + ".")
        for target in targets
        if any(target == f or target.startswith(f + ".") for f in forbidden)
    )


def test_the_runtime_imports_no_call_kind() -> None:
    assert offenders("app.calls", CALL_KINDS) == []


def test_the_web_edge_does_not_import_the_panel() -> None:
    assert offenders("app.web", ("app.panel",)) == []


def test_call_kinds_do_not_import_the_composition_root() -> None:
    for kind in CALL_KINDS:
        assert offenders(kind, ("app.bootstrap", "app.__main__")) == []


def test_the_domain_imports_no_io_no_adapters_no_configuration() -> None:
    bad = []
    for name, path in modules().items():
        if not name.startswith("app.domain"):
            continue
        for target in imports_of(path, name):
            top = target.split(".")[0]
            if top in IO_LIBRARIES or (top == "app" and not target.startswith("app.domain")):
                bad.append(f"{name} imports {target}")
    assert bad == []


def test_the_rules_see_real_imports() -> None:
    """The checks above are only as good as the graph: it must see the imports we know of."""
    edges = graph()
    assert "app.calls.session" in edges["app.calls.line"]
    assert "app.calls.line" in edges["app.inbound.calls"]
    assert "app.web.health" in edges["app.bootstrap"]  # `from app.web import health`
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_every_number_goes_out_through_the_outbound_policy() -> None:
    """A trunk dial string (`PJSIP/<number>@<trunk>`) is written in one place: `legs.dial_out`,
    which asks the outbound policy first. Anywhere else it would be a path to a trunk that skips it."""
    found = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.JoinedStr):
                continue
            parts = [v.value if isinstance(v, ast.Constant) else "{}" for v in node.values]
            text = "".join(str(p) for p in parts)
            if text.startswith("PJSIP/") and "@" in text:
                found.append(f"{name}:{node.lineno}")
    assert len(found) == 1 and found[0].startswith("app.calls.legs:"), found
