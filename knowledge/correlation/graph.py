"""The dependency/co-occurrence graph learned from alerts, for when no topology file is given.

It learns what a topology file would say, from the labels and timing of the alerts it observes:

* which node a pod runs on, and which address is a node's (alerts that carry both ``pod``/``instance`` and
  ``node`` for a node-level scrape target, like the kubelet's);
* which service a proxy or mesh alert names as its backend (``proxy``, ``envoy_cluster_name``, ... → the
  ingress depends on that backend);
* which service's alerts habitually start shortly before another's (``a`` precedes ``b`` in
  :data:`MIN_SUPPORT` separate bursts, and far more often than the reverse → ``b`` depends on ``a``).

:meth:`DependencyGraph.topology` turns it into a :class:`~knowledge.correlation.topology.Topology` (services
named by their ``service`` label or workload, nodes by their name, both ``cluster/name``), so the correlator and
the root-cause ranking read it exactly as they read a topology file. It is saved as JSON.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from knowledge.correlation.facts import instance_host
from knowledge.correlation.topology import Topology, TopologyError
from knowledge.rootcause.model import SERVICE
from knowledge.rootcause.subjects import subject_of
from knowledge.text import workload_name

FORMAT = 1
PRECEDES_WINDOW = timedelta(minutes=10)  # a service that began alerting this long before another may be its cause
MIN_SUPPORT = 3  # separate bursts in which one service preceded the other before it counts as a dependency
DOMINANCE = 3.0  # ... and how many times more often than the reverse
NODE_LABELS = ("node", "nodename", "kubernetes_node", "hostname")
BACKEND_LABELS = (
    "proxy",
    "backend",
    "upstream",
    "envoy_cluster_name",
    "exported_service",
    "destination_service",
    "destination_workload",
    "destination_canonical_service",
)
_QUIET = timedelta(minutes=30)  # a service silent this long starts a new burst when it alerts again


class DependencyGraph:
    """Learned topology: ``observe`` each new alert occurrence in time order; ``topology`` reads it."""

    def __init__(self) -> None:
        self.node_ips: dict[str, str] = {}  # cluster/ip → cluster/node
        self.pod_nodes: dict[str, str] = {}  # cluster/pod → cluster/node
        self.backends: defaultdict[str, set[str]] = defaultdict(set)  # cluster/service → backends it names
        self.services: set[str] = set()  # cluster/service
        self.agent_nodes: defaultdict[str, set[str]] = defaultdict(set)  # per-node agent → nodes at its addresses
        self.precedes: Counter[tuple[str, str]] = Counter()  # (cause, symptom) bursts
        self._last_alert: dict[str, datetime] = {}  # cluster/service → last alert occurrence
        self._burst_start: dict[str, datetime] = {}
        self._snapshot: Topology | None = None

    def observe(self, labels: Mapping[str, str], at: datetime) -> None:
        """Learn from one new alert occurrence (not from re-sends of one already seen)."""
        cluster = labels.get("cluster", "").lower()
        service = service_of(labels)
        node = next((labels[k] for k in NODE_LABELS if labels.get(k)), "")
        pod = labels.get("pod", "")
        scrape_target = bool(pod) and workload_name(pod).lower() in _own_names(labels)
        if node and not scrape_target:
            node_component = f"{cluster}/{node}".lower()
            host = instance_host(labels.get("instance", ""))
            if host[:1].isdigit():
                self.node_ips[f"{cluster}/{host}"] = node_component
            if pod:
                self.pod_nodes[f"{cluster}/{pod}".lower()] = node_component
        host = instance_host(labels.get("instance", ""))
        if scrape_target and not node and f"{cluster}/{host}" in self.node_ips:
            self.agent_nodes[f"{cluster}/{service}"].add(self.node_ips[f"{cluster}/{host}"])
        if service:
            for key in BACKEND_LABELS:
                if labels.get(key):
                    self.backends[f"{cluster}/{service}"].add(labels[key].lower())
        subject = subject_of(labels, None)
        if subject is not None and subject.kind == SERVICE:
            self.services.add(subject.component)
            self._learn_order(subject.component, at)
        self._snapshot = None

    def _learn_order(self, component: str, at: datetime) -> None:
        last = self._last_alert.get(component)
        self._last_alert[component] = at
        if last is not None and at - last < _QUIET:
            return  # still the same burst of this service
        self._burst_start[component] = at
        cluster = component.split("/", 1)[0]
        for other, started in self._burst_start.items():
            near = timedelta(0) < at - started <= PRECEDES_WINDOW
            if near and other != component and other.startswith(cluster + "/"):
                self.precedes[(other, component)] += 1

    def dependencies(self) -> dict[str, set[str]]:
        """Learned edges: service → services it depends on."""
        edges: defaultdict[str, set[str]] = defaultdict(set)
        for (cause, symptom), count in self.precedes.items():
            if count >= MIN_SUPPORT and count >= DOMINANCE * self.precedes.get((symptom, cause), 0):
                edges[symptom].add(cause)
        for component, named in self.backends.items():
            cluster = component.split("/", 1)[0]
            for other in self.services:
                name = other.split("/", 1)[1]
                if other != component and other.startswith(cluster + "/") and any(name in value for value in named):
                    edges[component].add(other)
        return dict(edges)

    def topology(self) -> Topology:
        """The graph as a topology (rebuilt only after new observations)."""
        if self._snapshot is None:
            self._snapshot = self._build()
        return self._snapshot

    def _build(self) -> Topology:
        topology = Topology()
        for component in self.services:
            topology.services[component] = set()
            topology.service_nodes[component] = set()
            topology.names.setdefault(component.split("/", 1)[1], set()).add(component)
        for component, targets in self.dependencies().items():
            topology.services.setdefault(component, set()).update(targets)
        for pod, node in self.pod_nodes.items():
            cluster, name = pod.split("/", 1)
            service = f"{cluster}/{workload_name(name)}"
            topology.pods[pod] = (service, node)
            topology.node_names[node] = node
            if service in topology.service_nodes:
                topology.service_nodes[service].add(node)
        for service, nodes in self.agent_nodes.items():
            topology.service_nodes.setdefault(service, set()).update(nodes)
        for ip, node in self.node_ips.items():
            topology.ips[ip] = node
            topology.node_names[node] = node
        topology.index()
        return topology

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "node_ips": self.node_ips,
            "pod_nodes": self.pod_nodes,
            "backends": {k: sorted(v) for k, v in sorted(self.backends.items())},
            "services": sorted(self.services),
            "agent_nodes": {k: sorted(v) for k, v in sorted(self.agent_nodes.items())},
            "precedes": [[a, b, n] for (a, b), n in sorted(self.precedes.items())],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DependencyGraph:
        if data.get("format") != FORMAT:
            raise TopologyError(f"learned graph: unknown format {data.get('format')!r} (expected {FORMAT})")
        graph = cls()
        graph.node_ips = dict(data.get("node_ips", {}))
        graph.pod_nodes = dict(data.get("pod_nodes", {}))
        graph.backends = defaultdict(set, {k: set(v) for k, v in data.get("backends", {}).items()})
        graph.services = set(data.get("services", ()))
        graph.agent_nodes = defaultdict(set, {k: set(v) for k, v in data.get("agent_nodes", {}).items()})
        graph.precedes = Counter({(a, b): int(n) for a, b, n in data.get("precedes", ())})
        return graph

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=1), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> DependencyGraph:
        try:
            return cls.from_json(json.loads(Path(path).read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            raise TopologyError(f"cannot read learned graph {path}: {exc}") from exc


def service_of(labels: Mapping[str, str]) -> str:
    """The service an alert's labels name (the ``service`` label, else ``job``), lower case."""
    return (labels.get("service") or labels.get("job") or "").strip().lower()


def _own_names(labels: Mapping[str, str]) -> set[str]:
    return {labels.get("service", "").lower(), labels.get("job", "").lower()} - {""}
