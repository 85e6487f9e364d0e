"""The nightly training: once a day, after :data:`AT`, one process (the holder of the day's lease) trains a
challenger of each model kind in a child process (``incibot models train KIND``), so that the worker's memory
and interpreter stay its own. A process runs only the slots that come after it started."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime, time, timedelta

from bot.db.database import Database
from bot.registry.store import KINDS
from bot.scheduling import lease

log = logging.getLogger(__name__)

LEASE_NAME = "nightly-training"
AT = time(3, 0)  # UTC
TRAINING_LIMIT = timedelta(hours=3)  # a child process still training after this is stopped


def train_all() -> None:
    """``incibot models train KIND`` for each kind, one after the other, with this process's settings."""
    for kind in KINDS:
        command = [sys.executable, "-m", "bot", "models", "train", kind]
        try:
            result = subprocess.run(command, check=False, timeout=TRAINING_LIMIT.total_seconds())
        except subprocess.TimeoutExpired:
            log.error("nightly training of %s stopped after %s", kind, TRAINING_LIMIT)
            continue
        if result.returncode:
            log.error("nightly training of %s failed (exit status %d)", kind, result.returncode)


class NightlyTraining:
    """Runs ``train`` once per day's slot across every process that shares the database."""

    def __init__(
        self,
        database: Database,
        clock: Callable[[], datetime],
        train: Callable[[], None] = train_all,
        *,
        at: time = AT,
        holder: str | None = None,
    ) -> None:
        self._database = database
        self._clock = clock
        self._train = train
        self._at = at
        self._holder = holder or f"{socket.gethostname()}:{os.getpid()}"
        self._done = self.slot(clock())  # the slot before this process started is not its to run

    def slot(self, now: datetime) -> datetime:
        """The latest scheduled time at or before ``now``."""
        today = datetime.combine(now.date(), self._at, tzinfo=now.tzinfo)
        return today if today <= now else today - timedelta(days=1)

    def run_once(self) -> bool:
        """Train if a new slot has come and this process takes its lease (held until the next slot, so that no
        other process runs it too); returns whether it trained."""
        now = self._clock()
        slot = self.slot(now)
        if slot <= self._done:
            return False
        with self._database.write() as session:
            taken = lease.acquire(session, LEASE_NAME, self._holder, now, ttl=slot + timedelta(days=1) - now)
        self._done = slot
        if not taken:
            return False
        log.info("nightly training of the %s slot", slot.isoformat())
        self._train()
        return True
