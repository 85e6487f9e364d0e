"""Incident profiles and the candidate index, kept in the database next to the incidents they describe."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import CompoundSelect, Select, bindparam, literal_column, select, text, union_all
from sqlalchemy.orm import Session

from bot.correlation.plan import Recent
from bot.incidents.models import OPEN_STATUSES, Incident, IncidentKey, IncidentStatus
from bot.ingest.keys import bounded_key
from knowledge.correlation.facts import AlertFacts
from knowledge.correlation.profile import IncidentProfile
from knowledge.correlation.state import MAX_CANDIDATES, PER_KEY, index_keys
from knowledge.correlation.topology import Components

KEY_LENGTH = 300
# One statement for every join's keys (executed once per key), compiled once: a multi-row insert was compiled anew
# for every join, a few milliseconds of each inside the write lock. The same text on SQLite and PostgreSQL.
_INDEX_KEY = text(
    "INSERT INTO incident_keys (key, incident_id, last_at) VALUES (:key, :incident_id, :last_at)"
    " ON CONFLICT (key, incident_id) DO UPDATE SET last_at = excluded.last_at"
).bindparams(bindparam("last_at", type_=IncidentKey.__table__.c.last_at.type))
PARSED_PROFILES = 20_000  # parsed profiles kept by incident (an entry stands only for the version it was read at)
_PROFILE_COLUMNS = (
    Incident.id,
    Incident.opened_at,
    Incident.last_alert_at,
    Incident.status,
    Incident.resolved_at,
    Incident.alert_count,
    Incident.correlation_version,
)
# Read for every incident a candidate read finds changed: built once.
_PROFILE_SETS = select(Incident.id, Incident.correlation_version, Incident.correlation).where(
    Incident.id.in_(bindparam("ids", expanding=True))
)


def profile_of(incident: Incident) -> IncidentProfile:
    """The correlator's view of ``incident`` (an incident resolves when none of its alerts fires)."""
    profile = _bare_profile(incident)
    profile.load_json(incident.correlation or {})
    return profile


def _bare_profile(row: Any) -> IncidentProfile:
    """The times and counts of a profile, from an incident or a row with the same columns (sets empty)."""
    return IncidentProfile(
        id=row.id,
        opened_at=row.opened_at,
        last_at=row.last_alert_at,
        firing=int(row.status != IncidentStatus.RESOLVED),
        resolved_at=row.resolved_at,
        alerts=row.alert_count,
        version=row.correlation_version,
    )


class ProfileStore:
    """Reads candidates through the key index (the most recent incidents per key) and records joins.

    Candidates share their sets with a cache of parsed profiles keyed by (incident, version): they are read-only
    (the correlator never changes them; :meth:`record` parses its own copy).
    """

    def __init__(self, horizon: timedelta) -> None:
        self.horizon = horizon  # resolved incidents stay candidates this long
        self._parsed: OrderedDict[int, IncidentProfile] = OrderedDict()
        self._statements: dict[int, Select[Any]] = {}  # the candidates query by number of keys
        self._recent_statements: dict[int, CompoundSelect[Any]] = {}  # the per-key lists by number of keys

    def candidates(self, session: Session, facts: AlertFacts, at: datetime) -> list[IncidentProfile]:
        """The profiles of :meth:`candidate_rows`."""
        return self.profiles_of(session, self.candidate_rows(session, facts, at))

    def recent(self, session: Session, facts: AlertFacts) -> Recent:
        """Per index key of ``facts``: the ``PER_KEY`` incidents with the latest activity on it (live or not), newest
        first, with that time: the lists :meth:`candidate_rows` takes its candidates from (a plan that adds
        incidents to a key pushes the oldest out of its list, as the transaction will)."""
        bounded = _bounded_keys(facts)
        recent: Recent = {key: [] for key in index_keys(facts)}
        keys = list(bounded.values())
        for number, incident_id, last_at in session.execute(self._lists_statement(len(bounded)), _params(bounded)):
            recent[keys[number]].append((incident_id, last_at))
        return recent

    def candidate_rows(self, session: Session, facts: AlertFacts, at: datetime) -> list[Any]:
        """One query: the most recent ``PER_KEY`` incidents of each index key, still live, as rows of the profiles'
        times and counts (``id`` and ``correlation_version`` say what a decision on them considered), most recent
        first, :data:`MAX_CANDIDATES` at most. Nothing is parsed."""
        bounded = _bounded_keys(facts)
        params = {**_params(bounded), "since": at - self.horizon}
        found = session.execute(self._candidates_statement(len(bounded)), params)
        return sorted(found, key=lambda r: (r.last_alert_at, r.id), reverse=True)[:MAX_CANDIDATES]

    def profiles(self, session: Session, ids: Collection[int]) -> dict[int, IncidentProfile]:
        """The profiles of the incidents ``ids`` as candidates are read (merged ones are never candidates)."""
        if not ids:
            return {}
        rows = session.execute(select(*_PROFILE_COLUMNS).where(Incident.id.in_(ids), Incident.merged_into.is_(None)))
        return {profile.id: profile for profile in self.profiles_of(session, list(rows))}

    def profiles_of(self, session: Session, rows: Sequence[Any]) -> list[IncidentProfile]:
        """Profiles of incident rows (:data:`_PROFILE_COLUMNS`), their sets parsed once per version."""
        self._parse_missing(session, {r.id: r.correlation_version for r in rows})
        profiles = []
        for row in rows:
            profile = _bare_profile(row)
            parsed = self._parsed.get(row.id)
            if parsed is not None and parsed.version == row.correlation_version:
                _share_sets(parsed, profile)
            else:  # changed between the two reads (a concurrent writer): a decision on it must never stand
                profile.version = -1
            profiles.append(profile)
        return profiles

    def _candidates_statement(self, keys: int) -> Select[Any]:
        """The candidates query for ``keys`` index keys (bound as ``key0``... and ``since``), built once."""
        statement = self._statements.get(keys)
        if statement is None:
            lists = self._lists_statement(keys).subquery()
            statement = select(*_PROFILE_COLUMNS).where(
                Incident.id.in_(select(lists.c.incident_id)),
                Incident.merged_into.is_(None),
                Incident.status.in_(OPEN_STATUSES) | (Incident.resolved_at >= bindparam("since")),
            )
            self._statements[keys] = statement
        return statement

    def _lists_statement(self, keys: int) -> CompoundSelect[Any]:
        """The ``PER_KEY`` most recent incidents of each of ``keys`` index keys (bound as ``key0``...), as rows of
        the key's number, the incident and its time on the key, built once."""
        statement = self._recent_statements.get(keys)
        if statement is None:
            per_key = [
                select(literal_column(str(i)).label("number"), IncidentKey.incident_id, IncidentKey.last_at)
                .where(IncidentKey.key == bindparam(f"key{i}"))
                .order_by(IncidentKey.last_at.desc())
                .limit(PER_KEY)
                .subquery()
                for i in range(keys)
            ]
            statement = union_all(*(select(entries) for entries in per_key))
            self._recent_statements[keys] = statement
        return statement

    def _parse_missing(self, session: Session, versions: dict[int, int]) -> None:
        """Cache the parsed profiles of the incidents in ``versions`` not cached at that version."""
        missing = [i for i, version in versions.items() if (p := self._parsed.get(i)) is None or p.version != version]
        for i in versions:
            if i in self._parsed:
                self._parsed.move_to_end(i)
        if missing:
            read = session.execute(_PROFILE_SETS, {"ids": missing})
            for incident_id, version, data in read:
                self._parsed[incident_id] = _parsed_profile(incident_id, version, data)
        while len(self._parsed) > PARSED_PROFILES:
            self._parsed.popitem(last=False)

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
        session.execute(_INDEX_KEY, rows)


def _bounded_keys(facts: AlertFacts) -> dict[str, str]:
    """The alert's index keys as stored (bounded to the column), each with its own key, in order."""
    return {bounded_key(key, KEY_LENGTH): key for key in index_keys(facts)}


def _params(bounded: dict[str, str]) -> dict[str, Any]:
    """The keys bound as the per-key lists' statement expects them (``key0``...)."""
    return {f"key{i}": key for i, key in enumerate(bounded)}


def _parsed_profile(incident_id: int, version: int, data: dict[str, Any] | None) -> IncidentProfile:
    """The JSON part of a profile (its sets), parsed once per version."""
    epoch = datetime.min
    profile = IncidentProfile(id=incident_id, opened_at=epoch, last_at=epoch, version=version)
    profile.load_json(data or {})
    return profile


def _share_sets(parsed: IncidentProfile, profile: IncidentProfile) -> None:
    profile.fingerprints = parsed.fingerprints
    profile.alertnames = parsed.alertnames
    profile.clusters = parsed.clusters
    profile.group_keys = parsed.group_keys
    profile.entities = parsed.entities
    profile.texts = parsed.texts
    profile.services = parsed.services
    profile.nodes = parsed.nodes
