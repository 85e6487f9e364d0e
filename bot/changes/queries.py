"""Reading change events: for the root-cause ranking and for ``incibot changes list``."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.changes.models import ChangeRecord
from knowledge.rootcause.model import ChangeEvent


def changes_near(session: Session, services: Iterable[str], since: datetime, until: datetime) -> list[ChangeEvent]:
    """Changes of ``services`` (named as the topology and the alerts' ``service`` label name them) made
    between ``since`` and ``until`` inclusive, oldest first."""
    names = sorted({name for name in services if name})
    if not names:
        return []
    query = (
        select(ChangeRecord)
        .where(ChangeRecord.service.in_(names), ChangeRecord.at >= since, ChangeRecord.at <= until)
        .order_by(ChangeRecord.at, ChangeRecord.id)
    )
    return [record.event() for record in session.scalars(query)]


def recent_changes(
    session: Session, *, service: str | None = None, since: datetime | None = None, limit: int = 100
) -> list[ChangeRecord]:
    """The newest changes first, at most ``limit``, optionally of one service and from ``since`` on."""
    query = select(ChangeRecord).order_by(ChangeRecord.at.desc(), ChangeRecord.id.desc()).limit(limit)
    if service is not None:
        query = query.where(ChangeRecord.service == service)
    if since is not None:
        query = query.where(ChangeRecord.at >= since)
    return list(session.scalars(query))
