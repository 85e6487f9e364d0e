"""People classify incidents: a pick from the post's menu, ``/incident classify`` or ``incibot incidents
classify``. The pick becomes the incident's category (the model never replaces it) and a labelled example with
who and when (:class:`~bot.incidents.models.CategoryLabel`, one per incident: a later pick replaces it)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.classification.live import PERSON
from bot.classification.texts import incident_texts
from bot.incidents.errors import IncidentError, IncidentNotFound
from bot.incidents.models import CategoryLabel, Incident
from bot.incidents.service import IncidentService, Outcome
from knowledge.classify.categories import CATEGORY_KEYS, UNCLASSIFIED, category

CATEGORY_SET = "category_set"  # the timeline entry of a person's pick (Slack says where it would now go)


class UnknownCategory(IncidentError):
    def __init__(self, key: str) -> None:
        super().__init__(f"There is no category {key!r}; the categories are {', '.join(CATEGORY_KEYS)}.")


def pick(
    service: IncidentService, session: Session, incident_id: int, key: str, actor: str, actor_name: str | None = None
) -> Outcome:
    """Make ``key`` the category of ``incident_id`` on a person's word, and store it as a labelled example."""
    if key not in CATEGORY_KEYS:
        raise UnknownCategory(key)
    incident = session.get(Incident, incident_id, with_for_update=True)
    if incident is None:
        raise IncidentNotFound(incident_id)
    title, name = category(key).title, actor_name or actor
    if incident.category == key and incident.category_source == PERSON:
        return Outcome(False, f"Incident {incident_id} is already classified as {title}.")
    previous = incident.category
    label = session.scalar(select(CategoryLabel).where(CategoryLabel.incident_id == incident_id)) or CategoryLabel(
        incident_id=incident_id
    )
    label.at, label.actor, label.category, label.previous = service.now(), actor[:200], key, previous
    label.model_confidence = incident.category_confidence if incident.category_source != PERSON else None
    label.texts = incident_texts(session, incident_id)
    session.add(label)
    incident.category, incident.category_source = key, PERSON
    incident.category_confidence = incident.category_model = None
    was = category(previous).title if previous else UNCLASSIFIED
    service.note(session, incident, actor, CATEGORY_SET, f"{name} set the category to {title} (was {was}).")
    return Outcome(True, f"Incident {incident_id} is now classified as {title}.")
