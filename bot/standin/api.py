"""The Web API methods incibot uses, answered with Slack's JSON shapes and error codes.

Parameters come as Slack accepts them: form strings (``blocks``/``metadata`` as JSON text, booleans as
``1``/``true``) or JSON values. Channels are Slack ids; ``chat.postMessage`` and ``chat.postEphemeral`` also
take a name (``incidents`` or ``#incidents``), as Slack does. A call needs its method's scope for the channel's
type (``missing_scope`` with ``needed`` and ``provided`` otherwise, see :mod:`bot.standin.grants`). The bot
may only read channels it is a member of (``not_in_channel``), and post to them, or to any public channel
with ``chat:write.public``; ``conversations.join`` makes it a member of a public channel.

The module stays whole: it is the method table and the shared argument, channel and message-shape rules
those methods need, one small handler each.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from bot.slack.scopes import POST_TO_PUBLIC_NON_MEMBER
from bot.standin.blocks_limits import ContentError, check_message
from bot.standin.grants import Grants, TokenKind, channel_types, token_kind
from bot.standin.store import Channel, Content, Message, NameTaken, Store, Window, parse_ts
from bot.standin.workspace import Workspace

UPDATE_MAX_TEXT = 4_000
TOMBSTONE_TEXT = "This message was deleted."
SLACKBOT = "USLACKBOT"
HISTORY_LIMIT = (100, 999)  # default, maximum
REPLIES_LIMIT = (1000, 1000)
MAX_CHANNEL_NAME = 80
_CHANNEL_NAME = re.compile(r"[a-z0-9_\-\u00C0-\uFFFF]+")


class ApiError(Exception):
    """A Slack error answer: ``{"ok": false, "error": error, **extra}``."""

    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra


class Args:
    """One call's parameters, read the way Slack reads them."""

    def __init__(self, params: Mapping[str, Any], base_url: str) -> None:
        self.params = params
        self.base_url = base_url

    def __contains__(self, key: str) -> bool:
        return self.params.get(key) is not None

    def text(self, key: str, default: str = "") -> str:
        value = self.params.get(key)
        return default if value is None else str(value)

    def flag(self, key: str) -> bool:
        value = self.params.get(key)
        return value is True or str(value).lower() in {"1", "true"}

    def number(self, key: str, default: int) -> int:
        try:
            return int(self.params.get(key) or default)
        except (TypeError, ValueError):
            raise ApiError("invalid_arguments") from None

    def json_value(self, key: str, error: str) -> Any:
        """A JSON-valued argument, given as JSON or (form) as JSON text; ``error`` if the text is not JSON."""
        value = self.params.get(key)
        if not isinstance(value, str):
            return value
        try:
            return orjson.loads(value) if value else None
        except orjson.JSONDecodeError:
            raise ApiError(error) from None


Handler = Callable[[Args], dict[str, Any]]


class WebApi:
    """Dispatches ``POST /api/<method>`` to the method's handler, after checking the token and its scopes."""

    def __init__(
        self,
        store: Store,
        workspace: Workspace,
        socket_url: Callable[[str], str],
        grants: Grants,
        more: Mapping[str, Handler] | None = None,
    ) -> None:
        """``more``: methods answered elsewhere (the modals' ``views.*``, :mod:`bot.standin.views`)."""
        self._store = store
        self._ws = workspace
        self._bot = workspace.bot_user.id
        self._socket_url = socket_url
        self.grants = grants
        self._methods: dict[str, Handler] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "chat.postEphemeral": self._post_ephemeral,
            "conversations.create": self._create,
            "conversations.info": self._info,
            "conversations.history": self._history,
            "conversations.replies": self._replies,
            "conversations.invite": self._invite,
            "conversations.join": self._join,
            "conversations.list": self._list,
            "conversations.open": self._open,
            "usergroups.users.list": self._group_users,
            "users.info": self._user_info,
            "apps.connections.open": self._connections_open,
            **(more or {}),
        }

    @property
    def methods(self) -> frozenset[str]:
        """The Web API methods the stand-in answers."""
        return frozenset(self._methods)

    def token_kind(self, token: str | None) -> TokenKind | None:
        """Whose token it is: the bot's, the app's, or (None) no valid one."""
        tokens: dict[str, TokenKind] = {self._ws.bot_token: "bot", self._ws.app_token: "app"}
        return tokens.get(token or "")

    def call(self, method: str, params: Mapping[str, Any], token: str | None, base_url: str) -> dict[str, Any]:
        """The ``ok`` answer of ``method``; raises :class:`ApiError` for an error answer."""
        if method not in self._methods:
            raise ApiError("unknown_method")
        if not token:
            raise ApiError("not_authed")
        kind = self.token_kind(token)
        if kind is None:
            raise ApiError("invalid_auth")
        if kind != token_kind(method):
            raise ApiError("not_allowed_token_type")
        missing = self.grants.missing(method, kind, channel_types(method, params, self._store, self._bot))
        if missing:
            raise ApiError("missing_scope", needed=",".join(missing), provided=",".join(self.grants.of(kind)))
        return {"ok": True, **self._methods[method](Args(params, base_url))}

    # Message shapes.

    def message_json(self, message: Message, *, with_metadata: bool = True) -> dict[str, Any]:
        """A message as ``conversations.history`` shows it (a deleted parent of a thread as its tombstone)."""
        if message.deleted:
            tombstone = {"type": "message", "subtype": "tombstone", "user": SLACKBOT, "text": TOMBSTONE_TEXT}
            return tombstone | {"hidden": True, "ts": message.ts, "is_locked": False} | self._thread_json(message)
        content = message.content
        shaped: dict[str, Any] = {"type": "message", "user": message.user, "text": content.text, "ts": message.ts}
        if message.user == self._bot:
            shaped |= {"bot_id": self._ws.bot_id, "app_id": self._ws.app_id}
        shaped["team"] = self._ws.team_id
        if content.blocks is not None:
            shaped["blocks"] = content.blocks
        if content.attachments is not None:
            shaped["attachments"] = content.attachments
        if content.metadata is not None and with_metadata:
            shaped["metadata"] = content.metadata
        if message.edited_ts is not None:
            shaped["edited"] = {"user": message.edited_by, "ts": message.edited_ts}
        return shaped | self._thread_json(message)

    def _thread_json(self, message: Message) -> dict[str, Any]:
        """A reply's link to its parent, or a parent's summary of its replies."""
        if message.thread_ts is not None:
            parent = self._store.message(message.channel_id, message.thread_ts)
            return {"thread_ts": message.thread_ts, "parent_user_id": parent.user if parent else message.user}
        replies = self._store.replies(message.channel_id, message.ts)
        if not replies:
            return {}
        users = list(dict.fromkeys(reply.user for reply in replies))
        return {
            "thread_ts": message.ts,
            "reply_count": len(replies),
            "reply_users_count": len(users),
            "latest_reply": replies[-1].ts,
            "reply_users": users,
        }

    def channel_json(self, channel: Channel) -> dict[str, Any]:
        if channel.im_user is not None:  # a direct message, as Slack shows one
            return {
                "id": channel.id,
                "created": channel.created,
                "is_im": True,
                "is_org_shared": False,
                "user": channel.im_user,
                "is_user_deleted": False,
                "priority": 0,
            }
        members = self._store.members(channel.id)
        return {
            "id": channel.id,
            "name": channel.name,
            "name_normalized": channel.name,
            "is_channel": True,
            "is_group": False,
            "is_im": False,
            "is_mpim": False,
            "is_private": channel.is_private,
            "is_archived": False,
            "is_general": channel.id == self._ws.general_channel_id,
            "is_member": self._bot in members,
            "created": channel.created,
            "creator": channel.creator,
            "context_team_id": self._ws.team_id,
            "num_members": len(members),
            "topic": {"value": "", "creator": "", "last_set": 0},
            "purpose": {"value": "", "creator": "", "last_set": 0},
        }

    # Helpers.

    def _channel(self, args: Args, *, by_name: bool = False) -> Channel:
        """The channel named by ``args["channel"]``: an id, or also a name where ``by_name``."""
        ref = args.text("channel")
        channel = self._store.channel(ref) if ref else None
        if channel is None or (not by_name and channel.id != ref):
            raise ApiError("channel_not_found")
        if channel.is_private and self._bot not in self._store.members(channel.id):
            raise ApiError("channel_not_found")  # private channels are invisible to non-members
        return channel

    def _member_channel(self, args: Args, *, by_name: bool = False) -> Channel:
        channel = self._channel(args, by_name=by_name)
        if self._bot not in self._store.members(channel.id):
            raise ApiError("not_in_channel")
        return channel

    def _postable_channel(self, args: Args) -> Channel:
        """A channel the bot is in, or a public one when it was granted ``chat:write.public``."""
        channel = self._channel(args, by_name=True)
        public_allowed = not channel.is_private and POST_TO_PUBLIC_NON_MEMBER in self.grants.bot
        if not public_allowed and self._bot not in self._store.members(channel.id):
            raise ApiError("not_in_channel")
        return channel

    def _content(self, args: Args, previous: Content | None = None) -> Content:
        """The message content in ``args``; for an update, what ``args`` omits is kept from ``previous``."""
        blocks = args.json_value("blocks", "invalid_blocks_format")
        attachments = args.json_value("attachments", "invalid_attachments")
        metadata = args.json_value("metadata", "invalid_metadata_format")
        if previous is not None and not any(key in args for key in ("text", "blocks", "attachments")):
            raise ApiError("no_text")
        text = args.text("text")
        if previous is not None:
            blocks = previous.blocks if "blocks" not in args else blocks
            attachments = previous.attachments if "attachments" not in args else attachments
            metadata = previous.metadata if "metadata" not in args else metadata
            text = text if "text" in args else previous.text
        try:
            check_message(text, blocks, attachments)
        except ContentError as exc:
            if exc.details:
                raise ApiError(exc.error, errors=exc.details, response_metadata={"messages": _errors(exc)}) from None
            raise ApiError(exc.error) from None
        if metadata is not None and not _valid_metadata(metadata):
            raise ApiError("invalid_metadata_format")
        return Content(text, blocks or None, attachments or None, metadata)

    def _thread_parent(self, channel: Channel, args: Args) -> str | None:
        if "thread_ts" not in args:
            return None
        parent = self._store.message(channel.id, args.text("thread_ts"))
        if parent is None:
            raise ApiError("thread_not_found")
        return parent.thread_ts or parent.ts  # a reply to a reply joins the parent's thread

    def _user(self, user_id: str) -> str:
        if self._store.user(user_id) is None:
            raise ApiError("user_not_found")
        return user_id

    # Methods.

    def _auth_test(self, _args: Args) -> dict[str, Any]:
        return {
            "url": f"https://{self._ws.domain}.slack.com/",
            "team": self._ws.team_name,
            "user": self._ws.bot_user.name,
            "team_id": self._ws.team_id,
            "user_id": self._bot,
            "bot_id": self._ws.bot_id,
            "is_enterprise_install": False,
        }

    def _post_message(self, args: Args) -> dict[str, Any]:
        channel = self._postable_channel(args)
        content = self._content(args)
        message = self._store.add_message(channel.id, self._bot, content, self._thread_parent(channel, args))
        return {"channel": channel.id, "ts": message.ts, "message": self.message_json(message)}

    def _update(self, args: Args) -> dict[str, Any]:
        channel = self._member_channel(args)
        current = self._store.message(channel.id, args.text("ts"))
        if current is None or current.deleted:
            raise ApiError("message_not_found")
        if len(args.text("text")) > UPDATE_MAX_TEXT:
            raise ApiError("msg_too_long")
        updated = self._store.update_message(channel.id, current.ts, self._content(args, current.content), self._bot)
        if updated is None:
            raise ApiError("message_not_found")
        return {
            "channel": channel.id,
            "ts": updated.ts,
            "text": updated.content.text,
            "message": self.message_json(updated),
        }

    def _post_ephemeral(self, args: Args) -> dict[str, Any]:
        channel = self._member_channel(args, by_name=True)
        user = self._user(args.text("user"))
        if user not in self._store.members(channel.id):
            raise ApiError("user_not_in_channel")
        content = self._content(args)
        return {"message_ts": self._store.add_ephemeral(channel.id, user, content, self._thread_parent(channel, args))}

    def _create(self, args: Args) -> dict[str, Any]:
        name = args.text("name")
        if not name:
            raise ApiError("invalid_name_required")
        if len(name) > MAX_CHANNEL_NAME:
            raise ApiError("invalid_name_maxlength")
        if not _CHANNEL_NAME.fullmatch(name):
            raise ApiError("invalid_name_specials")
        if not name.strip("-_"):
            raise ApiError("invalid_name_punctuation")
        try:
            channel = self._store.create_channel(
                "C" + secrets.token_hex(5).upper(), name, is_private=args.flag("is_private"), creator=self._bot
            )
        except NameTaken:
            raise ApiError("name_taken") from None
        return {"channel": self.channel_json(channel)}

    def _info(self, args: Args) -> dict[str, Any]:
        return {"channel": self.channel_json(self._channel(args))}

    def _history(self, args: Args) -> dict[str, Any]:
        channel = self._member_channel(args)
        window, limit = _window(args, HISTORY_LIMIT)
        if "cursor" in args:
            window = Window(window.oldest, _cursor(args.text("cursor")), window.oldest_inclusive, latest_inclusive=True)
        page = self._store.top_level(channel.id, window, limit=limit + 1)
        metadata = args.flag("include_all_metadata")
        answer: dict[str, Any] = {
            "messages": [self.message_json(message, with_metadata=metadata) for message in page[:limit]],
            "has_more": len(page) > limit,
            "pin_count": 0,
        }
        if len(page) > limit:
            answer["response_metadata"] = {"next_cursor": _next_cursor(page[limit].ts)}
        return answer

    def _replies(self, args: Args) -> dict[str, Any]:
        channel = self._member_channel(args)
        parent = self._store.message(channel.id, args.text("ts"))
        if parent is None:
            raise ApiError("thread_not_found")
        if parent.thread_ts is not None:
            parent = self._store.message(channel.id, parent.thread_ts) or parent
        window, limit = _window(args, REPLIES_LIMIT)
        start = _cursor(args.text("cursor")) if "cursor" in args else None
        thread = [parent, *self._store.replies(channel.id, parent.ts)]
        selected = [message for message in thread if _in_window(message.ts, window, start)]
        metadata = args.flag("include_all_metadata")
        answer: dict[str, Any] = {
            "messages": [self.message_json(message, with_metadata=metadata) for message in selected[:limit]],
            "has_more": len(selected) > limit,
        }
        if len(selected) > limit:
            answer["response_metadata"] = {"next_cursor": _next_cursor(selected[limit].ts)}
        return answer

    def _invite(self, args: Args) -> dict[str, Any]:
        """One bad user fails the whole call, unless ``force``: then the valid ones are invited, and ``errors``
        lists the others (one ``{"user", "ok": false, "error"}`` each)."""
        channel = self._member_channel(args)
        users = list(dict.fromkeys(user.strip() for user in args.text("users").split(",") if user.strip()))
        if not users:
            raise ApiError("no_user")
        members = set(self._store.members(channel.id))
        errors = [
            {"user": user, "ok": False, "error": error}
            for user in users
            if (error := self._invite_error(user, members, alone=len(users) == 1)) is not None
        ]
        if errors and not (args.flag("force") and len(errors) < len(users)):
            raise ApiError(str(errors[0]["error"]), errors=errors)
        failed = {str(error["user"]) for error in errors}
        self._store.add_members(channel.id, [user for user in users if user not in failed and user not in members])
        answer: dict[str, Any] = {"channel": self.channel_json(channel)}
        return answer | ({"errors": errors} if errors else {})

    def _invite_error(self, user: str, members: set[str], *, alone: bool) -> str | None:
        if user == self._bot:
            return "cant_invite_self"
        if self._store.user(user) is None:
            return "user_not_found"
        if alone and user in members:
            return "already_in_channel"  # among several, a member already in is skipped silently
        return None

    def _join(self, args: Args) -> dict[str, Any]:
        channel = self._channel(args)
        if channel.is_private:
            raise ApiError("method_not_supported_for_channel_type")
        answer: dict[str, Any] = {}
        if self._bot in self._store.members(channel.id):
            answer = {"warning": "already_in_channel", "response_metadata": {"warnings": ["already_in_channel"]}}
        self._store.add_members(channel.id, [self._bot])
        return {"channel": self.channel_json(channel), **answer}

    def _list(self, args: Args) -> dict[str, Any]:
        """Channels the bot can see (public ones, private ones it is in), ``limit`` per page."""
        types = set(args.text("types", "public_channel").split(","))
        visible = [
            channel
            for channel in self._store.all_channels()
            if not channel.is_im
            and ("private_channel" if channel.is_private else "public_channel") in types
            and (not channel.is_private or self._bot in self._store.members(channel.id))
        ]
        start = int(args.text("cursor") or 0) if args.text("cursor").isdigit() else 0
        limit = max(1, min(args.number("limit", 100), 1000))
        page = visible[start : start + limit]
        cursor = str(start + limit) if start + limit < len(visible) else ""
        return {"channels": [self.channel_json(c) for c in page], "response_metadata": {"next_cursor": cursor}}

    def _open(self, args: Args) -> dict[str, Any]:
        """A direct message with one user (``users``); a group DM is not supported here."""
        users = [user.strip() for user in args.text("users").split(",") if user.strip()]
        if not users:
            raise ApiError("users_list_not_supplied")
        if len(users) > 1:
            raise ApiError("method_not_supported_for_channel_type")
        channel, existed = self._store.open_im(self._user(users[0]), self._bot)
        shown = self.channel_json(channel) if args.flag("return_im") else {"id": channel.id}
        return ({"no_op": True, "already_open": True} if existed else {}) | {"channel": shown}

    def _group_users(self, args: Args) -> dict[str, Any]:
        groups = dict(self._ws.user_groups)
        group = args.text("usergroup")
        if group not in groups:
            raise ApiError("no_such_subteam")
        return {"users": list(groups[group])}

    def _user_info(self, args: Args) -> dict[str, Any]:
        user = self._store.user(args.text("user"))
        if user is None:
            raise ApiError("user_not_found")
        return {"user": user.as_slack(self._ws.team_id)}

    def _connections_open(self, args: Args) -> dict[str, Any]:
        return {"url": self._socket_url(args.base_url)}


def _errors(exc: ContentError) -> list[str]:
    return [f"[ERROR] {detail}" for detail in exc.details]


def _valid_metadata(metadata: Any) -> bool:
    return (
        isinstance(metadata, dict)
        and isinstance(metadata.get("event_type"), str)
        and bool(metadata["event_type"])
        and isinstance(metadata.get("event_payload"), dict)
    )


def _window(args: Args, limits: tuple[int, int]) -> tuple[Window, int]:
    """The ``oldest``/``latest``/``inclusive`` bounds and the ``limit`` of a history-like call."""
    inclusive = args.flag("inclusive")
    bounds = []
    for key in ("oldest", "latest"):
        micros = parse_ts(args.text(key)) if key in args else None
        if key in args and micros is None:
            raise ApiError("invalid_ts_" + key)
        bounds.append(micros)
    oldest, latest = bounds
    default, maximum = limits
    limit = args.number("limit", default)
    limit = default if limit <= 0 else min(limit, maximum)
    latest = latest if latest is not None else time.time_ns() // 1000 + 1
    return Window(oldest or 0, latest, inclusive, inclusive), limit


def _in_window(ts: str, window: Window, start: int | None) -> bool:
    micros = parse_ts(ts) or 0
    above = micros >= window.oldest if window.oldest_inclusive else micros > window.oldest
    latest = window.latest if window.latest is not None else micros + 1
    below = micros <= latest if window.latest_inclusive else micros < latest
    return above and below and (start is None or micros >= start)


def _next_cursor(ts: str) -> str:
    return base64.b64encode(f"next_ts:{ts}".encode()).decode()


def _cursor(cursor: str) -> int:
    """The timestamp a ``next_cursor`` points at (the first message of the next page)."""
    try:
        kind, _, ts = base64.b64decode(cursor, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise ApiError("invalid_cursor") from None
    micros = parse_ts(ts)
    if kind != "next_ts" or micros is None:
        raise ApiError("invalid_cursor")
    return micros
