"""Ranks live incidents' probable causes in the worker: inputs read and ranked outside the write transaction, the
ranking stored in a short one of its own.

In the processing transaction, :meth:`LiveRootCause.on_timeline` (an incident listener) marks an incident whose
alerts changed as stale: one upsert, nothing read (a new incident gets a first ranking from its opening alert, so
that its first post names a likely cause). Before each processing transaction, :meth:`prepare` (outside it,
as the classifier predicts) reads the stale incidents' alerts, the changes of their components and the confirmed
causes of similar resolved incidents, ranks them, and stores the rankings. An incident is re-ranked at most once
per :data:`MIN_INTERVAL` (a storm's incident changes with every delivery), and a change event recorded since the
last prepare makes the recently active open incidents stale.

When what the post shows of the ranking changes, an edit of the post is queued, coalesced (one pending per
incident, sent :data:`COALESCE` later at the earliest, rendering the state it finds then); when the top cause
changes after holding for :data:`NOTE_AFTER`, a timeline entry says so, which the thread gets as a reply ("likely
cause changed: A → B, because …").
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import bindparam, func, or_, select, text
from sqlalchemy.orm import Session

from bot.changes.models import ChangeRecord
from bot.db.database import Database
from bot.incidents.models import OPEN_STATUSES, Incident, TimelineEntry
from bot.incidents.service import SYSTEM_ACTOR, IncidentService
from bot.knowledge.service import KnowledgeService
from bot.rootcause.inputs import component_names, incident_alerts, incident_changes, past_causes
from bot.rootcause.learning import LearnedGraph
from bot.rootcause.models import NAME_LENGTH, RootCauseRanking
from bot.rootcause.ranking import from_json, shown_part, to_json
from bot.slack.models import OutboxKind
from bot.slack.notifier import COALESCE_WINDOW, enqueue_coalesced
from knowledge.correlation.topology import Topology
from knowledge.rootcause.model import CauseCandidate, ChangeEvent, IncidentAlert, PastCause

log = logging.getLogger(__name__)

CAUSE_CHANGED = "cause_changed"  # the timeline entry of a new top cause
CHANGES = frozenset({"opened", "alerts_added", "merged_in", "split", "not_related", "reopened"})
BATCH = 20  # incidents ranked per prepare at most
MIN_INTERVAL = timedelta(seconds=2)  # an incident is re-ranked at most this often
COALESCE = COALESCE_WINDOW  # a ranking's edit waits this long for more changes
NOTE_AFTER = timedelta(seconds=30)  # a top cause replaced sooner (alerts arriving together) changes without a note
ACTIVE = timedelta(hours=2)  # a new change event re-ranks the open incidents with an alert this recent

# Read before every processing transaction: built once.
_DUE = (
    select(RootCauseRanking.incident_id, RootCauseRanking.generation, Incident)
    .join(Incident, Incident.id == RootCauseRanking.incident_id)
    .where(
        RootCauseRanking.stale.is_(True),
        or_(
            RootCauseRanking.ranked_at.is_(None),
            RootCauseRanking.ranked_at <= bindparam("ranked_before"),
        ),
    )
    .order_by(RootCauseRanking.incident_id)
    .limit(BATCH)
)
_NEWEST_CHANGE = select(func.max(ChangeRecord.id))
_MARK_STALE = text(
    "INSERT INTO root_cause_rankings (incident_id, stale, generation, candidates, alert_count)"
    " VALUES (:incident_id, true, 1, '[]', 0)"
    " ON CONFLICT (incident_id) DO UPDATE SET stale = true, generation = root_cause_rankings.generation + 1"
)


class Ranker(Protocol):
    """``knowledge.rootcause``'s ranker: the incident's probable causes, best first."""

    def rank(
        self,
        alerts: Sequence[IncidentAlert],
        changes: Sequence[ChangeEvent],
        history: Sequence[PastCause],
        now: datetime,
    ) -> list[CauseCandidate]: ...


@dataclass(frozen=True, slots=True)
class _Inputs:
    incident_id: int
    generation: int
    alert_count: int
    alerts: list[IncidentAlert]
    changes: list[ChangeEvent]


class LiveRootCause:
    """An :class:`~bot.incidents.service.IncidentListener` and a preparer of the processing worker."""

    def __init__(
        self,
        ranker: Ranker,
        clock: Callable[[], datetime],
        *,
        topology: Topology | None = None,
        learned: LearnedGraph | None = None,
        knowledge: KnowledgeService | None = None,
    ) -> None:
        """``topology``: the configured file's; ``learned``: the graph the ranker reads without one (fed here);
        ``knowledge``: the search that finds similar resolved incidents (None: no history source)."""
        self._ranker = ranker
        self._topology = topology
        self._learned = learned
        self._clock = clock
        self._knowledge = knowledge
        self._service: IncidentService | None = None
        self._last_change: int | None = None  # the newest change event seen by prepare

    def attach(self, service: IncidentService) -> None:
        """The service whose timeline notes a changed top cause (it lists this listener: built after it)."""
        self._service = service

    # --- in the processing transaction -------------------------------------------------------------------

    def on_timeline(self, session: Session, incident: Incident, entry: TimelineEntry) -> None:
        if entry.kind == "opened" and session.get(RootCauseRanking, incident.id) is None:
            self._first_ranking(session, incident, entry.at)
        elif entry.kind in CHANGES:
            session.execute(_MARK_STALE, {"incident_id": incident.id})

    def _first_ranking(self, session: Session, incident: Incident, now: datetime) -> None:
        """A new incident's first post shows a likely cause at once: its opening alert's component (or a service
        changed just before), ranked here from that one alert and the changes (two indexed reads, no search). It
        stays stale, so that the worker ranks it again with the history source (and the alerts that follow)."""
        alerts = incident_alerts(session, incident.id, limit=1)
        changes = incident_changes(session, incident, component_names(alerts, self._topology), now)
        candidates = self._safely_ranked(incident.id, alerts, changes, [], now) if alerts else []
        top = candidates[0].name[:NAME_LENGTH] if candidates else None
        session.add(
            RootCauseRanking(
                incident_id=incident.id,
                stale=True,
                generation=1,
                candidates=to_json(candidates),
                top=top,
                top_since=now if top else None,
                alert_count=incident.alert_count,
            )
        )

    # --- before it ------------------------------------------------------------------------------------

    def prepare(self, database: Database) -> int:
        """Rank the incidents whose ranking is stale; returns how many were ranked. One read, and a write only
        when there is something to store (and one of each more after a new change event)."""
        now = self._clock()
        with database.read() as session:
            if self._learned is not None:
                self._learned.catch_up(session)
            touched = self._touched_by_changes(session, now)
            inputs = self._inputs(session, now) if not touched else []
        if touched:  # rare: mark them, then read what is due with them
            with database.write() as session:
                session.execute(_MARK_STALE, [{"incident_id": incident_id} for incident_id in touched])
            with database.read() as session:
                inputs = self._inputs(session, now)
        if not inputs:
            return 0
        rankings = [(item, self._rank(item, now)) for item in inputs]
        with database.write() as session:
            for item, candidates in rankings:
                self._store(session, item, candidates, now)
        return len(rankings)

    def _inputs(self, session: Session, now: datetime) -> list[_Inputs]:
        """What the ranker needs of each stale incident due for ranking."""
        due = session.execute(_DUE, {"ranked_before": now - MIN_INTERVAL}).all()
        inputs: list[_Inputs] = []
        for incident_id, generation, incident in due:
            if incident.merged_into is not None or incident.alert_count == 0:  # nothing to rank: cleared
                inputs.append(_Inputs(incident_id, generation, incident.alert_count, [], []))
                continue
            alerts = incident_alerts(session, incident_id)
            changes = incident_changes(session, incident, component_names(alerts, self._topology), now)
            inputs.append(_Inputs(incident_id, generation, incident.alert_count, alerts, changes))
        return inputs

    def _rank(self, item: _Inputs, now: datetime) -> list[CauseCandidate]:
        if not item.alerts:
            return []
        try:
            history = past_causes(self._knowledge, item.incident_id)
        except Exception:  # search is a help, never a condition: rank without it
            log.exception("reading the history of incident %d's cause failed", item.incident_id)
            history = []
        return self._safely_ranked(item.incident_id, item.alerts, item.changes, history, now)

    def _safely_ranked(
        self,
        incident_id: int,
        alerts: Sequence[IncidentAlert],
        changes: Sequence[ChangeEvent],
        history: Sequence[PastCause],
        now: datetime,
    ) -> list[CauseCandidate]:
        """The ranking; none (logged) if the ranker fails: a suggestion never stops alert processing."""
        try:
            return self._ranker.rank(alerts, changes, history, now)
        except Exception:
            log.exception("ranking the causes of incident %d failed", incident_id)
            return []

    def _store(self, session: Session, item: _Inputs, candidates: list[CauseCandidate], now: datetime) -> None:
        row = session.get(RootCauseRanking, item.incident_id, with_for_update=True)
        incident = session.get(Incident, item.incident_id)
        if row is None or incident is None:
            return
        before, held = from_json(row.candidates), now - (row.top_since or now)
        row.candidates = to_json(candidates)
        top = candidates[0].name[:NAME_LENGTH] if candidates else None
        if top != row.top:
            row.top, row.top_since = top, now
        row.alert_count = item.alert_count
        row.ranked_at = now
        row.stale = row.generation != item.generation  # changed again meanwhile: ranked again later
        if incident.merged_into is not None:
            return
        replaced = bool(before and candidates) and candidates[0].name != before[0].name
        if replaced and held >= NOTE_AFTER and self._service is not None:
            self._service.note(session, incident, SYSTEM_ACTOR, CAUSE_CHANGED, changed_text(before[0], candidates[0]))
        elif shown_part(before) != shown_part(candidates) and incident.slack_ts is not None:
            channel = incident.slack_channel or ""
            enqueue_coalesced(session, OutboxKind.UPDATE_INCIDENT, incident, channel, now + COALESCE)

    def _touched_by_changes(self, session: Session, now: datetime) -> list[int]:
        """The recently active open incidents, when a change event was recorded since the last look (they are
        ranked again with it)."""
        latest = session.scalar(_NEWEST_CHANGE) or 0
        last, self._last_change = self._last_change, latest
        if last is None or latest <= last:
            return []
        earliest = session.scalar(select(func.min(ChangeRecord.at)).where(ChangeRecord.id > last))
        since = min(earliest or now, now) - ACTIVE
        return list(
            session.scalars(
                select(Incident.id).where(
                    Incident.status.in_(OPEN_STATUSES), Incident.merged_into.is_(None), Incident.last_alert_at >= since
                )
            )
        )


def changed_text(before: CauseCandidate, after: CauseCandidate) -> str:
    """``likely cause changed: node k8s-worker-us06 → service checkout (91%), because …``."""
    because = f", because {'; '.join(e.text for e in after.evidence[:2])}" if after.evidence else ""
    return (
        f"Likely cause changed: {before.kind} {before.name} → {after.kind} {after.name}"
        f" ({after.confidence:.0%}){because}."
    )
