"""A database lease: at most one process runs a singleton job at a time, on SQLite and PostgreSQL.

The holder renews by acquiring again; a crashed holder's lease simply expires.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import or_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from bot.scheduling.models import Lease


def acquire(session: Session, name: str, holder: str, now: datetime, ttl: timedelta) -> bool:
    """Take or renew lease ``name`` for ``holder`` until ``now + ttl``; False if someone else holds it."""
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    session.execute(insert(Lease).values(name=name, holder=holder, expires_at=now + ttl).on_conflict_do_nothing())
    taken = session.execute(
        update(Lease)
        .where(Lease.name == name, or_(Lease.holder == holder, Lease.expires_at <= now))
        .values(holder=holder, expires_at=now + ttl)
    )
    return bool(taken.rowcount)  # type: ignore[attr-defined]
