"""The Slack side's health for ``/readyz``: the set-up check at start-up, then again every few minutes.

The check runs in its own thread, never in a request, and never holds anything else up: ingest and the
outbox work whatever Slack's state (alerts are durable; posts wait in the outbox).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from functools import partial
from typing import Any

from bot.settings import Settings
from bot.slack.check import CheckResult, SlackUnreachable, check_client, check_slack
from bot.threads import NamedThread

log = logging.getLogger(__name__)

RECHECK_SECONDS = 300.0
RECHECK_PROBLEMS_SECONDS = 60.0  # sooner while something is wrong, so that /readyz sees the fix
START_WAIT_SECONDS = 2.0  # how long start() waits for the first check (a quick one makes the bot ready at once)


class SlackHealth:
    """Runs ``check`` at start-up, then every ``interval`` seconds (``problem_interval`` while it finds
    problems, and at once on :meth:`recheck`); ``connected`` says whether the Socket Mode connection is up
    (None: HTTP mode, nothing to wait for)."""

    def __init__(
        self,
        mode: str,
        check: Callable[[], CheckResult],
        *,
        connected: Callable[[], bool] | None = None,
        interval: float = RECHECK_SECONDS,
        problem_interval: float = RECHECK_PROBLEMS_SECONDS,
    ) -> None:
        self.mode = mode
        self._check = check
        self._connected = connected
        self._intervals = (interval, problem_interval)
        self._latest: CheckResult | None = None
        self._checked = threading.Event()
        self._ready = False
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start checking; waits a moment for the first result, never longer."""
        self._stopping.clear()
        self._wake.clear()
        self._thread = NamedThread(target=self._run, name="slack-health", daemon=True)
        self._thread.start()
        self._checked.wait(START_WAIT_SECONDS)

    def recheck(self) -> None:
        """Check again now (e.g. the Socket Mode connection came up after Slack was out of reach)."""
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=15)
            self._thread = None

    @property
    def ready(self) -> bool:
        """The start-up check has finished and, in Socket Mode, the socket has connected; from then on True
        whatever Slack's state (``status()`` tells that)."""
        if not self._ready:
            self._ready = self._checked.is_set() and (self._connected is None or self._connected())
        return self._ready

    def status(self) -> dict[str, Any]:
        """``{"mode", "ok", "problems"}`` for ``/readyz`` (``ok`` is None until the first check finished)."""
        latest = self._latest
        return {
            "mode": self.mode,
            "ok": None if latest is None else latest.ok,
            "problems": [] if latest is None else list(latest.problems),
        }

    def _run(self) -> None:
        previous: list[str] | None = None
        while True:
            result = self._run_check()
            if result.problems != previous:
                for problem in result.problems:
                    log.error("Slack set-up: %s", problem)
                if result.ok and previous:
                    log.info("Slack set-up OK again")
                previous = list(result.problems)
            self._latest = result
            self._checked.set()
            self._wake.wait(self._intervals[0] if result.ok else self._intervals[1])
            self._wake.clear()
            if self._stopping.is_set():
                return

    def _run_check(self) -> CheckResult:
        try:
            return self._check()
        except SlackUnreachable as exc:
            return CheckResult(problems=[f"Slack cannot be reached ({exc})"])
        except Exception as exc:  # a bug in a check must not stop the re-checks; it is logged with its traceback
            log.exception("the Slack set-up check failed")
            return CheckResult(problems=[f"the Slack set-up check failed: {type(exc).__name__}"])


def slack_health(
    mode: str,
    settings: Settings,
    *,
    api_url: str,
    bot_token: str,
    app_token: str | None,
    http_mode: bool,
    connected: Callable[[], bool] | None,
) -> SlackHealth:
    """The health of the Slack set-up ``serve`` runs with (its tokens and API URL, real or stand-in)."""
    client = check_client(api_url, bot_token)
    app_client = check_client(api_url, app_token) if app_token else None
    check = partial(
        check_slack, settings, client, app_client=app_client, http_mode=http_mode, socket_connected=connected
    )
    return SlackHealth(mode, check, connected=connected)
