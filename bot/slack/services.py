"""What the Slack listeners need, handed to them by the composition root; and the operations they share."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy import bindparam, text
from sqlalchemy.orm import Session

from bot.db.base import UTCDateTime
from bot.db.database import Database
from bot.incidents.corrections import Corrections
from bot.incidents.service import IncidentService
from bot.knowledge.service import KnowledgeService
from bot.slack.errors import NotAllowed

if TYPE_CHECKING:
    from bot.agent.exchange import AgentExchange
    from bot.agent.handover import Handover
    from bot.remediation.service import RemediationService
    from bot.slack.remediation import RemediationThread

log = logging.getLogger(__name__)

GROUP_CACHE_SECONDS = 300

_MARK_SEEN = text(
    "INSERT INTO slack_seen_requests (key, seen_at) VALUES (:key, :seen_at) ON CONFLICT (key) DO NOTHING"
).bindparams(bindparam("seen_at", type_=UTCDateTime()))


class Permissions:
    """``INCIBOT_RESPONDERS``: user ids (``U…``) and user groups (``S…``); empty means everyone."""

    def __init__(self, responders: frozenset[str], client: WebClient) -> None:
        self._users = frozenset(r for r in responders if not r.startswith("S"))
        self._groups = frozenset(r for r in responders if r.startswith("S"))
        self._client = client
        self._group_members: dict[str, tuple[float, frozenset[str]]] = {}

    def check(self, user_id: str, what: str) -> None:
        if not self._users and not self._groups:
            return
        if user_id in self._users or any(user_id in self._members(group) for group in self._groups):
            return
        raise NotAllowed(f"Only incident responders may {what}. Ask one of them, or an admin to add you.")

    def is_responder(self, user_id: str) -> bool:
        """``user_id`` is named in ``INCIBOT_RESPONDERS`` (directly or by a group); never when it is unset."""
        return user_id in self._users or any(user_id in self._members(group) for group in self._groups)

    def _members(self, group: str) -> frozenset[str]:
        cached = self._group_members.get(group)
        if cached is not None and time.monotonic() - cached[0] < GROUP_CACHE_SECONDS:
            return cached[1]
        try:
            users = frozenset(self._client.usergroups_users_list(usergroup=group).get("users") or [])
        except SlackApiError as exc:
            log.error("cannot read user group %s: %s", group, exc.response.get("error"))
            users = frozenset()
        self._group_members[group] = (time.monotonic(), users)
        return users


@dataclass
class SlackServices:
    database: Database
    incidents: IncidentService
    corrections: Corrections
    permissions: Permissions
    clock: Callable[[], datetime]
    wake_outbox: Callable[[], None]
    knowledge: KnowledgeService | None = None  # None: search is off
    route_channels: frozenset[str] = frozenset()  # the alerts channel and every route's (names): where to re-post
    remediation: RemediationService | None = None  # attached by the composition root (None: not built)
    remediation_thread: RemediationThread | None = None  # remediation's posts in incidents' threads
    agent: AgentExchange | None = None  # the virtual agent (attached by the runtime; None: INCIBOT_AGENT=false)
    handover: Handover | None = None  # the agent's "Report a problem" and "Ask a human" (attached by the runtime)

    def first_time(self, session: Session, key: str) -> bool:
        """Record that request ``key`` was handled; False if it already was (a retry or a replay)."""
        result = session.execute(_MARK_SEEN, {"key": key[:200], "seen_at": self.clock()})
        return bool(result.rowcount)  # type: ignore[attr-defined]
