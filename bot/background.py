"""A thread that repeats one step of work until it is stopped (the processing and outbox workers)."""

from __future__ import annotations

import logging
import threading

from bot.threads import NamedThread

log = logging.getLogger(__name__)


class BackgroundLoop:
    """Calls :meth:`step` (by default :meth:`run_once`) in a thread; after a step that found nothing to do,
    waits ``idle_poll`` seconds or until :meth:`wake`. :meth:`stop` lets the step in hand finish."""

    def __init__(self, name: str, idle_poll: float) -> None:
        self._name = name
        self._idle_poll = idle_poll
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> int:
        """Do one round of work; return how much was done (0: nothing to do)."""
        raise NotImplementedError

    def step(self) -> int:
        """One round for the loop: :meth:`run_once`, whose failure is logged and never stops the loop."""
        try:
            return self.run_once()
        except Exception:
            log.exception("%s: pass failed", self._name)
            return 0

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def start(self) -> None:
        self._stopping.clear()
        self._thread = NamedThread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def wake(self) -> None:
        self._wake.set()

    def pause(self, seconds: float) -> None:
        """Sleep, unless asked to stop."""
        self._stopping.wait(seconds)

    def _run(self) -> None:
        while not self._stopping.is_set():
            if self.step() == 0:
                self._wake.wait(self._idle_poll)
                self._wake.clear()
