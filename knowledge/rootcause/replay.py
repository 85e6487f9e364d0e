"""Root causes of incidents replayed from a stream: the ranking each incident shows after each of its alerts.

``eval dedup`` feeds it every new alert occurrence with the incident the correlator put it in; without a
topology, each alert also teaches the learned graph first (as the worker's would learn, with no look-ahead).
"""

from __future__ import annotations

from datetime import datetime

from knowledge.alerts import NormalizedAlert
from knowledge.correlation.graph import DependencyGraph
from knowledge.rootcause.model import IncidentAlert
from knowledge.rootcause.ranker import RootCauseRanker

ROOT_CANDIDATES = 3  # names written per prediction line


class IncidentCauses:
    """Per incident: its alerts (first occurrence of each fingerprint) and its latest ranking, as names."""

    def __init__(self, ranker: RootCauseRanker, graph: DependencyGraph | None = None) -> None:
        self.ranker = ranker
        self.graph = graph
        self._alerts: dict[int, dict[str, IncidentAlert]] = {}
        self._ranking: dict[int, list[str]] = {}

    def joined(self, incident: int, alert: NormalizedAlert, at: datetime) -> list[str]:
        """A new occurrence of ``alert`` joined ``incident`` at ``at``: rank again; the names, best first."""
        if self.graph is not None:
            self.graph.observe(alert.labels, at)
        alerts = self._alerts.setdefault(incident, {})
        if alert.fingerprint not in alerts:
            alerts[alert.fingerprint] = IncidentAlert(alert.fingerprint, alert.labels, at, alert.annotations)
        ranking = [c.name for c in self.ranker.rank(list(alerts.values()), now=at)]
        self._ranking[incident] = ranking
        return ranking

    def current(self, incident: int) -> list[str]:
        """The ranking ``incident`` shows now (after its latest new alert)."""
        return self._ranking.get(incident, [])
