"""The learned dependency graph of the running service, for when no topology file is configured.

It is :class:`knowledge.correlation.graph.DependencyGraph`, fed every new alert occurrence in arrival order from
the alerts table: at the first look the most recent :data:`WARM_START` of them, then each look the ones stored
since. Nothing is saved: the alerts table is its source, and it is rebuilt from it at start-up.
"""

from __future__ import annotations

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from bot.ingest.models import Alert
from knowledge.correlation.graph import DependencyGraph

WARM_START = 20_000  # alerts learned from at start-up (the newest)
STEP = 5_000  # alerts learned from per look at most
_ALERTS_AFTER = (  # read before every processing transaction: built once
    select(Alert.id, Alert.labels, Alert.received_at)
    .where(Alert.id > bindparam("after"))
    .order_by(Alert.id)
    .limit(bindparam("limit"))
)


class LearnedGraph:
    def __init__(self) -> None:
        self.graph = DependencyGraph()
        self._last: int | None = None  # the newest alert id learned from

    def catch_up(self, session: Session) -> int:
        """Learn from the alerts stored since the last look; returns how many."""
        limit = STEP
        if self._last is None:
            newest = session.scalar(select(func.max(Alert.id))) or 0
            self._last, limit = max(newest - WARM_START, 0), WARM_START
        rows = session.execute(_ALERTS_AFTER, {"after": self._last, "limit": limit}).all()
        for alert_id, labels, received_at in rows:
            self.graph.observe(labels or {}, received_at)
            self._last = alert_id
        return len(rows)
