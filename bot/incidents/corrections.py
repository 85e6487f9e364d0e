"""People correct the correlator: merge two incidents, split alerts out of one, or mark the alerts of an "alerts
joined" reply as not related (they are split out too).

Each correction changes the incidents through :class:`~bot.incidents.service.IncidentService`'s timeline, so Slack
shows it like any other change, recomputes the correlator's profiles (and bumps their versions, so a decision
prepared before it is made again), and is stored as labelled (alert, incident) pairs in
:class:`~bot.incidents.models.CorrelationFeedback`: training data for the next ``incibot models train correlate``
(:func:`feedback_pairs`). A pair's features are computed as the correlator would have seen it when the alert
arrived: the alert against the incident's other alerts linked up to then.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import numpy.typing as npt
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.correlation.live import LearnedCorrelation, ShadowCorrelation, facts_of
from bot.correlation.store import ProfileStore
from bot.correlation.wiring import build_correlator
from bot.incidents.errors import IncidentNotFound
from bot.incidents.models import CorrelationFeedback, Incident, IncidentAlert, IncidentStatus
from bot.incidents.service import SYSTEM_ACTOR, IncidentService, Outcome
from bot.ingest.models import Alert
from bot.settings import Settings
from knowledge.alerts import AlertStatus, severity_rank
from knowledge.correlation.correlator import Correlator
from knowledge.correlation.features import FEATURES
from knowledge.correlation.profile import IncidentProfile
from knowledge.correlation.state import index_keys
from knowledge.embeddings import Embedder

MAX_PAIRS = 50  # labelled pairs stored per correction (the first alerts moved)
MERGED, SPLIT, NOT_RELATED = "merge", "split", "not_related"
_REASON_LENGTH = 4000


@dataclass(frozen=True, slots=True)
class _Member:
    """One alert of an incident, with its link."""

    link: IncidentAlert
    alert: Alert

    @property
    def firing(self) -> bool:
        return self.alert.status == AlertStatus.FIRING.value


class Corrections:
    """Merge, split and "not related", each a change people see and a lesson the correlator learns."""

    def __init__(self, service: IncidentService, correlator: Callable[[], Correlator]) -> None:
        self._service = service
        self._make_correlator = correlator
        self._correlator: Correlator | None = None

    @property
    def correlator(self) -> Correlator:
        if self._correlator is None:
            self._correlator = self._make_correlator()
        return self._correlator

    def merge(
        self, session: Session, target_id: int, source_id: int, actor: str, actor_name: str | None = None
    ) -> Outcome:
        """Move every alert of incident ``source_id`` into ``target_id``; the source is resolved as merged."""
        if target_id == source_id:
            return Outcome(False, f"Cannot merge incident {target_id} into itself.")
        target, source = _locked(session, target_id), _locked(session, source_id)
        for incident in (target, source):
            if incident.merged_into is not None:
                return Outcome(False, f"Incident {incident.id} was already merged into #{incident.merged_into}.")
        name, now = actor_name or actor, self._service.now()
        moved, kept = _members(session, source.id), _members(session, target.id)
        self._store_pairs(session, MERGED, target, kept, moved, related=True, actor=actor, at=now)
        for member in moved:
            _relink(member, target.id, "merged", f"from #{source.id}, merged in by {name}")
        target.alert_count += len(moved)
        target.alerts_reported += len(moved)  # announced by the merge reply and shown in the post, not as "joined"
        target.opened_at = min(target.opened_at, source.opened_at)
        target.last_alert_at = max(target.last_alert_at, source.last_alert_at)
        if severity_rank(source.severity) > severity_rank(target.severity):
            target.severity = source.severity
        target.service = target.service or source.service
        reopened = target.status == IncidentStatus.RESOLVED and any(member.firing for member in moved)
        if reopened:
            target.status, target.resolved_at, target.resolved_by = IncidentStatus.TRIGGERED, None, None
        source.merged_into = target.id
        source.alert_count = source.alerts_reported = 0
        source.correlation_version += 1  # a decision prepared on it is made again (it is no candidate now)
        if source.is_open:
            source.status, source.resolved_at, source.resolved_by = IncidentStatus.RESOLVED, now, name
        session.flush()
        self._reprofile(session, target, [*kept, *moved], index=moved)
        noun = _alerts(len(moved))
        self._service.note(session, source, actor, "merged", f"Merged into #{target.id} by {name} ({noun} moved).")
        more = " It reopened: some of those alerts still fire." if reopened else ""
        self._service.note(
            session, target, actor, "merged_in", f"#{source.id} merged in by {name} ({noun} joined).{more}"
        )
        return Outcome(True, f"Incident {source.id} merged into #{target.id} by {name} ({noun} moved).")

    def split(
        self, session: Session, incident_id: int, selector: str, actor: str, actor_name: str | None = None
    ) -> Outcome:
        """Move the alerts of ``incident_id`` named ``selector`` (an alertname, or an alert id) to a new incident."""
        incident = _locked(session, incident_id)
        members = _members(session, incident.id)
        chosen = _select(members, selector.strip())
        if not chosen:
            return Outcome(False, f"Incident {incident_id} has no alert named {selector} and no alert with that id.")
        return self._move_out(session, incident, members, chosen, SPLIT, actor, actor_name or actor)

    def not_related(
        self, session: Session, incident_id: int, alert_ids: range, actor: str, actor_name: str | None = None
    ) -> Outcome:
        """The alerts of ``incident_id`` with ids in ``alert_ids`` (one "alerts joined" reply) do not belong to it:
        they move to a new incident."""
        incident = _locked(session, incident_id)
        members = _members(session, incident.id)
        chosen = [member for member in members if member.alert.id in alert_ids]
        if not chosen:
            return Outcome(False, f"Those alerts are no longer part of incident {incident_id}.")
        return self._move_out(session, incident, members, chosen, NOT_RELATED, actor, actor_name or actor)

    def _move_out(
        self,
        session: Session,
        incident: Incident,
        members: list[_Member],
        chosen: list[_Member],
        kind: str,
        actor: str,
        name: str,
    ) -> Outcome:
        if incident.merged_into is not None:
            return Outcome(False, f"Incident {incident.id} was merged into #{incident.merged_into}.")
        if len(chosen) == len(members):
            return Outcome(
                False, f"Those are all the alerts of incident {incident.id}; there is nothing to split from."
            )
        moving = {member.alert.id for member in chosen}
        kept = [member for member in members if member.alert.id not in moving]
        now = self._service.now()
        self._store_pairs(session, kind, incident, kept, chosen, related=False, actor=actor, at=now)
        why = "split off" if kind == SPLIT else "marked not related"
        first = chosen[0]
        fresh = self._service.open_incident(session, first.alert, first.link.linked_at)
        for member in chosen:
            _relink(member, fresh.id, kind, f"from #{incident.id}, {why} by {name}")
        fresh.alert_count = len(chosen)
        fresh.last_alert_at = max(member.link.linked_at for member in chosen)
        fresh.severity = max((m.alert.severity for m in chosen), key=severity_rank)
        if not any(member.firing for member in chosen):
            fresh.status, fresh.resolved_at, fresh.resolved_by = IncidentStatus.RESOLVED, now, SYSTEM_ACTOR
        reported = sorted(member.alert.id for member in members)[: incident.alerts_reported]
        incident.alerts_reported -= len(moving.intersection(reported))
        incident.alert_count = len(kept)
        incident.severity = max((m.alert.severity for m in kept), key=severity_rank)
        session.flush()
        self._reprofile(session, incident, kept)
        self._reprofile(session, fresh, chosen, index=chosen)
        names = ", ".join(dict.fromkeys(member.alert.alertname for member in chosen))
        what = f"{_alerts(len(chosen))} ({names})"
        resolved = "" if fresh.is_open else " None of them fires, so it is resolved."
        self._service.note(
            session, fresh, actor, "opened", f"Opened with {what} {why} from #{incident.id} by {name}.{resolved}"
        )
        self._service.note(session, incident, actor, kind, f"{what} {why} by {name}: now #{fresh.id}.")
        return Outcome(True, f"Moved {what} from #{incident.id} to new incident #{fresh.id}.")

    def _reprofile(
        self, session: Session, incident: Incident, members: Sequence[_Member], index: Sequence[_Member] = ()
    ) -> None:
        """The incident's profile rebuilt from its alerts (a new version), and the keys of ``index`` indexed."""
        profile = self._profile(incident.id, _in_order(members))
        profile.firing = sum(member.firing for member in members)
        incident.correlation = profile.to_json()
        incident.correlation_version += 1
        if index:
            keys = [key for member in index for key in index_keys(facts_of(member.alert))]
            ProfileStore.index(session, incident.id, keys, max(member.link.linked_at for member in index))

    def _profile(self, incident_id: int, members: Sequence[_Member]) -> IncidentProfile:
        """The profile of ``members`` (in link order), as the correlator builds it while they join."""
        start = members[0].link.linked_at if members else datetime.min
        profile = IncidentProfile(id=incident_id, opened_at=start, last_at=start)
        for member in members:
            self._add(profile, member)
        return profile

    def _add(self, profile: IncidentProfile, member: _Member) -> None:
        facts = facts_of(member.alert)
        profile.add(facts, member.link.linked_at, self.correlator.components(facts))

    def _store_pairs(
        self,
        session: Session,
        kind: str,
        incident: Incident,
        context: Sequence[_Member],
        subjects: Sequence[_Member],
        *,
        related: bool,
        actor: str,
        at: datetime,
    ) -> None:
        """Label each of ``subjects`` (at most :data:`MAX_PAIRS`) against ``incident`` as it was when the subject
        arrived: ``context``'s alerts linked up to then (its first alert when the subject came first)."""
        context = _in_order(context)
        if not context:
            return  # an incident without alerts (declared by hand): nothing to compare with
        profile = self._profile(incident.id, context[:1])
        added = 1
        for subject in _in_order(subjects)[:MAX_PAIRS]:
            when = subject.link.linked_at
            while added < len(context) and context[added].link.linked_at <= when:
                self._add(profile, context[added])
                added += 1
            rows, _ = self.correlator.score_rows(facts_of(subject.alert), when, [profile])
            session.add(
                CorrelationFeedback(
                    at=at,
                    actor=actor[:200],
                    kind=kind,
                    incident_id=incident.id,
                    alert_id=subject.alert.id,
                    related=related,
                    features=[float(value) for value in rows[0]],
                )
            )


def build_corrections(service: IncidentService, settings: Settings, embedder: Embedder | None = None) -> Corrections:
    """Corrections with the service's own correlator, or (``INCIBOT_CORRELATION=source``) one built on first use."""
    correlation = service.correlation
    if isinstance(correlation, ShadowCorrelation):
        correlation = correlation.learned
    if isinstance(correlation, LearnedCorrelation):
        learned = correlation.correlator
        return Corrections(service, lambda: learned)
    return Corrections(service, lambda: build_correlator(settings, embedder))


def feedback_pairs(session: Session) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """Every stored correction as training rows of :data:`FEATURES` and labels (1: related); rows of an older
    feature set are left out."""
    stored = session.execute(
        select(CorrelationFeedback.features, CorrelationFeedback.related).order_by(CorrelationFeedback.id)
    )
    kept = [(features, related) for features, related in stored if len(features) == len(FEATURES)]
    rows = np.array([features for features, _ in kept], dtype=np.float64).reshape(len(kept), len(FEATURES))
    return rows, np.array([int(related) for _, related in kept], dtype=np.int64)


def _locked(session: Session, incident_id: int) -> Incident:
    incident = session.get(Incident, incident_id, with_for_update=True)
    if incident is None:
        raise IncidentNotFound(incident_id)
    return incident


def _members(session: Session, incident_id: int) -> list[_Member]:
    rows = session.execute(
        select(IncidentAlert, Alert)
        .join(Alert, Alert.id == IncidentAlert.alert_id)
        .where(IncidentAlert.incident_id == incident_id)
        .order_by(Alert.id)
    )
    return [_Member(link, alert) for link, alert in rows.tuples()]


def _select(members: list[_Member], selector: str) -> list[_Member]:
    """The alert with id ``selector``, else the alerts named ``selector``."""
    if selector.isdigit():
        by_id = [member for member in members if member.alert.id == int(selector)]
        if by_id:
            return by_id
    return [member for member in members if member.alert.alertname == selector]


def _relink(member: _Member, incident_id: int, decision: str, why: str) -> None:
    link = member.link
    before = f"; before: {link.reason}" if link.reason else ""
    link.incident_id = incident_id
    link.decision = decision
    link.probability = None
    link.reason = f"{why}{before}"[:_REASON_LENGTH]


def _in_order(members: Sequence[_Member]) -> list[_Member]:
    return sorted(members, key=lambda member: (member.link.linked_at, member.alert.id))


def _alerts(count: int) -> str:
    return "1 alert" if count == 1 else f"{count} alerts"
