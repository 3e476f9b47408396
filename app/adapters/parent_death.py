"""Child processes that die with the app, even when it is SIGKILLed (Linux ``PR_SET_PDEATHSIG``).

A killed app runs no cleanup, and its helpers do not notice: a pool worker waits on a queue whose
write end it holds itself, and a tool keeps running to its end. So each child asks the kernel, from
inside, for SIGKILL when its parent dies: :func:`die_with_parent` first thing in a pool worker,
:func:`dies_with_us` as the ``preexec_fn`` of a command (the setting survives ``exec``). Asterisk
is deliberately not started this way: calls outlive the app.

The kernel counts the *thread* that started the child as the parent, so a child must be started
from a thread that lives as long as the child should: here the event loop's (asyncio starts
subprocesses, and ``ProcessPoolExecutor.submit`` starts pool workers, in the calling thread).
Elsewhere than Linux these functions do nothing.
"""

from __future__ import annotations

import ctypes
import functools
import os
import signal
import sys
from collections.abc import Callable
from typing import Final

PR_SET_PDEATHSIG: Final = 1  # <linux/prctl.h>


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    prctl.argtypes = (ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong)
    prctl.restype = ctypes.c_int
    return prctl


# Looked up once, here, so that a forked child about to exec does no symbol lookup.
_prctl: Final = _load_prctl()


def die_with_parent(parent_pid: int) -> None:
    """In a child of ``parent_pid``: have the kernel SIGKILL this process when that parent dies.

    SIGKILL because these children hold nothing to clean up (and some ignore SIGTERM).
    """
    if _prctl is None:
        return
    if _prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"prctl(PR_SET_PDEATHSIG): {os.strerror(code)}")
    # A parent that died before the prctl never triggers it; we were already adopted by another.
    if os.getppid() != parent_pid:
        os._exit(1)


def dies_with_us() -> Callable[[], None]:
    """A ``preexec_fn`` for ``subprocess`` or ``asyncio.create_subprocess_exec``: the command is
    SIGKILLed when this process dies.

    Python warns that ``preexec_fn`` can deadlock a child forked from a threaded program: code run
    between fork and exec may wait for a lock that another thread held at the fork. This one waits
    for none: it only calls the prctl resolved at import and ``getppid``.
    """
    return functools.partial(die_with_parent, os.getpid())
