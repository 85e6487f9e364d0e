"""Runs ``incibot worker`` as a child of ``incibot serve``, and keeps it running.

Ingestion and processing then use a core each instead of sharing one interpreter. The child is
restarted if it dies; it exits by itself if its parent disappears (even after a SIGKILL), and is asked
to stop (SIGTERM, then SIGKILL after a grace period) when the parent shuts down.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading

from bot.threads import NamedThread

log = logging.getLogger(__name__)

RESTART_DELAY = 1.0
STOP_GRACE = 30.0


class WorkerProcess:
    def __init__(self, env: dict[str, str]) -> None:
        self._env = env
        self._process: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._watcher: threading.Thread | None = None

    def start(self) -> None:
        self._spawn()
        self._watcher = NamedThread(target=self._watch, name="worker-supervisor", daemon=True)
        self._watcher.start()

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            process = self._process
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(STOP_GRACE)
        except subprocess.TimeoutExpired:
            log.error("worker did not stop within %.0f s; killing it", STOP_GRACE)
            process.kill()
            code = process.wait()
        if code != 0:
            log.warning("worker exited with status %s", code)
        if self._watcher is not None:
            self._watcher.join()

    def _spawn(self) -> None:
        command = [sys.executable, "-m", "bot", "worker", "--parent-pid", str(os.getpid())]
        with self._lock:
            self._process = subprocess.Popen(command, env=self._env)
        log.info("worker process %d started", self._process.pid)

    def _watch(self) -> None:
        while not self._stopping.is_set():
            with self._lock:
                process = self._process
            assert process is not None
            code = process.wait()
            if self._stopping.is_set() or code == 0:  # 0: it was asked to stop (its own SIGTERM)
                return
            log.error("worker process %d exited with status %s; restarting it", process.pid, code)
            if self._stopping.wait(RESTART_DELAY):
                return
            self._spawn()
