"""What tests read back: channels, the messages posted with their edits and thread replies, ephemerals.

Channels are named by id, name or ``#name``; a method returns None for a channel that does not exist.
"""

from __future__ import annotations

from typing import Any

from bot.standin.api import TOMBSTONE_TEXT, WebApi
from bot.standin.store import Message, Store


class Inspector:
    def __init__(self, store: Store, api: WebApi) -> None:
        self._store = store
        self._api = api

    def messages(self, channel_ref: str) -> dict[str, Any] | None:
        """``{"channel": NAME, "messages": [...]}``: top-level messages oldest first, thread replies nested."""
        channel = self._store.channel(channel_ref)
        if channel is None:
            return None
        top = reversed(self._store.top_level(channel.id))
        return {"channel": channel.name, "messages": [self._tree(message) for message in top]}

    def _tree(self, message: Message, *, nested: bool = True) -> dict[str, Any]:
        replies = self._store.replies(message.channel_id, message.ts) if nested else []
        tree = {
            "ts": message.ts,
            "user": message.user,
            "text": TOMBSTONE_TEXT if message.deleted else message.content.text,
            "blocks": message.content.blocks,
            "metadata": message.content.metadata,
            "edits": [
                {
                    "text": version.content.text,
                    "blocks": version.content.blocks,
                    "metadata": version.content.metadata,
                    "replaced_at": version.replaced_at,
                }
                for version in self._store.edits(message.channel_id, message.ts)
            ],
            "replies": [self._tree(reply, nested=False) for reply in replies],
        }
        return tree | ({"subtype": "tombstone"} if message.deleted else {})

    def message(self, channel_ref: str, ts: str) -> dict[str, Any] | None:
        """One message as ``conversations.history`` shows it (metadata included)."""
        channel = self._store.channel(channel_ref)
        message = self._store.message(channel.id, ts) if channel else None
        return self._api.message_json(message) if message else None

    def delete_message(self, channel_ref: str, ts: str) -> bool:
        channel = self._store.channel(channel_ref)
        return channel is not None and self._store.delete_message(channel.id, ts)

    def channel(self, channel_ref: str) -> dict[str, Any] | None:
        """A channel as ``conversations.info`` shows it, plus its ``members``."""
        channel = self._store.channel(channel_ref)
        if channel is None:
            return None
        return {**self._api.channel_json(channel), "members": self._store.members(channel.id)}

    def ephemerals(self, channel_ref: str) -> list[dict[str, Any]] | None:
        channel = self._store.channel(channel_ref)
        return None if channel is None else self._store.ephemerals(channel.id)
