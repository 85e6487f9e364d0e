"""Which OAuth scopes each Slack Web API method needs, as Slack documents them, and the bot scopes incibot needs.

Conversation methods need the scope of the channel's type: ``channels:*`` for a public channel, ``groups:*``
for a private one (``im:*``/``mpim:*`` for direct messages), so ``conversations.list`` with
``types=public_channel,private_channel`` needs both ``channels:read`` and ``groups:read``. ``apps.connections.open``
takes an app-level token (``xapp-``) with ``connections:write``; every other method here takes the bot token.

The stand-in answers ``missing_scope`` from this table, ``incibot slack check`` compares it with the scopes a
token was granted, and ``tests/test_manifests.py`` checks both manifests against it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

ChannelType = Literal["public_channel", "private_channel", "im", "mpim"]
CHANNEL_TYPES: Final[tuple[ChannelType, ...]] = ("public_channel", "private_channel", "im", "mpim")


@dataclass(frozen=True)
class MethodScopes:
    """What one method needs: a kind of token, and one scope, or one per channel type it supports."""

    app_token: bool = False
    """Takes an app-level token (``xapp-``), not the bot token."""
    scope: str | None = None
    by_channel_type: Mapping[str, str] = field(default_factory=dict)

    @property
    def manages_channels(self) -> bool:
        """Creates channels or changes who is in them (``channels:manage`` for a public channel)."""
        return self.by_channel_type.get("public_channel") == "channels:manage"


def _per_type(action: str) -> dict[str, str]:
    return {kind: f"{prefix}:{action}" for kind, prefix in _PREFIXES.items()}


_PREFIXES: Final = {"public_channel": "channels", "private_channel": "groups", "im": "im", "mpim": "mpim"}
_MANAGE: Final = {"public_channel": "channels:manage", "private_channel": "groups:write"}

METHODS: Final[Mapping[str, MethodScopes]] = {
    "auth.test": MethodScopes(),
    "chat.postMessage": MethodScopes(scope="chat:write"),
    "chat.postEphemeral": MethodScopes(scope="chat:write"),
    "chat.update": MethodScopes(scope="chat:write"),
    "chat.delete": MethodScopes(scope="chat:write"),
    "conversations.create": MethodScopes(by_channel_type=_MANAGE),
    "conversations.invite": MethodScopes(by_channel_type=_MANAGE),
    "conversations.join": MethodScopes(by_channel_type={"public_channel": "channels:join"}),
    "conversations.info": MethodScopes(by_channel_type=_per_type("read")),
    "conversations.list": MethodScopes(by_channel_type=_per_type("read")),
    "conversations.open": MethodScopes(by_channel_type={"im": "im:write", "mpim": "mpim:write"}),
    "conversations.history": MethodScopes(by_channel_type=_per_type("history")),
    "conversations.replies": MethodScopes(by_channel_type=_per_type("history")),
    "usergroups.users.list": MethodScopes(scope="usergroups:read"),
    "usergroups.list": MethodScopes(scope="usergroups:read"),
    "users.info": MethodScopes(scope="users:read"),
    "users.list": MethodScopes(scope="users:read"),
    "apps.connections.open": MethodScopes(app_token=True, scope="connections:write"),
    "views.open": MethodScopes(),  # modals need no scope, only a trigger id
    "views.update": MethodScopes(),
    "views.push": MethodScopes(),
}
"""Slack's documented scopes per method (https://docs.slack.dev/reference/methods)."""

POST_TO_PUBLIC_NON_MEMBER: Final = "chat:write.public"
"""Lets ``chat.postMessage`` post to a public channel the bot is not in (reading there still needs membership)."""

EVENT_SCOPES: Final[Mapping[str, str]] = {
    "app_mention": "app_mentions:read",
    "message.channels": "channels:history",
    "message.groups": "groups:history",
    "message.im": "im:history",
    "message.mpim": "mpim:history",
    "member_joined_channel": "channels:read",
    "channel_created": "channels:read",
}
"""The scope each Events API subscription needs."""

COMMANDS_SCOPE: Final = "commands"

USED_CHANNEL_TYPES: Final[tuple[ChannelType, ...]] = ("public_channel", "private_channel")
"""Where incibot reads and posts: a configured channel may be public, or private with the bot invited."""
MANAGED_CHANNEL_TYPES: Final[tuple[ChannelType, ...]] = ("public_channel",)
"""The channels incibot creates (per-incident channels) and invites people to are public."""
DM_METHODS: Final[frozenset[str]] = frozenset({"conversations.open"})
"""Methods incibot calls on direct messages only (the virtual agent's DMs to one user)."""

BOT_SCOPES: Final[Mapping[str, str]] = {
    "chat:write": "incident posts, thread replies and edits (chat.postMessage, chat.update)",
    "channels:read": "resolve public channel names to ids (conversations.list)",
    "groups:read": "resolve private channel names to ids (conversations.list types=private_channel)",
    "channels:history": "find a post whose send was interrupted before posting again, in a public channel",
    "groups:history": "the same in a private channel (conversations.history/.replies)",
    "channels:join": "join a public alerts or route channel it is not in yet (conversations.join)",
    "channels:manage": "per-incident channels (INCIBOT_INCIDENT_CHANNELS=true) and inviting responders to them",
    "usergroups:read": "INCIBOT_RESPONDERS may name a user group (usergroups.users.list)",
    "commands": "the slash commands /incident, /runbook and /ask",
    "app_mentions:read": "answer @incibot (the app_mention event)",
    "im:history": "the virtual agent reads questions sent to it in a direct message (the message.im event)",
    "im:write": 'the virtual agent\'s direct messages: /ask answers, "notify me when resolved" (conversations.open)',
}
"""Every bot scope incibot's code needs, with why; both manifests in ``deploy/`` list exactly these."""


def method_scopes(method: str) -> MethodScopes:
    """The method's entry; KeyError for a method the table does not know."""
    return METHODS[method]


def needed_scopes(method: str, channel_types: Collection[str] = ("public_channel",)) -> frozenset[str]:
    """The scopes a call of ``method`` needs, one per channel type involved (types the method does not
    support need none: Slack refuses those calls with another error)."""
    entry = METHODS[method]
    if entry.scope is not None:
        return frozenset({entry.scope})
    return frozenset(entry.by_channel_type[kind] for kind in channel_types if kind in entry.by_channel_type)


def incibot_channel_types(method: str) -> tuple[ChannelType, ...]:
    """The channel types incibot calls ``method`` on."""
    if method in DM_METHODS:
        return ("im",)
    return MANAGED_CHANNEL_TYPES if METHODS[method].manages_channels else USED_CHANNEL_TYPES


def bot_scopes_for(methods: Iterable[str], events: Iterable[str], *, commands: bool) -> frozenset[str]:
    """The bot scopes needed to call ``methods`` as incibot does, receive ``events`` and (``commands``) slash
    commands; methods that take an app-level token add none."""
    scopes: set[str] = set()
    for method in methods:
        if not METHODS[method].app_token:
            scopes |= needed_scopes(method, incibot_channel_types(method))
    scopes |= {EVENT_SCOPES[event] for event in events}
    if commands:
        scopes.add(COMMANDS_SCOPE)
    return frozenset(scopes)
