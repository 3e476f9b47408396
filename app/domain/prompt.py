"""A prompt's words: a text and the language it is spoken in. Pure: rendered into sound by
app/adapters/prompts.py, configured in YAML (app/config.py), filled in by the flows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class PromptText:
    text: str
    lang: Literal["en", "zh"] = "en"
