"""Fuzzing the YAML config: whatever an admin (or an attacker with write access to a config
file) writes, loading it either works or fails with a ConfigError naming file, line and field;
never a traceback of another kind.

Two generators: the demo config with one value somewhere replaced, removed, or joined by an
unknown field (what a typo or a bad edit looks like), and arbitrary text (what a broken file
looks like).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.config import load_settings
from app.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
DEMO = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())

VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=30)
    | st.sampled_from(
        [
            "",
            "\x00",
            "a\r\nb",
            "../../etc/passwd",
            "-1",
            "1e400",
            "\ud800".encode("utf-8", "surrogatepass").decode("utf-8", "replace"),
        ]
    ),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in the tree: dict keys and list indexes."""
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += paths(v, (*prefix, i))
    return out


PATHS = paths(DEMO)


def mutate(doc: Any, path: tuple[Any, ...], how: str, value: Any) -> Any:
    doc = copy.deepcopy(doc)
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1]
    if how == "replace":
        parent[last] = value
    elif how == "remove":
        del parent[last]
    elif how == "unknown" and isinstance(parent, dict):
        parent[f"{last}_typo"] = value
    return doc


def load(tmp: Path, text: str | bytes) -> None:
    path = tmp / "center.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
    try:
        load_settings(path)
    except ConfigError as exc:
        assert str(exc).startswith(str(path)), exc  # it names the file (and line, field)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    path=st.sampled_from(PATHS),
    how=st.sampled_from(["replace", "remove", "unknown"]),
    value=VALUES,
)
def test_a_demo_config_with_one_bad_edit_loads_or_says_what_is_wrong(
    tmp_path: Path, path: tuple[Any, ...], how: str, value: Any
) -> None:
    doc = mutate(DEMO, path, how, value)
    load(tmp_path, yaml.safe_dump(doc, allow_unicode=True))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    text=st.text(max_size=200)
    | st.binary(max_size=200)
    | st.sampled_from(["{", "[", "a: [", "!!python/object:os.system ls", "- - -", "*x", "&a [*a]"])
)
def test_any_text_or_bytes_as_a_config_file_loads_or_says_what_is_wrong(
    tmp_path: Path, text: str | bytes
) -> None:
    load(tmp_path, text)
