"""One log record is one line, whatever a caller, a browser or a carrier sent (app/__main__.py)."""

from __future__ import annotations

import logging
import sys

from app.__main__ import CallFormatter


def formatted(msg: str, *args: object, exc: bool = False) -> str:
    record = logging.LogRecord("app.test", logging.WARNING, __file__, 1, msg, args, None)
    if exc:
        try:
            raise ValueError("boom")
        except ValueError:
            record.exc_info = sys.exc_info()
    record.call = "it-1"
    return CallFormatter("%(levelname)s %(callprefix)s%(message)s").format(record)


def test_forged_lines_stay_on_one_line() -> None:
    line = formatted("ANI %s DNIS %s", "138\r\n2026-12-03 ERROR app forged\u2028x", "7000")
    assert "\n" not in line and "\r" not in line and "\u2028" not in line
    assert line == "WARNING [it-1] ANI 138\\r\\n2026-12-03 ERROR app forged\\u2028x DNIS 7000"


def test_nul_escape_and_lone_surrogates_are_written_escaped() -> None:
    line = formatted("user %r reason %s", "ro\x00ot", "\x1b[31mred\udfff")
    assert "\x00" not in line and "\x1b" not in line
    line.encode("utf-8")  # writable: a lone surrogate would fail the handler
    assert "\\x1b[31mred\\udfff" in line


def test_a_traceback_keeps_its_lines() -> None:
    text = formatted("failed", exc=True)
    assert text.startswith("WARNING [it-1] failed\nTraceback") and "ValueError: boom" in text
