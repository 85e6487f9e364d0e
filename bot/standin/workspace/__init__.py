"""The workspace the stand-in pretends to be: team, app, tokens, users, the channels it starts with, and the
manifest the app was installed from.

Two are named (:data:`WORKSPACES`): ``default``, what an admin has after setting incibot up (``#incidents``
exists and the bot was invited to it), and ``bare``, a fresh install (``#general`` only, the bot in no channel).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

# Not secrets: the stand-in's own tokens, valid nowhere else.
DEFAULT_BOT_TOKEN = "xoxb-standin-incibot"  # noqa: S105
DEFAULT_APP_TOKEN = "xapp-1-standin-incibot"  # noqa: S105
BOT_USER_ID = "U0BOTINCIBOT"


@dataclass(frozen=True)
class User:
    """A workspace member; ``name`` is the handle (``user_name`` in slash commands)."""

    id: str
    name: str
    real_name: str
    display_name: str = ""
    is_bot: bool = False
    tz: str = "Europe/London"

    def as_slack(self, team_id: str) -> dict[str, Any]:
        """The ``user`` object of ``users.info``."""
        return {
            "id": self.id,
            "team_id": team_id,
            "name": self.name,
            "deleted": False,
            "real_name": self.real_name,
            "tz": self.tz,
            "is_bot": self.is_bot,
            "is_app_user": False,
            "profile": {
                "real_name": self.real_name,
                "real_name_normalized": self.real_name,
                "display_name": self.display_name,
                "display_name_normalized": self.display_name,
                "team": team_id,
            },
        }


@dataclass(frozen=True)
class ChannelSeed:
    """A channel that exists from the start; the bot is a member when ``BOT_USER_ID`` is in ``members``."""

    id: str
    name: str
    members: tuple[str, ...]
    is_private: bool = False


def _default_users() -> tuple[User, ...]:
    return (
        User("U0ALICE", "alice", "Alice Archer", "alice"),
        User("U0BOB", "bob", "Bob Baker", "bob"),
        User("U0CAROL", "carol", "Carol Chen", "carol.c"),
    )


def _default_channels() -> tuple[ChannelSeed, ...]:
    return (ChannelSeed("C0INCIDENTS", "incidents", (BOT_USER_ID, "U0ALICE", "U0BOB", "U0CAROL")),)


GENERAL = ChannelSeed("C0GENERAL", "general", ("U0ALICE", "U0BOB", "U0CAROL"))


@dataclass(frozen=True)
class Workspace:
    """Defaults: the bot ``U0BOTINCIBOT`` (incibot), Alice, Bob and Carol, and ``#incidents`` (id
    ``C0INCIDENTS``) with all of them in it. Pass ``users=``/``channels=`` to seed others."""

    team_id: str = "T0STANDIN"
    team_name: str = "Incibot Stand-in"
    domain: str = "incibot-standin"
    app_id: str = "A0STANDIN"
    bot_id: str = "B0STANDIN"
    bot_token: str = DEFAULT_BOT_TOKEN
    app_token: str = DEFAULT_APP_TOKEN
    bot_user: User = field(default_factory=lambda: User(BOT_USER_ID, "incibot", "incibot", "incibot", is_bot=True))
    users: tuple[User, ...] = field(default_factory=_default_users)
    channels: tuple[ChannelSeed, ...] = field(default_factory=_default_channels)
    user_groups: tuple[tuple[str, tuple[str, ...]], ...] = (("S0ONCALL", ("U0ALICE", "U0CAROL")),)
    """User groups as (id, member ids): the default ``S0ONCALL`` holds Alice and Carol."""
    manifest: Path | None = None
    """The app manifest it was installed from (its bot scopes are granted); None: ``deploy/slack-manifest.yml``."""
    app_token_scopes: tuple[str, ...] = ("connections:write",)
    """The scopes of the app-level token (``xapp-``)."""
    general_channel_id: str | None = None
    """The channel every member is in and none can leave (``is_general``)."""

    @classmethod
    def default(cls) -> Workspace:
        """After set-up: ``#incidents`` exists and the bot, Alice, Bob and Carol are in it."""
        return cls()

    @classmethod
    def bare(cls) -> Workspace:
        """A fresh install: ``#general`` with Alice, Bob and Carol; the bot is in no channel."""
        return cls(channels=(GENERAL,), general_channel_id=GENERAL.id)

    def user(self, user_id: str) -> User | None:
        if user_id == self.bot_user.id:
            return self.bot_user
        return next((user for user in self.users if user.id == user_id), None)


WORKSPACES: Final[Mapping[str, Callable[[], Workspace]]] = {"default": Workspace.default, "bare": Workspace.bare}
"""The named workspaces (``incibot standin serve --workspace NAME``)."""
