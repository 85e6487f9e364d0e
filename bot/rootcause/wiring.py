"""Builds the live root-cause ranking from settings: the topology file when one is set, else the learned graph."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from bot.knowledge.service import KnowledgeService
from bot.rootcause.learning import LearnedGraph
from bot.rootcause.live import LiveRootCause
from bot.settings import Settings
from knowledge.correlation.topology import Topology
from knowledge.rootcause.ranker import RootCauseRanker


def build_rootcause(
    settings: Settings, clock: Callable[[], datetime], knowledge: KnowledgeService | None = None
) -> LiveRootCause:
    """``knowledge``: the runtime's search (the history source); None where search is off, or in the CLI."""
    topology = Topology.load(settings.topology_file) if settings.topology_file else None
    learned = LearnedGraph() if topology is None else None
    ranker = RootCauseRanker(topology, learned.graph if learned is not None else None)
    return LiveRootCause(ranker, clock, topology=topology, learned=learned, knowledge=knowledge)
