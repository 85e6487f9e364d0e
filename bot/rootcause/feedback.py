"""People's word on an incident's cause: 👍/👎 on a candidate, and the cause confirmed when it is resolved."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.incidents.errors import IncidentNotFound
from bot.incidents.models import Incident
from bot.incidents.service import IncidentService
from bot.rootcause.models import NAME_LENGTH, CauseFeedback, ConfirmedCause
from bot.rootcause.ranking import stored_ranking

CAUSE_CONFIRMED = "cause_confirmed"  # the timeline entry
# ``cause=NAME`` or ``cause="a few words"`` anywhere in a resolve's note.
_CAUSE = re.compile(rf'(?:^|\s)cause=(?:"([^"]{{1,{NAME_LENGTH}}})"|(\S{{1,{NAME_LENGTH}}}))(?=\s|$)')


@dataclass(frozen=True, slots=True)
class Confirmed:
    name: str
    rank: int | None  # its place in the ranking (1: the top), None when the ranking did not hold it


def split_cause(note: str | None) -> tuple[str | None, str | None]:
    """The ``cause=…`` of a resolve's note, and the note without it (None when nothing is left)."""
    if not note:
        return None, note
    match = _CAUSE.search(note)
    if match is None:
        return None, note
    cause = (match.group(1) or match.group(2)).strip()
    rest = " ".join((note[: match.start()] + " " + note[match.end() :]).split())
    return cause or None, rest or None


def record_vote(session: Session, incident_id: int, name: str, helpful: bool, actor: str, now: datetime) -> int | None:
    """Store ``actor``'s 👍 (``helpful``) or 👎 on candidate ``name`` (their latest vote on it counts); returns its
    rank in the incident's ranking now (None: no longer in it)."""
    if session.get(Incident, incident_id) is None:
        raise IncidentNotFound(incident_id)
    stored = stored_ranking(session, incident_id)
    rank = stored.rank_of(name) if stored is not None else None
    confidence = stored.candidates[rank - 1].confidence if stored is not None and rank is not None else None
    vote = session.scalars(
        select(CauseFeedback).where(
            CauseFeedback.incident_id == incident_id, CauseFeedback.actor == actor, CauseFeedback.candidate == name
        )
    ).first()
    if vote is None:
        vote = CauseFeedback(incident_id=incident_id, actor=actor[:200], candidate=name[:NAME_LENGTH])
        session.add(vote)
    vote.at, vote.helpful, vote.rank, vote.confidence = now, helpful, rank, confidence
    return rank


def confirm(
    service: IncidentService,
    session: Session,
    incident_id: int,
    name: str,
    actor: str,
    actor_name: str,
    note: str | None = None,
) -> Confirmed:
    """Record ``name`` as the incident's confirmed cause (replacing an earlier one), with its rank in the ranking;
    the timeline (and so the thread) says so."""
    incident = session.get(Incident, incident_id, with_for_update=True)
    if incident is None:
        raise IncidentNotFound(incident_id)
    stored = stored_ranking(session, incident_id)
    match = next((c.name for c in stored.candidates if c.name.lower() == name.lower()), None) if stored else None
    name = (match or name)[:NAME_LENGTH]
    rank = stored.rank_of(name) if stored is not None else None
    confirmed = session.get(ConfirmedCause, incident_id)
    if confirmed is None:
        confirmed = ConfirmedCause(incident_id=incident_id)
        session.add(confirmed)
    confirmed.name, confirmed.actor, confirmed.at = name, actor[:200], service.now()
    confirmed.rank, confirmed.note = rank, note
    place = f" (ranked {rank})" if rank is not None else " (not in the ranking)"
    service.note(session, incident, actor, CAUSE_CONFIRMED, f"{actor_name} confirmed the cause: {name}{place}.")
    return Confirmed(name, rank)
