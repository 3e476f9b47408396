"""What calls say: the fixed prompts rendered at start, and texts rendered when needed, each in
the caller's language (`Interaction.language`; the rule is `for_caller` in app/domain/prompt.py)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from app.adapters.prompts import Prompt, PromptCache
from app.domain.prompt import PromptText, for_caller


class Voice:
    def __init__(self, cache: PromptCache, fixed: Mapping[str, Sequence[tuple[PromptText, str]]]) -> None:
        self.cache = cache
        # name -> (segment, sound URI) per segment, rendered before the first call
        self.fixed = {name: list(pairs) for name, pairs in fixed.items()}

    def __getitem__(self, name: str) -> list[str]:
        """A fixed prompt as written, every segment (heard by agents, or a caller whose language
        is not chosen)."""
        return [uri for _, uri in self.fixed[name]]

    def fixed_in(self, name: str, lang: str | None) -> list[str]:
        """A fixed prompt in a caller's language."""
        pairs = self.fixed[name]
        mine = set(for_caller([text for text, _ in pairs], lang))
        return [uri for text, uri in pairs if text in mine]

    async def say(self, texts: Sequence[PromptText], lang: str | None = None) -> list[str]:
        """Sound URIs for texts made at call time (cached: a place in line repeats often), the
        segments in `lang` only (None: all)."""
        paths = [await self.cache.render(Prompt(t.text, t.lang)) for t in for_caller(texts, lang)]
        return [PromptCache.asterisk_uri(p) for p in paths]


def filled(texts: Sequence[PromptText], **values: object) -> list[PromptText]:
    """The prompt texts with their {placeholders} filled."""
    return [dataclasses.replace(p, text=p.text.format(**values)) for p in texts]
