"""Caller ID as the center keeps it.

The carrier side of a trunk is not authenticated: the number in a call's From is whatever the far
end wrote, CR/LF, commas, quotes and NUL included. It is normalised once, where the call enters
(`InboundCalls.arrived`), before it can reach a log line, a SIP header to an agent's phone, the
database, an e-mail subject or speech: a number is digits with an optional leading +, written
with or without the usual separators; anything else ("anonymous", a SIP URI, text) is unknown.
"""

from __future__ import annotations

import re

MAX_DIGITS = 20  # E.164 allows 15; carriers' prefixes add a few
_SEPARATORS = str.maketrans("", "", " -.()/")
_NUMBER = re.compile(rf"\+?[0-9]{{1,{MAX_DIGITS}}}")


def caller_number(raw: str) -> str:
    """The caller's number as we keep it, or "" when they have none we could call or show."""
    number = raw.strip().translate(_SEPARATORS)
    return number if _NUMBER.fullmatch(number) else ""
