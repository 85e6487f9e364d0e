"""Every Slack call the outbox makes, and the one way its failures are told apart.

A call is checked against :class:`~bot.slack.outbox.pacing.Pacing` first (a paused method is not called at all);
any failure becomes a :class:`SlackFailure` saying what the caller should do: wait and try again without
counting an attempt (rate limited), try again later counting one (5xx, connection), or give up unless the
item's kind knows a recovery (Slack refused: ``error``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.slack.outbox.pacing import Pacing, retry_after

log = logging.getLogger(__name__)


class SlackFailure(Exception):
    """A Slack call that did not succeed. ``retry_after``: rate limited (try again then, not counted);
    ``transient``: may work later (counted); else refused with ``error``. ``maybe_done``: a write whose answer
    was lost, so Slack may have done it."""

    def __init__(
        self,
        method: str,
        reason: str,
        *,
        error: str = "",
        retry_after: timedelta | None = None,
        transient: bool = False,
        maybe_done: bool = False,
    ) -> None:
        super().__init__(f"{method}: {reason}")
        self.method = method
        self.error = error
        self.retry_after = retry_after
        self.transient = transient
        self.maybe_done = maybe_done


class SlackGateway:
    """Calls Slack Web API methods through the outbox's client, paced."""

    def __init__(self, client: WebClient, pacing: Pacing, clock: Callable[[], datetime]) -> None:
        self.client = client
        self.pacing = pacing
        self._clock = clock

    def call(
        self,
        method: str,
        args: dict[str, Any],
        *,
        channel: str | None = None,
        message: Hashable = None,
        write: bool = False,
    ) -> dict[str, Any]:
        """``method``'s answer; ``channel``/``message`` key its pacing; ``write``: a lost answer may mean done."""
        with self.guard(method, channel=channel, message=message, write=write):
            response = getattr(self.client, method.replace(".", "_"))(**args)
        return dict(response.data) if isinstance(response.data, dict) else {}

    @contextmanager
    def guard(
        self, method: str, *, channel: str | None = None, message: Hashable = None, write: bool = False
    ) -> Iterator[None]:
        """Run Slack calls of ``method`` (e.g. through :class:`~bot.slack.channels.ChannelDirectory`) paced,
        turning every failure into a :class:`SlackFailure`."""
        now = self._clock()
        ready = self.pacing.ready_at(method, now, channel=channel, message=message)
        if ready > now:
            raise SlackFailure(method, "paused (rate limit)", retry_after=ready - now)
        try:
            yield
        except SlackApiError as exc:
            raise self._failure(method, exc, now, channel, write) from exc
        except SlackFailure:
            raise
        except Exception as exc:  # connection dropped, timeout: a write may have been done
            raise SlackFailure(method, f"{type(exc).__name__}: {exc}", transient=True, maybe_done=write) from exc
        self.pacing.called(method, now, channel=channel, message=message)  # what Slack did, paced

    def _failure(
        self, method: str, exc: SlackApiError, now: datetime, channel: str | None, write: bool
    ) -> SlackFailure:
        status = exc.response.status_code
        error = str(exc.response.get("error", "")) if isinstance(exc.response.data, dict) else ""
        wait = retry_after(exc)
        if wait is not None:
            self.pacing.rate_limited(method, now + wait, channel=channel)
            where = f" in {channel}" if channel else ""
            log.warning("Slack rate limit on %s%s: pausing it for %.0f s", method, where, wait.total_seconds())
            return SlackFailure(method, error or "ratelimited", error=error, retry_after=wait)
        if status >= 500:
            return SlackFailure(method, f"HTTP {status}", error=error, transient=True, maybe_done=write)
        return SlackFailure(method, error or f"HTTP {status}", error=error)
