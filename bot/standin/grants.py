"""Which scopes each token was granted, and which a call needs (Slack's table: :mod:`bot.slack.scopes`).

The bot token holds the manifest's bot scopes; the app-level token its own (``connections:write`` by
default). A conversation method needs the scope of the channel's type, so the call's channel (or, for
``conversations.list``, its ``types``; for ``conversations.create``, ``is_private``) decides it. A private
channel the bot is not in counts as public: Slack does not reveal it, and answers ``channel_not_found``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from bot.slack.scopes import METHODS, needed_scopes
from bot.standin.store import Store

TokenKind = Literal["bot", "app"]
PUBLIC = ("public_channel",)


@dataclass(frozen=True)
class Grants:
    bot: tuple[str, ...]
    app: tuple[str, ...]

    def of(self, kind: TokenKind) -> tuple[str, ...]:
        return self.bot if kind == "bot" else self.app

    def missing(self, method: str, kind: TokenKind, channel_types: tuple[str, ...]) -> list[str]:
        """The scopes the call needs that the token lacks, sorted."""
        return sorted(needed_scopes(method, channel_types) - set(self.of(kind)))


def token_kind(method: str) -> TokenKind:
    return "app" if METHODS[method].app_token else "bot"


def accepted(method: str) -> tuple[str, ...]:
    """Every scope that can allow ``method`` (``x-accepted-oauth-scopes``)."""
    entry = METHODS[method]
    return (entry.scope,) if entry.scope is not None else tuple(entry.by_channel_type.values())


def channel_types(method: str, params: Mapping[str, Any], store: Store, bot_user: str) -> tuple[str, ...]:
    """The channel types a call involves."""
    if method == "conversations.list":
        return tuple(kind.strip() for kind in str(params.get("types") or "public_channel").split(",") if kind.strip())
    if method == "conversations.create":
        private = params.get("is_private")
        return ("private_channel",) if private is True or str(private).lower() in {"1", "true"} else PUBLIC
    if method == "conversations.open":
        return ("im",)
    ref = params.get("channel")
    channel = store.channel(str(ref)) if ref else None
    if channel is not None and channel.is_im:
        return ("im",)
    if channel is None or not channel.is_private or bot_user not in store.members(channel.id):
        return PUBLIC
    return ("private_channel",)
