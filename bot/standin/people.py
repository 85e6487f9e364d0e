"""What people do in the stand-in's workspace that the bot hears of: write a message (in a channel they are in,
or in their direct message with the app) and open that direct message. The driver then delivers the events
Slack would send (:meth:`bot.standin.driver.SlackDriver.say`)."""

from __future__ import annotations

from typing import Any

from bot.standin.store import Content, Store
from bot.standin.workspace import Workspace


class NotMember(PermissionError):
    """A person may only write where they are a member."""


class People:
    def __init__(self, store: Store, workspace: Workspace) -> None:
        self._store = store
        self._bot = workspace.bot_user.id

    def open_im(self, user: str) -> dict[str, Any]:
        """``{"channel": ID}``: the user's direct message with the app; LookupError for an unknown user."""
        if self._store.user(user) is None:
            raise LookupError(f"no user {user}")
        channel, _existed = self._store.open_im(user, self._bot)
        return {"channel": channel.id}

    def say(self, channel_ref: str, user: str, text: str, thread_ts: str | None = None) -> dict[str, Any]:
        """``user`` writes ``text`` in ``channel_ref`` (in ``thread_ts``'s thread); what the events need to say of
        it: ``channel`` (id), ``ts``, ``thread_ts``, ``channel_type`` (``im``, ``channel``, ``group``) and
        ``bot_member`` (whether the app is in the conversation, so hears of it)."""
        channel = self._store.channel(channel_ref)
        if channel is None or self._store.user(user) is None:
            raise LookupError(f"no channel {channel_ref} or no user {user}")
        members = self._store.members(channel.id)
        if user not in members:
            raise NotMember(f"{user} is not in {channel_ref}")
        parent = self._store.message(channel.id, thread_ts) if thread_ts else None
        if thread_ts and parent is None:
            raise LookupError(f"no message {thread_ts} in {channel_ref}")
        root = (parent.thread_ts or parent.ts) if parent is not None else None
        message = self._store.add_message(channel.id, user, Content(text), root)
        kind = "im" if channel.is_im else "group" if channel.is_private else "channel"
        return {
            "channel": channel.id,
            "ts": message.ts,
            "thread_ts": root,
            "channel_type": kind,
            "bot_member": self._bot in members,
        }
