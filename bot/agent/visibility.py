"""Which incidents an end user may hear of: those posted to a public channel (Slack says which, cached a few
minutes). An incident not posted yet, or posted where the bot cannot tell, stays hidden from end users."""

from __future__ import annotations

import logging
import threading
import time

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.incidents.models import Incident

log = logging.getLogger(__name__)

CACHE_SECONDS = 300.0


class PublicChannels:
    def __init__(self, client: WebClient) -> None:
        self._client = client
        self._known: dict[str, tuple[float, bool]] = {}
        self._lock = threading.Lock()

    def visible(self, incident: Incident) -> bool:
        """``incident`` was posted to a public channel (its per-incident channel too, when it has one)."""
        channels = [channel for channel in (incident.slack_channel, incident.incident_channel) if channel]
        return bool(channels) and all(self.public(channel) for channel in channels)

    def public(self, channel: str) -> bool:
        with self._lock:
            known = self._known.get(channel)
        if known is not None and time.monotonic() - known[0] < CACHE_SECONDS:
            return known[1]
        try:
            info = self._client.conversations_info(channel=channel).get("channel") or {}
            public = not info.get("is_private", True) and not info.get("is_im", False)
        except SlackApiError as exc:
            log.warning(
                "cannot tell whether %s is public (%s): its incidents stay hidden", channel, exc.response.get("error")
            )
            public = False
        with self._lock:
            self._known[channel] = (time.monotonic(), public)
        return public
