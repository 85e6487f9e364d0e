"""Stores a parsed change once: a retried delivery finds its row by ``dedup_key`` and changes nothing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Integer, TextualSelect, bindparam, select, text
from sqlalchemy.engine import Connection

from bot.changes.models import ChangeRecord
from bot.changes.parsed import IncomingChange

_COLUMNS = (
    "dedup_key", "source", "service", "kind", "version", "who", "at", "link", "description", "received_at",
)  # fmt: skip


def _insert() -> TextualSelect:
    columns = ", ".join(_COLUMNS)
    values = ", ".join(f":{column}" for column in _COLUMNS)
    statement = text(  # built from the constants above, never from input
        f"INSERT INTO change_events ({columns}) VALUES ({values}) "  # noqa: S608
        "ON CONFLICT (dedup_key) DO NOTHING RETURNING id"
    )
    types = ChangeRecord.__table__.c
    return statement.bindparams(*(bindparam(c, type_=types[c].type) for c in _COLUMNS)).columns(id=Integer)


INSERT_CHANGE = _insert()


@dataclass(frozen=True, slots=True)
class StoredChange:
    change_id: int
    duplicate: bool  # an earlier delivery had stored it


def record(connection: Connection, change: IncomingChange, now: datetime) -> StoredChange:
    """Insert ``change`` (dated ``now`` when it carries no time) inside the caller's transaction."""
    row = connection.execute(
        INSERT_CHANGE,
        {
            "dedup_key": change.dedup_key,
            "source": change.source,
            "service": change.service,
            "kind": change.kind,
            "version": change.version,
            "who": change.who,
            "at": change.at or now,
            "link": change.link,
            "description": change.description,
            "received_at": now,
        },
    ).first()
    if row is not None:
        return StoredChange(row.id, duplicate=False)
    existing = connection.execute(select(ChangeRecord.id).where(ChangeRecord.dedup_key == change.dedup_key))
    return StoredChange(existing.scalar_one(), duplicate=True)
