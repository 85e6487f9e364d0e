"""The component an alert is about (its subject), named as the topology names it.

Labels are read the way a prometheus-operator setup writes them. An explicit workload label
(``deployment``, ``statefulset``, a volume claim, ...) names the subject; a ``pod`` label names it unless the
pod is the scrape target itself (kube-state-metrics reporting on a node, say); a node label, or a node-level
agent's address, names a node; then the ``service``/``job`` label, or a probed URL's host. A per-node agent's
own alert (its pods run on every node, at the node's address) is about the node it runs on.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from knowledge.correlation.facts import instance_host
from knowledge.correlation.topology import Topology
from knowledge.rootcause.model import NODE, SERVICE
from knowledge.text import workload_name

WORKLOAD_LABELS = ("deployment", "statefulset", "daemonset", "cronjob", "job_name", "horizontalpodautoscaler")
VOLUME_LABELS = ("persistentvolumeclaim",)
NODE_LABELS = ("node", "nodename", "kubernetes_node", "hostname")
_PVC_PREFIX = re.compile(r"^(?:data|datadir|storage|pvc|volume|db-data)-")
AGENT_SHARE = 0.8  # a service with pods on this share of its cluster's nodes (at least 3) is a per-node agent


@dataclass(frozen=True, slots=True)
class Subject:
    """``component`` is ``cluster/name`` (lower case); ``node`` the node its named pod runs on, if known."""

    component: str
    kind: str  # "service" | "node"
    node: str | None = None

    @property
    def name(self) -> str:
        return self.component.split("/", 1)[1]


def subject_of(labels: Mapping[str, str], topology: Topology | None) -> Subject | None:
    """The component ``labels`` describe (``None`` when nothing names one)."""
    cluster = labels.get("cluster", "").lower()
    own = {labels.get("service", "").lower(), labels.get("job", "").lower()} - {""}
    for key in (*WORKLOAD_LABELS, *VOLUME_LABELS):
        value = labels.get(key, "")
        if key in VOLUME_LABELS:
            value = _PVC_PREFIX.sub("", value)
        if value.strip():
            return Subject(_service(cluster, workload_name(value).lower(), topology), SERVICE)
    pod = labels.get("pod", "").lower()
    node = next((labels[k].lower() for k in NODE_LABELS if labels.get(k)), "")
    host = instance_host(labels.get("instance", ""))
    if pod and workload_name(pod) not in own:
        service, pod_node = _pod(cluster, pod, topology, own)
        return Subject(service, SERVICE, pod_node or (f"{cluster}/{node}" if node else None))
    if node:
        return Subject(f"{cluster}/{node}", NODE)
    if pod:
        service, pod_node = _pod(cluster, pod, topology)
        at_node = topology.ips.get(f"{cluster}/{host}") if topology is not None else None
        if topology is not None and at_node in topology.node_names and _agent(service, cluster, topology):
            return Subject(at_node, NODE)
        return Subject(service, SERVICE, pod_node)
    if topology is not None and host:
        known = topology.ips.get(f"{cluster}/{host}") or topology.hosts.get(host)
        if known and known not in topology.node_names:
            return Subject(known, SERVICE)
    if "://" in labels.get("instance", "") and topology is not None:
        named = _by_host(cluster, host, topology)
        if named:
            return Subject(named, SERVICE)
    names = [labels[key].lower() for key in ("service", "job") if labels.get(key)]
    resolved = [_service(cluster, name, topology) for name in names]
    listed = [c for c in resolved if topology is not None and c in topology.services]
    return Subject((listed or resolved)[0], SERVICE) if resolved else None


def _pod(cluster: str, pod: str, topology: Topology | None, own: Collection[str] = ()) -> tuple[str, str | None]:
    known = topology.pods.get(f"{cluster}/{pod}") if topology is not None else None
    if known:
        return known
    name = workload_name(pod)
    static = [o for o in own if name.startswith(o + "-")]  # a static pod is named <its service>-<its node>
    return _service(cluster, static[0] if static else name, topology), None


def _service(cluster: str, name: str, topology: Topology | None) -> str:
    """``cluster/name`` as the topology knows it: the exact name, else the one name it ends or starts with."""
    local = f"{cluster}/{name}"
    if topology is None or local in topology.services:
        return local
    near = [
        s
        for s in topology.services
        if s.startswith(cluster + "/") and (s.endswith("-" + name) or s.split("/", 1)[1].startswith(name + "-"))
    ]
    return near[0] if len(near) == 1 else local


def _by_host(cluster: str, host: str, topology: Topology) -> str | None:
    """A probed host's service when the topology does not list the host: the one service its first word starts."""
    word = host.split(".", 1)[0]
    near = [s for s in topology.services if s.startswith(cluster + "/") and s.split("/", 1)[1].startswith(word)]
    return near[0] if word and len(near) == 1 else None


def _agent(service: str, cluster: str, topology: Topology) -> bool:
    nodes = sum(1 for n in topology.node_names if n.startswith(cluster + "/"))
    mine = len(topology.service_nodes.get(service, ()))
    return nodes >= 3 and mine >= AGENT_SHARE * nodes
