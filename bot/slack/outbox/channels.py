"""The channels the outbox writes to: resolved to ids, joined when public, and set up at start-up.

``chat:write.public`` lets the bot post to a public channel it has not joined, but reading it back
(``conversations.history``/``.replies``, which reconciling a lost answer needs) requires membership. So at
start-up the worker resolves the configured channels, joins the public ones it is not in, and says plainly
(once) when a channel cannot be seen: it does not exist, or it is private and the bot must be invited. A
start-up that cannot reach Slack does not stop the worker: it tries again later, with backoff.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from bot.slack.channels import ChannelDirectory, lookup_method
from bot.slack.outbox.gateway import SlackFailure, SlackGateway

log = logging.getLogger(__name__)

_SAID = frozenset({"channel_not_found", "not_in_channel"})  # errors :meth:`OutboxChannels.readable` explains


def backoff(failures: int, cap: timedelta) -> timedelta:
    """2, 4, 8 … seconds after the first, second, third … failure, at most ``cap``."""
    return min(cap, timedelta(seconds=2 ** min(failures, 16)))


class OutboxChannels:
    def __init__(
        self,
        directory: ChannelDirectory,
        gateway: SlackGateway,
        configured: Sequence[str],
        *,
        max_backoff: timedelta,
        bot_name: str = "incibot",
    ) -> None:
        self._directory = directory
        self._gateway = gateway
        self._max_backoff = max_backoff
        self._bot_name = bot_name
        self._setup: dict[str, tuple[int, datetime | None]] = {
            ref.lstrip("#"): (0, None) for ref in configured if ref.strip("#")
        }  # channel → (failures, next try); removed once set up
        self._said: set[str] = set()

    def key(self, ref: str) -> str:
        """One key per channel, whether given by name or id (for pacing)."""
        info = self._directory.cached(ref)
        return info.id if info is not None else ref.lstrip("#")

    def resolved(self, ref: str) -> str:
        """The channel's id when known, else ``ref`` (posts take names too)."""
        return self.key(ref)

    def readable(self, ref: str) -> str:
        """The id of channel ``ref``, joining it if it is public and the bot is not in it; SlackFailure if the
        bot cannot read it or Slack cannot say."""
        info = self._directory.cached(ref)
        if info is None:
            with self._gateway.guard(lookup_method(ref)):
                info = self._directory.find(ref)
        if info is None:
            self._say_once(
                ref,
                f"Slack channel #{ref.lstrip('#')} not found: create it and invite @{self._bot_name}, or if it is"
                f" private, invite @{self._bot_name} (/invite @{self._bot_name})",
            )
            raise SlackFailure(lookup_method(ref), "channel_not_found", error="channel_not_found")
        if not info.is_member:
            if info.is_private:
                self._say_once(info.id, f"incibot must be invited to the private channel #{info.name}")
                raise SlackFailure("conversations.join", "not_in_channel", error="not_in_channel")
            self._gateway.call("conversations.join", {"channel": info.id})
            self._directory.joined(info.id)
            log.info("joined Slack channel #%s (%s)", info.name, info.id)
        return info.id

    def rejoin(self, ref: str) -> str:
        """Slack says the bot is not in ``ref`` after all: look again and join."""
        self._directory.forget(ref)
        return self.readable(ref)

    def set_up(self, now: datetime) -> None:
        """Resolve and join the configured channels not set up yet whose turn it is."""
        for ref, (failures, next_try) in list(self._setup.items()):
            if next_try is not None and next_try > now:
                continue
            try:
                self.readable(ref)
            except SlackFailure as failure:
                if failure.retry_after is None and not failure.transient:
                    del self._setup[ref]  # refused: posts there will fail the same way, each saying why
                    if failure.error not in _SAID:
                        log.error("cannot set up Slack channel #%s: %s", ref, failure)
                    continue
                wait = failure.retry_after or backoff(failures + 1, self._max_backoff)
                self._setup[ref] = (failures + 1, now + wait)
                log.warning("cannot set up Slack channel #%s yet (%s); trying again in %s", ref, failure, wait)
            else:
                del self._setup[ref]

    def _say_once(self, key: str, text: str) -> None:
        if key not in self._said:
            self._said.add(key)
            log.error("%s", text)
