"""What calls say: the fixed prompts rendered at start, and texts rendered when needed."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from app.adapters.prompts import Prompt, PromptCache
from app.domain.prompt import PromptText


class Voice:
    def __init__(self, cache: PromptCache, fixed: Mapping[str, list[str]]) -> None:
        self.cache = cache
        self.fixed = dict(fixed)  # name -> sound URIs, rendered before the first call

    def __getitem__(self, name: str) -> list[str]:
        return self.fixed[name]

    async def say(self, texts: Sequence[PromptText]) -> list[str]:
        """Sound URIs for texts made at call time (cached: a place in line repeats often)."""
        paths = [await self.cache.render(Prompt(t.text, t.lang)) for t in texts]
        return [PromptCache.asterisk_uri(p) for p in paths]


def filled(texts: Sequence[PromptText], **values: object) -> list[PromptText]:
    """The prompt texts with their {placeholders} filled."""
    return [dataclasses.replace(p, text=p.text.format(**values)) for p in texts]
