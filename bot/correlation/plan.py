"""Correlation decisions made ahead in order, each on the incidents as the decisions before it will leave them.

The worker decides before its write transaction and applies in it. Deciding every upcoming alert on the incidents
as they are *now* made each decision after the first stale in a storm: the first alert's join changes the incident
the next one read. A :class:`Plan` instead decides the upcoming alerts in their order, on the database's
candidates overlaid with what the earlier planned decisions do to them (an incident joined is the planned copy,
an incident opened is a new candidate, named by a placeholder until it exists). In the transaction each decision
is checked as before, against the candidates read there, with placeholders resolved to the incidents their
alerts opened. The plan also resolves an incident where the transaction will: at the end of the delivery that
resolves one of its alerts, when none of the alerts linked to it (or planned to join it) fires any more. A plan
that no longer matches the database (a check failed, something else changed an incident) is dropped and made
again from the database.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.incidents.models import IncidentAlert
from knowledge.correlation.correlator import Decision
from knowledge.correlation.facts import AlertFacts
from knowledge.correlation.profile import IncidentProfile
from knowledge.correlation.state import MAX_CANDIDATES, PER_KEY, index_keys
from knowledge.correlation.topology import Components

_PLACEHOLDER = re.compile(r"#-(\d+)\b")


def placeholder(alert_id: int) -> int:
    """The id a plan gives the incident that ``alert_id`` opens (never a real id: those are positive)."""
    return -alert_id


Recent = dict[str, list[tuple[int, datetime]]]
"""Per index key: the incidents with the latest activity on it, newest first, with that time (``PER_KEY`` at most)."""


@dataclass(slots=True)
class _Planned:
    profile: IncidentProfile  # the incident as the plan leaves it (the plan's own copy)
    opened: int | None = None  # a new incident: its place among those the plan opens
    firing: int = 0  # alerts the plan joins to it that fire now


class Plan:
    """The incidents as the planned decisions leave them."""

    def __init__(self) -> None:
        self._planned: dict[int, _Planned] = {}
        self._opened = 0
        self._incident_of: dict[int, int] = {}  # alert id -> the incident the plan puts it in
        self._keys: dict[str, dict[int, datetime]] = {}  # index key -> incidents the plan adds it to, and when

    def incidents(self) -> list[int]:
        """The incidents the plan changes (placeholders for those it opens)."""
        return list(self._planned)

    def incident_of(self, alert_id: int) -> int | None:
        """The incident a planned alert joins or opens (a placeholder for one the plan opens); None if unplanned."""
        return self._incident_of.get(alert_id)

    def __len__(self) -> int:
        return len(self._planned)

    def candidates(self, facts: AlertFacts, read: list[IncidentProfile], recent: Recent) -> list[IncidentProfile]:
        """``read`` (the database's candidates for ``facts``, found through the lists of ``recent``) as the planned
        decisions will leave them: joined incidents as planned, and the planned ones that share an index key with
        the alert, in the database's order (latest activity first, a new incident after every existing one) and
        number. Each key lists its ``PER_KEY`` most recent incidents, as the transaction's read does: one the plan
        adds to a full list pushes that list's oldest out (a candidate no other key lists is one no longer)."""
        listed: set[int] = set()
        for key in dict.fromkeys(index_keys(facts)):
            latest = dict(recent.get(key, ()))
            latest.update(self._keys.get(key, {}))
            listed.update(sorted(latest, key=latest.__getitem__, reverse=True)[:PER_KEY])
        found = {candidate.id: candidate for candidate in read if candidate.id in listed}
        for incident, planned in self._planned.items():
            if incident in listed:
                found[incident] = planned.profile
        return sorted(found.values(), key=self._order, reverse=True)[:MAX_CANDIDATES]

    def _order(self, candidate: IncidentProfile) -> tuple[datetime, int]:
        planned = self._planned.get(candidate.id)
        opened = planned.opened if planned is not None else None
        return candidate.last_at, candidate.id if opened is None else (1 << 62) + opened

    def add(
        self,
        alert_id: int,
        facts: AlertFacts,
        at: datetime,
        decision: Decision,
        candidates: list[IncidentProfile],
        components: Components | None,
        *,
        fires: bool = True,
    ) -> None:
        """Apply a planned decision to the planned incidents (as the transaction will apply it). ``fires``: the
        alert fires now (an alert whose resolve was accepted already keeps nothing open)."""
        if decision.incident is None:
            planned = _Planned(IncidentProfile(id=placeholder(alert_id), opened_at=at, last_at=at), opened=self._opened)
            self._opened += 1
        else:
            planned = self._planned.get(decision.incident) or _Planned(
                next(c for c in candidates if c.id == decision.incident).copy()
            )
        planned.profile.add(facts, at, components)
        for key in index_keys(facts):
            self._keys.setdefault(key, {})[planned.profile.id] = at
        planned.firing += fires
        self._planned[planned.profile.id] = planned
        self._incident_of[alert_id] = planned.profile.id

    def resolve(self, incident: int, at: datetime, stored: IncidentProfile | None, *, fires_in_store: bool) -> None:
        """An alert of ``incident`` resolved at ``at``: the incident resolves unless another of its alerts fires
        (one linked to it in the database, ``fires_in_store``, or one the plan joins to it). ``stored``: the
        database's profile, for an incident the plan has not touched yet (None: not a candidate, e.g. merged)."""
        planned = self._planned.get(incident)
        if planned is None:
            if stored is None:
                return
            planned = _Planned(stored.copy())
        if planned.profile.firing == 0 or planned.firing or (fires_in_store and incident > 0):
            return  # resolved already, or something still fires
        planned.profile.resolve(at)
        self._planned[incident] = planned


def resolved(session: Session, decision: Decision) -> Decision | None:
    """``decision`` with its placeholders replaced by the incidents their alerts opened, as this transaction sees
    them; None while one of those alerts is not linked yet."""
    wanted = {-i for i, _ in decision.considered if i < 0}
    wanted |= {-i for i in (decision.incident, decision.merge_with) if i is not None and i < 0}
    if not wanted:
        return decision
    links = select(IncidentAlert.alert_id, IncidentAlert.incident_id).where(IncidentAlert.alert_id.in_(wanted))
    found = dict(session.execute(links).tuples().all())
    if len(found) < len(wanted):
        return None

    def real(incident: int) -> int:
        return found[-incident] if incident < 0 else incident

    return replace(
        decision,
        incident=None if decision.incident is None else real(decision.incident),
        merge_with=None if decision.merge_with is None else real(decision.merge_with),
        considered=tuple((real(i), version) for i, version in decision.considered),
        reason=_PLACEHOLDER.sub(lambda match: f"#{found[int(match.group(1))]}", decision.reason),
    )
