"""Runs the periodic jobs with APScheduler, in whichever process holds the maintenance lease, and the nightly
training (bot.scheduling.nightly) under its own daily lease."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler

from bot.db.database import Database
from bot.incidents.service import IncidentService
from bot.scheduling import jobs, lease
from bot.scheduling.nightly import NightlyTraining

log = logging.getLogger(__name__)

LEASE_NAME = "maintenance"
NIGHTLY_CHECK = timedelta(minutes=1)  # how often a process looks whether the nightly slot has come


class Maintenance:
    """Retention, quiet-incident flags and due reminders; each run first takes the database lease."""

    def __init__(
        self,
        database: Database,
        incidents: IncidentService,
        clock: Callable[[], datetime],
        *,
        retention: timedelta,
        quiet_after: timedelta,
        interval: timedelta = timedelta(seconds=30),
        nightly: NightlyTraining | None = None,
    ) -> None:
        self._database = database
        self._incidents = incidents
        self._clock = clock
        self._retention = retention
        self._quiet_after = quiet_after
        self._interval = interval
        self._nightly = nightly
        self._holder = f"{socket.gethostname()}:{os.getpid()}"
        self._scheduler: BackgroundScheduler | None = None

    def run_once(self) -> bool:
        """Run every job if this process holds the lease; returns whether it did."""
        now = self._clock()
        with self._database.write() as session:
            if not lease.acquire(session, LEASE_NAME, self._holder, now, ttl=self._interval * 2):
                return False
            jobs.prune_deliveries(session, now, self._retention)
            flagged = jobs.flag_quiet_incidents(session, self._incidents, now, self._quiet_after)
            jobs.fire_reminders(session, self._incidents, now)
        if flagged:
            log.warning("flagged quiet incidents (no resolve from their source): %s", flagged)
        return True

    def start(self) -> None:
        scheduler = BackgroundScheduler(timezone="UTC")
        scheduler.add_job(
            self._safe_run,
            "interval",
            seconds=self._interval.total_seconds(),
            next_run_time=datetime.now(UTC),  # APScheduler runs on wall time; jobs get the injected clock
            max_instances=1,
            coalesce=True,
            id="maintenance",
        )
        if self._nightly is not None:
            scheduler.add_job(
                self._safe_nightly,
                "interval",
                seconds=NIGHTLY_CHECK.total_seconds(),
                max_instances=1,
                coalesce=True,
                id="nightly-training",
            )
        scheduler.start()
        self._scheduler = scheduler

    def stop(self) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=True)
            self._scheduler = None

    def _safe_run(self) -> None:
        try:
            self.run_once()
        except Exception:
            log.exception("maintenance run failed; will try again in %s", self._interval)

    def _safe_nightly(self) -> None:
        assert self._nightly is not None
        try:
            self._nightly.run_once()
        except Exception:
            log.exception("nightly training failed; the next slot will try again")
