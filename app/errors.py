"""One error model for the whole service.

Adapters translate library exceptions into these at the edge (``raise ... from exc``);
the web layer turns them into JSON; the command line prints them and exits non-zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class AppError(Exception):
    error_id: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)
    http_status: int = 500
    # Extra HTTP response headers, e.g. Retry-After on 429.
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.message


class ConfigError(AppError):
    """A configuration file is wrong. The message names file, line and field."""

    def __init__(self, message: str, *, file: str, line: int | None, field_path: str) -> None:
        where = f"{file}:{line}" if line is not None else file
        super().__init__(
            "invalid-config",
            f"{where}: {field_path}: {message}" if field_path else f"{where}: {message}",
            {"file": file, "line": line, "field": field_path},
            400,
        )


class PbxError(AppError):
    """Asterisk refused or could not be reached."""

    def __init__(self, message: str, details: dict[str, Any] | None = None, http_status: int = 502) -> None:
        super().__init__("pbx-error", message, details or {}, http_status)


class BadRecord(AppError):
    """The database refused a record for what it holds (a value it cannot store, a broken
    reference), not for being unreachable: writing it again would fail again. Writers of
    batches write the others and drop only this one."""

    def __init__(self, message: str) -> None:
        super().__init__("bad-record", message, {}, 500)
