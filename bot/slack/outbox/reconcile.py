"""Finds the message an earlier, unanswered try of an outbox item may have posted (by its metadata)."""

from __future__ import annotations

from bot.slack.outbox.gateway import SlackGateway
from bot.slack.outbox.kinds import Call

LOOKBACK = 200  # messages read back: an ambiguous post is among the channel's (or thread's) latest


def find_sent(gateway: SlackGateway, call: Call, channel_id: str) -> str | None:
    """The ts of the message ``call``'s item already posted in ``channel_id``, if Slack has it."""
    if call.thread_ts:
        method, args = "conversations.replies", {"channel": channel_id, "ts": call.thread_ts}
    else:
        method, args = "conversations.history", {"channel": channel_id}
    response = gateway.call(method, {**args, "limit": LOOKBACK, "include_all_metadata": True})
    for message in response.get("messages") or []:
        payload = (message.get("metadata") or {}).get("event_payload") or {}
        if payload.get("outbox_id") == call.item_id:
            return str(message["ts"])
    return None
