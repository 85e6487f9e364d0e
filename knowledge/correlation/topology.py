"""Optional side information: which services depend on which, and which pods run on which nodes.

Reads the schema documented in ``docs/topology.md`` (JSON, or the same structure in YAML)::

    {"clusters": [{"name", "nodes": [{"name", "ip", "role", "pods": [..]}],
                   "services": [{"name", "namespace", "type", "depends_on": [..], "public_host",
                                 "pods": [{"name", "ip", "node"}]}]}]}

An alert's entities resolve to components (services and nodes of one cluster); two sets of components are
related by their distance in the dependency graph and by "runs on" (a pod of one on a node of the other).
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from knowledge.correlation.facts import HOST, NODE, POD, SERVICE, WORKLOAD, AlertFacts

FAR = 6  # the distance of unrelated components (and of components the topology does not know)


class TopologyError(ValueError):
    """The topology file cannot be read; the message names the file and the offending part."""


@dataclass(frozen=True, slots=True)
class Components:
    """What an alert is about, in the topology: services (``cluster/name``) and nodes (``cluster/name``)."""

    services: frozenset[str] = frozenset()
    nodes: frozenset[str] = frozenset()


@dataclass(slots=True)
class Topology:
    services: dict[str, set[str]] = field(default_factory=dict)  # service → services it depends on
    service_nodes: dict[str, set[str]] = field(default_factory=dict)  # service → nodes its pods run on
    pods: dict[str, tuple[str, str]] = field(default_factory=dict)  # cluster/pod → (service, node)
    ips: dict[str, str] = field(default_factory=dict)  # cluster/ip → service or node component
    hosts: dict[str, str] = field(default_factory=dict)  # public host → service
    names: dict[str, set[str]] = field(default_factory=dict)  # bare service name → services in every cluster
    node_names: dict[str, str] = field(default_factory=dict)  # cluster/node name → node
    _distances: dict[str, dict[str, int]] = field(default_factory=dict)  # hops either way along dependencies
    _dependency_hops: dict[str, dict[str, int]] = field(default_factory=dict)  # hops along depends_on only

    @classmethod
    def load(cls, path: str | Path) -> Topology:
        """Read a topology file (``.json``, or ``.yaml``/``.yml``)."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise TopologyError(f"cannot read topology file {path}: {exc.strerror or exc}") from exc
        try:
            if path.suffix.lower() in (".yaml", ".yml"):
                import yaml

                document = yaml.safe_load(text)
            else:
                document = json.loads(text)
        except ValueError as exc:
            raise TopologyError(
                f"topology file {path} is not valid {path.suffix.lstrip('.') or 'JSON'}: {exc}"
            ) from exc
        return cls.from_document(document, str(path))

    @classmethod
    def from_document(cls, document: Any, origin: str = "topology") -> Topology:
        if not isinstance(document, Mapping) or not isinstance(document.get("clusters"), list):
            raise TopologyError(f"{origin}: expected an object with a list 'clusters'")
        topology = cls()
        dependencies: list[tuple[str, str, list[Any]]] = []
        for c, cluster in enumerate(document["clusters"]):
            where = f"{origin}: clusters[{c}]"
            if not isinstance(cluster, Mapping) or not isinstance(cluster.get("name"), str):
                raise TopologyError(f"{where}: expected an object with a string 'name'")
            name = cluster["name"]
            for n, node in enumerate(_list(cluster, "nodes", where)):
                node_name = _str(node, "name", f"{where}.nodes[{n}]")
                component = f"{name}/{node_name}".lower()
                topology.node_names[component] = component
                if isinstance(node.get("ip"), str):
                    topology.ips[f"{name}/{node['ip']}".lower()] = component
            for s, service in enumerate(_list(cluster, "services", where)):
                here = f"{where}.services[{s}]"
                service_name = _str(service, "name", here)
                component = f"{name}/{service_name}".lower()
                topology.services.setdefault(component, set())
                topology.service_nodes.setdefault(component, set())
                topology.names.setdefault(service_name.lower(), set()).add(component)
                if isinstance(service.get("public_host"), str):
                    topology.hosts[service["public_host"].lower()] = component
                dependencies.append((name, component, _list(service, "depends_on", here)))
                for p, pod in enumerate(_list(service, "pods", here)):
                    pod_name = _str(pod, "name", f"{here}.pods[{p}]")
                    node = f"{name}/{pod.get('node', '')}".lower()
                    topology.pods[f"{name}/{pod_name}".lower()] = (component, node)
                    topology.service_nodes[component].add(node)
                    if isinstance(pod.get("ip"), str):
                        topology.ips.setdefault(f"{name}/{pod['ip']}".lower(), component)
        for cluster_name, component, depends_on in dependencies:
            for dependency in depends_on:
                if not isinstance(dependency, str):
                    raise TopologyError(f"{origin}: {component}: depends_on holds a non-string {dependency!r}")
                local = f"{cluster_name}/{dependency}".lower()
                targets = {local} if local in topology.services else topology.names.get(dependency.lower(), set())
                topology.services[component].update(targets)
        topology.index()
        return topology

    def index(self) -> None:
        """Compute the hop tables once ``services`` holds every dependency."""
        self._distances = _hops(_undirected(self.services))
        self._dependency_hops = _hops(self.services)

    def components(self, facts: AlertFacts) -> Components:
        """The services and nodes ``facts`` is about (empty when the topology knows none of them)."""
        cluster = facts.cluster.lower()
        services: set[str] = set()
        nodes: set[str] = set()
        by_kind: dict[str, list[str]] = {}
        for kind, value in facts.entities:
            by_kind.setdefault(kind, []).append(value)
        for pod in by_kind.get(POD, ()):
            known = self.pods.get(f"{cluster}/{pod}")
            if known:
                services.add(known[0])
                nodes.add(known[1])
        for node in by_kind.get(NODE, ()):
            component = self.node_names.get(f"{cluster}/{node}") or self.ips.get(f"{cluster}/{node}")
            if component:
                nodes.add(component)
        for host in by_kind.get(HOST, ()):
            component = self.ips.get(f"{cluster}/{host}") or self.hosts.get(host)
            if component in self.node_names:
                nodes.add(component)
            elif component:
                services.add(component)
        named = [*by_kind.get(WORKLOAD, ()), *([] if services else by_kind.get(SERVICE, ()))]
        for name in named:
            local = f"{cluster}/{name}"
            if local in self.services:
                services.add(local)
        return Components(frozenset(services), frozenset(nodes))

    def distance(self, a: Iterable[str], b: Iterable[str]) -> int:
        """Fewest dependency hops between any service of ``a`` and any of ``b`` (``FAR`` if none)."""
        return _fewest(self._distances, a, b)

    def dependency_hops(self, a: Iterable[str], b: Iterable[str]) -> int:
        """Fewest hops from a service of ``a`` along "depends on" to one of ``b`` (``FAR`` if none): ``a``'s
        alerts may be symptoms of a fault in ``b``."""
        return _fewest(self._dependency_hops, a, b)

    def runs_on(self, a: Components, b: Components) -> bool:
        """Whether a service of one runs on a node of the other, or both are on one node."""
        if a.nodes & b.nodes:
            return True
        return any(self.service_nodes.get(s, set()) & b.nodes for s in a.services) or any(
            self.service_nodes.get(s, set()) & a.nodes for s in b.services
        )


def _fewest(hops: Mapping[str, Mapping[str, int]], a: Iterable[str], b: Iterable[str]) -> int:
    targets = set(b)
    best = FAR
    for service in a:
        reach = hops.get(service, {})
        for target in targets:
            best = min(best, reach.get(target, FAR))
    return best


def _undirected(graph: Mapping[str, set[str]]) -> dict[str, set[str]]:
    undirected: dict[str, set[str]] = {node: set() for node in graph}
    for node, targets in graph.items():
        for target in targets:
            undirected[node].add(target)
            undirected.setdefault(target, set()).add(node)
    return undirected


def _hops(graph: Mapping[str, set[str]]) -> dict[str, dict[str, int]]:
    distances: dict[str, dict[str, int]] = {}
    for start in graph:
        reach = {start: 0}
        queue = deque([start])
        while queue:
            node = queue.popleft()
            if reach[node] >= FAR - 1:
                continue
            for neighbour in graph.get(node, ()):
                if neighbour not in reach:
                    reach[neighbour] = reach[node] + 1
                    queue.append(neighbour)
        distances[start] = reach
    return distances


def _list(mapping: Mapping[str, Any], key: str, where: str) -> list[Any]:
    value = mapping.get(key) or []
    if not isinstance(value, list):
        raise TopologyError(f"{where}: '{key}' must be a list")
    return value


def _str(mapping: Any, key: str, where: str) -> str:
    value = mapping.get(key) if isinstance(mapping, Mapping) else None
    if not isinstance(value, str) or not value:
        raise TopologyError(f"{where}: expected an object with a string '{key}'")
    return value
