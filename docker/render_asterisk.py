"""The asterisk container's first step: render the instance's configuration from the same
templates and settings the app uses (generating var/secrets.yaml on the first start), and print
the path of its asterisk.conf. The app renders the same files again when it starts (idempotent)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from app.adapters.asterisk_instance import load_or_create_secrets, render_instance
from app.adapters.hold_music import hold_music
from app.bootstrap import Paths
from app.config import load_settings


def main(config: str) -> int:
    settings = load_settings(config)
    var_dir, sounds_cache = Paths.of(settings).var_dir, Paths.of(settings).sounds_cache
    secrets = load_or_create_secrets(var_dir, [a.id for a in settings.agents])
    prefix = Path(os.environ.get("LIANLUO_ASTERISK_PREFIX", "/opt/asterisk"))
    music = asyncio.run(hold_music(sounds_cache))
    paths = render_instance(settings, secrets, prefix, var_dir, music)
    print(paths.config_file)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "config/container.yaml"))
