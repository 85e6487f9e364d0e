"""Finds Slack channels by name or id, the way the bot sees them (public ones, private ones it is in).

Slack addresses channels by id; settings name them (``#incidents``). :class:`ChannelDirectory` resolves a name
with a paginated ``conversations.list`` and an id with ``conversations.info``, and caches what it found. Slack's
errors (``SlackApiError``) reach the caller, who decides whether to retry.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, replace

from slack_sdk import WebClient

_CHANNEL_ID = re.compile(r"^[CG][A-Z0-9]{6,}$")
PAGE_SIZE = 200


@dataclass(frozen=True)
class ChannelInfo:
    id: str
    name: str
    is_private: bool
    is_member: bool


def is_channel_id(ref: str) -> bool:
    return bool(_CHANNEL_ID.match(ref))


def lookup_method(ref: str) -> str:
    """The Web API method :meth:`ChannelDirectory.find` calls for ``ref``."""
    return "conversations.info" if is_channel_id(ref.lstrip("#")) else "conversations.list"


class ChannelDirectory:
    """Channels by name (with or without ``#``) or id; thread-safe, cached. A channel not found is not cached
    (it may be created, or the bot invited, later)."""

    def __init__(self, client: WebClient) -> None:
        self._client = client
        self._lock = threading.Lock()
        self._by_id: dict[str, ChannelInfo] = {}
        self._by_name: dict[str, str] = {}

    def find(self, ref: str) -> ChannelInfo | None:
        """The channel ``ref`` names, or None if the bot cannot see it (missing, or private without the bot)."""
        found = self.cached(ref)
        if found is not None:
            return found
        key = ref.lstrip("#")
        if is_channel_id(key):
            data = self._client.conversations_info(channel=key).get("channel")
            return self._remember(data) if isinstance(data, dict) else None
        cursor: str | None = None
        while True:
            page = self._client.conversations_list(
                types="public_channel,private_channel", limit=PAGE_SIZE, exclude_archived=True, cursor=cursor
            )
            for data in page.get("channels") or []:
                self._remember(data)
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            found = self.cached(key)
            if found is not None or not cursor:
                return found

    def cached(self, ref: str) -> ChannelInfo | None:
        """What an earlier lookup found, without calling Slack."""
        key = ref.lstrip("#")
        with self._lock:
            return self._by_id.get(self._by_name.get(key, key))

    def joined(self, channel_id: str) -> None:
        """Note that the bot is now a member of ``channel_id``."""
        with self._lock:
            if channel_id in self._by_id:
                self._by_id[channel_id] = replace(self._by_id[channel_id], is_member=True)

    def forget(self, ref: str) -> None:
        """Drop what is cached about ``ref`` (Slack said otherwise): the next :meth:`find` asks again."""
        key = ref.lstrip("#")
        with self._lock:
            info = self._by_id.pop(self._by_name.get(key, key), None)
            if info is not None:
                self._by_name.pop(info.name, None)

    def _remember(self, data: dict[str, object]) -> ChannelInfo:
        info = ChannelInfo(
            id=str(data["id"]),
            name=str(data.get("name", "")),
            is_private=bool(data.get("is_private")),
            is_member=bool(data.get("is_member")),
        )
        with self._lock:
            self._by_id[info.id] = info
            if info.name:
                self._by_name[info.name] = info.id
        return info
