"""How long the demo's caller hears each prompt, per language: the main menu, the language
question, and the waiting announcement (place in line and expected wait, then the queue's
callback and message offers), now that each caller hears one language.

    .venv/bin/python benchmarks/prompt_lengths.py            # places 1-20, every wait, about 10 s
    .venv/bin/python benchmarks/prompt_lengths.py --quick    # place 3, waits of <1 and 4 min (a smoke run)
    .venv/bin/python benchmarks/prompt_lengths.py --config center.yaml --queue billing

The prompts are rendered by the app's own prompt renderer (app/adapters/prompts.py) into the
app's sounds cache, as the app plays them; each figure is the length of the WAV files a caller
in that language hears (`for_caller` in app/domain/prompt.py), end to end, and, for a center
with several languages, every segment as written: what each caller heard before. The announcement is
put together as app/inbound/waiting.py does it: `position`, then `expected_wait` (or
`expected_wait_short` under a minute), then the queue's callback and message offers if it has
them. The target for place and wait is 6 s or less (issue 17). No Asterisk, no database.
Exits non-zero if a prompt renders to nothing. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import wave
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.adapters.prompts import Prompt, PromptCache
from app.bootstrap import Paths
from app.config import PromptText, Settings, load_settings
from app.domain.prompt import for_caller
from app.inbound.flow_files import load_flows

REPO = Path(__file__).resolve().parents[1]
TARGET_S = 6.0


def seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as w:
        return w.getnframes() / w.getframerate()


async def length(cache: PromptCache, texts: Sequence[PromptText], lang: str | None) -> float:
    """Seconds a caller in `lang` hears of these texts (None: every segment, as written)."""
    return sum([seconds(await cache.render(Prompt(t.text, t.lang))) for t in for_caller(texts, lang)])


def announcement(
    settings: Settings, queue: str, position: int, minutes: int | None
) -> tuple[list[PromptText], list[PromptText]]:
    """(place and wait, the offers after them) as app/inbound/waiting.py says them; minutes
    None: a wait under a minute."""
    ivr = settings.ivr
    place = [PromptText(p.text.format(position=position), p.lang) for p in ivr.position]
    if minutes is None:
        place += ivr.expected_wait_short
    else:
        place += [PromptText(p.text.format(minutes=minutes), p.lang) for p in ivr.expected_wait]
    offers: list[PromptText] = []
    q = next(q for q in settings.queues if q.name == queue)
    if q.callback.offer:
        offers += [PromptText(p.text.format(key=q.callback.key), p.lang) for p in ivr.callback_offer]
    if q.voicemail.offer:
        offers += [PromptText(p.text.format(key=q.voicemail.key), p.lang) for p in ivr.voicemail_offer]
    return place, offers


async def measure(settings: Settings, queue: str, quick: bool) -> list[tuple[str, str, float, float]]:
    """Rows (what, language, shortest s, longest s)."""
    cache = PromptCache(Paths.of(settings).sounds_cache)
    flow = load_flows(settings).for_dnis("")
    # The demo's is `main_menu`; another center's, its first menu.
    menu = flow.nodes.get("main_menu") or next(n for n in flow.nodes.values() if n.type == "menu")
    rows: list[tuple[str, str, float, float]] = []
    if flow.language.prompt:
        both = await length(cache, flow.language.prompt, None)
        rows.append(("language question (both languages)", "en+zh", both, both))
    positions = [3] if quick else list(range(1, 21))
    waits: list[int | None] = [None, 4] if quick else [None, 1, 2, 4, 9, 15, 30]
    # None: every segment as written, what each caller heard before one language per caller.
    langs: list[str | None] = [*settings.languages, None] if len(settings.languages) > 1 else [None]
    for lang in langs:
        name = lang or "+".join(settings.languages) + " (as before)"
        menu_s = await length(cache, menu.prompt, lang)
        rows.append(("main menu", name, menu_s, menu_s))
        place_s, whole_s = [], []
        for position in positions:
            for minutes in waits:
                place, offers = announcement(settings, queue, position, minutes)
                said = await length(cache, place, lang)
                place_s.append(said)
                whole_s.append(said + await length(cache, offers, lang))
        rows.append(("place in line and wait", name, min(place_s), max(place_s)))
        rows.append((f"the whole announcement ({queue}, with its offers)", name, min(whole_s), max(whole_s)))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="one place in line, two waits: a smoke run")
    parser.add_argument("--config", default=str(REPO / "config" / "demo.yaml"), help="the center file")
    parser.add_argument("--queue", default="general", help="the queue whose announcement is measured")
    args = parser.parse_args()
    settings = load_settings(args.config)
    rows = asyncio.run(measure(settings, args.queue, args.quick))
    print(
        f"\nPrompt lengths heard by one caller ({args.config}; place and wait target <= {TARGET_S:.0f} s)\n"
    )
    print("| prompt | language | shortest s | longest s |")
    print("|---|---|--:|--:|")
    for what, lang, low, high in rows:
        over = what.startswith("place") and high > TARGET_S and "before" not in lang
        flag = " (over the target)" if over else ""
        print(f"| {what}{flag} | {lang} | {low:.1f} | {high:.1f} |")
    empty = [f"{what} ({lang})" for what, lang, low, _ in rows if low <= 0]
    if empty:
        print(f"rendered to nothing: {', '.join(empty)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
