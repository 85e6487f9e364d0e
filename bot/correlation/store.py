"""Incident profiles and the candidate index, kept in the database next to the incidents they describe."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from bot.incidents.models import OPEN_STATUSES, Incident, IncidentKey, IncidentStatus
from bot.ingest.keys import bounded_key
from knowledge.correlation.facts import AlertFacts
from knowledge.correlation.profile import IncidentProfile
from knowledge.correlation.state import MAX_CANDIDATES, PER_KEY, index_keys
from knowledge.correlation.topology import Components

KEY_LENGTH = 300


def profile_of(incident: Incident) -> IncidentProfile:
    """The correlator's view of ``incident`` (an incident resolves when none of its alerts fires)."""
    profile = IncidentProfile(
        id=incident.id,
        opened_at=incident.opened_at,
        last_at=incident.last_alert_at,
        firing=int(incident.status != IncidentStatus.RESOLVED),
        resolved_at=incident.resolved_at,
        alerts=incident.alert_count,
        version=incident.correlation_version,
    )
    profile.load_json(incident.correlation or {})
    return profile


class ProfileStore:
    """Reads candidates through the key index (the most recent incidents per key) and records joins."""

    def __init__(self, horizon: timedelta) -> None:
        self.horizon = horizon  # resolved incidents stay candidates this long

    def candidates(self, session: Session, facts: AlertFacts, at: datetime) -> list[IncidentProfile]:
        since = at - self.horizon
        ids: dict[int, None] = {}
        for key in index_keys(facts):
            found = session.scalars(
                select(IncidentKey.incident_id)
                .where(IncidentKey.key == bounded_key(key, KEY_LENGTH))
                .order_by(IncidentKey.last_at.desc())
                .limit(PER_KEY)
            )
            ids.update(dict.fromkeys(found))
        if not ids:
            return []
        incidents = session.scalars(
            select(Incident).where(
                Incident.id.in_(ids),
                Incident.merged_into.is_(None),
                Incident.status.in_(OPEN_STATUSES) | (Incident.resolved_at >= since),
            )
        )
        profiles = sorted((profile_of(i) for i in incidents), key=lambda p: (p.last_at, p.id), reverse=True)
        return profiles[:MAX_CANDIDATES]

    def record(
        self, session: Session, incident: Incident, facts: AlertFacts, at: datetime, components: Components | None
    ) -> None:
        """Add a joining alert to the incident's profile and index (bumps its version)."""
        profile = profile_of(incident)
        profile.add(facts, at, components)
        incident.correlation = profile.to_json()
        incident.correlation_version += 1
        self.index(session, incident.id, index_keys(facts), at)

    @staticmethod
    def index(session: Session, incident_id: int, keys: list[str], at: datetime) -> None:
        rows = [
            {"key": bounded_key(key, KEY_LENGTH), "incident_id": incident_id, "last_at": at}
            for key in dict.fromkeys(keys)
        ]
        dialect = session.get_bind().dialect.name
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        statement = insert(IncidentKey).values(rows)
        session.execute(statement.on_conflict_do_update(index_elements=["key", "incident_id"], set_={"last_at": at}))
