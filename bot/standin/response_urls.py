"""``response_url``: minted for a slash command or a block action, it takes the bot's JSON responses.

A response (``text``, ``blocks``, ``response_type``, ``replace_original``, ``delete_original``,
``thread_ts``) is recorded, then applied as Slack applies it: ``delete_original`` deletes the message the
action came from, ``replace_original`` edits it, ``in_channel`` posts a message in the channel (the bot
need not be a member), and anything else is an ephemeral message to the user who acted.

As at Slack, a response URL takes :data:`MAX_USES` posts within :data:`LIFETIME` seconds of being minted;
a later post is refused with HTTP 404 (``used_url`` after the fifth, ``expired_url`` after 30 minutes).
"""

from __future__ import annotations

import secrets
from dataclasses import replace
from typing import Any

import orjson

from bot.standin.blocks_limits import ContentError, check_message
from bot.standin.clock import StandinClock
from bot.standin.store import Channel, Content, ResponseUrl, Store

MAX_USES = 5
LIFETIME = 30 * 60.0


class ResponseUrls:
    def __init__(self, store: Store, bot_user: str, clock: StandinClock) -> None:
        self._store = store
        self._bot = bot_user
        self._clock = clock

    def mint(self, base_url: str, channel: Channel, user: str, message_ts: str | None = None) -> str:
        """A fresh response URL for an action by ``user`` in ``channel`` (on message ``message_ts``)."""
        url_id = secrets.token_urlsafe(12)
        self._store.add_response_url(ResponseUrl(url_id, channel.id, message_ts, user, self._clock.now()))
        return f"{base_url}/_standin/response/{url_id}"

    def receive(self, url_id: str, body: bytes) -> tuple[int, dict[str, Any]]:
        """Take a POST to the response URL ``url_id``: the HTTP status and JSON answer."""
        target = self._store.response_url(url_id)
        if target is None or self._clock.now() - target.created > LIFETIME:
            return 404, {"ok": False, "error": "expired_url"}
        if len(self._store.responses(url_id)) >= MAX_USES:
            return 404, {"ok": False, "error": "used_url"}
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            payload = None
        if not isinstance(payload, dict):
            return 400, {"ok": False, "error": "invalid_payload"}
        error = self._apply(target, payload)
        self._store.add_response(url_id, payload, error)
        if error is not None:
            return (404 if error == "message_not_found" else 400), {"ok": False, "error": error}
        return 200, {"ok": True}

    def _apply(self, target: ResponseUrl, payload: dict[str, Any]) -> str | None:
        if payload.get("delete_original") and target.message_ts is not None:
            deleted = self._store.delete_message(target.channel_id, target.message_ts)
            return None if deleted else "message_not_found"
        text, blocks = payload.get("text") or "", payload.get("blocks")
        try:
            check_message(str(text), blocks, payload.get("attachments"))
        except ContentError as exc:
            return exc.error
        content = Content(str(text), blocks or None, payload.get("attachments") or None)
        thread_ts = str(payload["thread_ts"]) if payload.get("thread_ts") else None
        if payload.get("replace_original") and target.message_ts is not None:
            original = self._store.message(target.channel_id, target.message_ts)
            if original is None:
                return "message_not_found"
            content = replace(content, metadata=original.content.metadata)
            self._store.update_message(target.channel_id, target.message_ts, content, self._bot)
            return None
        if payload.get("response_type") == "in_channel":
            self._store.add_message(target.channel_id, self._bot, content, thread_ts)
        else:
            self._store.add_ephemeral(target.channel_id, target.user_id, content, thread_ts)
        return None

    def view(self, url_id: str) -> dict[str, Any] | None:
        """``GET /_standin/responses/<id>``: where the URL points and what was posted to it."""
        target = self._store.response_url(url_id)
        if target is None:
            return None
        return {
            "id": url_id,
            "channel": target.channel_id,
            "message_ts": target.message_ts,
            "user": target.user_id,
            "responses": self._store.responses(url_id),
        }
