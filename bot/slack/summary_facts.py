"""Reads what an incident post's investigation summary shows (the builders in ``summary_blocks`` do the rest)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.incidents.models import Incident, IncidentAlert
from bot.ingest.models import Alert
from bot.knowledge.suggestions import Suggestions
from bot.rootcause.ranking import stored_ranking
from bot.slack.alert_groups import AlertLine
from bot.slack.summary_blocks import Situation, Summary
from knowledge.rootcause.subjects import subject_of

JOINED_WINDOW = timedelta(minutes=10)  # "joined lately": after the incident opened, this long before its last alert
JOINED_READ = 20


def load_summary(
    session: Session, incident: Incident, lines: Sequence[AlertLine], suggestions: Suggestions | None
) -> Summary | None:
    """The summary of an incident with alerts (``lines``: its first alerts, as the post lists them); None for one
    declared by hand without any."""
    if incident.alert_count == 0:
        return None
    components: Counter[str] = Counter()
    for line in lines:
        components[_component(line.labels)] += 1
    components.pop("", None)
    names = Counter(line.name for line in lines)
    joined, joined_at = _joined_lately(session, incident)
    situation = Situation(
        components=tuple(components.most_common()),
        alerts=tuple(names.most_common()),
        alert_count=incident.alert_count,
        since=incident.opened_at,
        joined=joined,
        joined_at=joined_at,
    )
    return Summary(
        incident_id=incident.id,
        situation=situation,
        ranking=stored_ranking(session, incident.id),
        runbooks=suggestions.runbooks if suggestions is not None else (),
        votable=incident.is_open and incident.merged_into is None,
    )


def _joined_lately(session: Session, incident: Incident) -> tuple[tuple[str, ...], datetime | None]:
    since = max(incident.opened_at, incident.last_alert_at - JOINED_WINDOW)
    rows = session.execute(
        select(Alert.alertname, Alert.fingerprint, Alert.labels, IncidentAlert.linked_at)
        .join(IncidentAlert, IncidentAlert.alert_id == Alert.id)
        .where(IncidentAlert.incident_id == incident.id, IncidentAlert.linked_at > since)
        .order_by(IncidentAlert.linked_at.desc(), Alert.id.desc())
        .limit(JOINED_READ)
    ).all()
    if not rows:
        return (), None
    described: dict[str, None] = {}
    for alertname, fingerprint, labels, _ in rows:
        component = _component(labels or {})
        where = f" on {component}" if component else ""
        described[f"{alertname or fingerprint}{where}"] = None
    return tuple(described), rows[0][3]


def _component(labels: Mapping[str, str]) -> str:
    """What an alert is about, as people name it: its ``service`` label, else its subject (a node, a workload)."""
    subject = subject_of(labels, None)
    return labels.get("service") or (subject.name if subject is not None else "")
