"""Run a SIPVicious tool from a chosen source address: python -m tests.support.sipvicious_from
<svwar|svcrack> <source address> <the tool's own arguments>.

SIPVicious 0.3.8's svwar and svcrack accept `-b BINDINGIP` but their main() never hands it to
the scanner, which then sends from the default address (here 127.0.0.1, which the center's
ban allow-list holds). This runner gives the scanner class that address as its default and
runs the tool's own main(), so everything else is the tool as an attacker runs it.
"""

from __future__ import annotations

import sys
from typing import Any


def main() -> None:
    tool, source, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    if tool == "svcrack":
        from sipvicious import svcrack as module

        scanner: Any = module.ASipOfRedWine
    elif tool == "svwar":
        from sipvicious import svwar as module

        scanner = module.TakeASip
    else:
        raise SystemExit(f"unknown tool {tool!r}")
    original = scanner.__init__

    def bound(self: Any, *a: Any, **kw: Any) -> None:
        kw.setdefault("bindingip", source)
        original(self, *a, **kw)

    scanner.__init__ = bound
    sys.argv = [f"sipvicious_{tool}", *args]
    module.main()


if __name__ == "__main__":
    main()
