"""Threads the operating system can tell apart.

Python 3.11 gives its threads no name outside the interpreter, so ``top -H``, ``ps -L`` and ``/proc/<pid>/task``
show every thread of an incibot process as ``python``. A :class:`NamedThread` gives its thread its Python name
there too (Linux keeps the first 15 bytes), so that an operator, and the storm benchmark, can see which part of
incibot (the processing worker, the embedding prefetch, the delivery writer…) uses the CPU.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys
import threading
from collections.abc import Callable
from functools import cache

log = logging.getLogger(__name__)

_PR_SET_NAME = 15  # prctl(2): name the calling thread
NAME_BYTES = 15  # the kernel keeps this many bytes of a thread's name (16 with the terminating NUL)


class NamedThread(threading.Thread):
    """A :class:`threading.Thread` whose name the operating system shows too (see :func:`name_this_thread`)."""

    def run(self) -> None:
        name_this_thread(self.name)
        super().run()


def name_this_thread(name: str) -> None:
    """Give the calling thread ``name`` (its first :data:`NAME_BYTES` bytes) in the operating system, where that
    can be done (Linux, with a C library); elsewhere nothing changes."""
    prctl = _prctl()
    if prctl is not None:
        prctl(_PR_SET_NAME, ctypes.c_char_p(name.encode("utf-8", "replace")[:NAME_BYTES]), 0, 0, 0)


@cache
def _prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl: Callable[..., int] = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).prctl
        return prctl
    except (OSError, AttributeError):
        log.debug("no prctl here: threads keep the process's name")
        return None
