"""Hold music without dead air.

Debian's tracks (asterisk-moh-opsound-wav) open with up to 0.9 s of silence, close with up to
9 s, and one pauses 1.8 s in the middle: a caller on hold heard nothing for seconds between two
tracks, and could take the line for dead. Each track is copied once with every pause longer than
`LONGEST_PAUSE_S` shortened to it (sox's `silence` effect), into the folder Asterisk's `default`
music class plays from (the instance's `moh` link, app/adapters/asterisk_instance.py).
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

SYSTEM_MOH = Path("/usr/share/asterisk/moh")
LONGEST_PAUSE_S = 0.4
# Quieter than this (a share of full scale) is a pause: far below the music's soft passages.
QUIET = "0.3%"
# A new folder when the rule changes, so no copy made by an older rule is played.
FOLDER = f"moh-pauses-{LONGEST_PAUSE_S}s"


async def hold_music(cache: Path, source: Path = SYSTEM_MOH) -> Path:
    """The folder to play hold music from: the trimmed copies under `cache`, made where missing;
    `source` itself when it has no tracks or sox fails (logged: music with pauses beats none)."""
    folder = cache / FOLDER

    def missing() -> list[Path] | None:
        tracks = sorted(source.glob("*.wav"))
        if not tracks:
            return None
        folder.mkdir(parents=True, exist_ok=True)
        return [t for t in tracks if not (folder / t.name).exists()]

    todo = await asyncio.to_thread(missing)
    if todo is None:
        return source
    for track in todo:
        target = folder / track.name
        # Written beside, then renamed: Asterisk (or another center starting from the same
        # cache) never sees half a track.
        part = cache / f".{track.stem}.{os.getpid()}.part.wav"
        proc = await asyncio.create_subprocess_exec(
            *("sox", "-V1", str(track), str(part)),
            *("silence", "-l", "1", "0.05", QUIET, "-1", str(LONGEST_PAUSE_S), QUIET),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await proc.communicate()
        if proc.returncode != 0:
            part.unlink(missing_ok=True)
            log.warning(
                "hold music: sox could not shorten the pauses of %s (%s); playing %s as it is",
                track,
                err.decode(errors="replace").strip(),
                source,
            )
            return source
        os.replace(part, target)
    return folder
