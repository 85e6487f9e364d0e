"""What correlation reads from an alert: where it is (cluster, entities) and what it says (canonical text).

Entities are typed names of the things an alert is about, taken from its labels the way a
prometheus-operator setup writes them: the workload a pod belongs to (``checkout-api-7d9f8-x2x4k`` →
``checkout-api``), nodes, instance hosts (an ``IP:port`` without the port, a probed URL's host), services and
namespaces. An exporter that reports on something else (kube-state-metrics on a deployment, the kubelet on a
pod) is kept apart as the alert's reporter: its pod, address and job are in every alert it reports, so sharing them
says far less than sharing the component in trouble. They are compared as relations only (shared or not, how many
incidents share them); no name or value is ever a feature.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from knowledge.alerts import NormalizedAlert
from knowledge.text import alert_text, workload_name

# Entity kinds, most specific first.
NODE = "node"
POD = "pod"
WORKLOAD = "workload"
HOST = "host"
SERVICE = "service"
NAMESPACE = "namespace"
REPORTER = "reporter"  # the exporter that reported on something else: its pod, address and job
KINDS: tuple[str, ...] = (NODE, POD, WORKLOAD, HOST, SERVICE, NAMESPACE, REPORTER)

_WORKLOAD_LABELS = (
    "deployment",
    "statefulset",
    "daemonset",
    "cronjob",
    "replicaset",
    "job_name",
    "horizontalpodautoscaler",
)
_VOLUME_LABELS = ("persistentvolumeclaim",)
# Labels that name the service a symptom is about (a mesh's destination, a proxy's backend, ...).
_SERVICE_LABELS = (
    "service",
    "job",
    "destination_canonical_service",
    "destination_service",
    "destination_workload",
    "exported_service",
    "proxy",
    "backend",
    "upstream",
    "envoy_cluster_name",
    "app",
    "component",
)
_NODE_LABELS = ("node", "nodename", "kubernetes_node", "hostname")
_PVC_PREFIX = re.compile(r"^(?:data|datadir|storage|pvc|volume|db-data)-")


@dataclass(frozen=True, slots=True)
class AlertFacts:
    """One alert occurrence as the correlator sees it."""

    fingerprint: str
    alertname: str
    cluster: str
    group_key: str
    entities: frozenset[tuple[str, str]]
    text: str  # the canonical text (knowledge.text.alert_text), embedded for similarity


def alert_facts(alert: NormalizedAlert, group_key: str = "") -> AlertFacts:
    """The facts of ``alert``; ``group_key`` is its source's grouping (one feature among others)."""
    labels = alert.labels
    entities: set[tuple[str, str]] = set()
    for key in _NODE_LABELS:
        _add(entities, NODE, labels.get(key))
    pod = labels.get("pod") or labels.get("pod_name")
    reporter = _reporter(labels, pod)
    if pod and reporter != workload_name(pod).strip().lower():
        _add(entities, POD, pod)
        _add(entities, WORKLOAD, workload_name(pod))
    elif pod:
        _add(entities, REPORTER, pod)
    for key in _WORKLOAD_LABELS:
        _add(entities, WORKLOAD, workload_name(labels.get(key, "")))
    for key in _VOLUME_LABELS:
        _add(entities, WORKLOAD, workload_name(_PVC_PREFIX.sub("", labels.get(key, ""))))
    for key in _SERVICE_LABELS:
        value = labels.get(key, "")
        _add(entities, REPORTER if reporter and value.strip().lower() == reporter else SERVICE, value)
    _add(entities, REPORTER if reporter else HOST, instance_host(labels.get("instance", "")))
    _add(entities, NAMESPACE, labels.get("namespace"))
    return AlertFacts(
        fingerprint=alert.fingerprint,
        alertname=alert.alertname,
        cluster=labels.get("cluster", ""),
        group_key=group_key,
        entities=frozenset(entities),
        text=alert_text(alert),
    )


def _reporter(labels: Mapping[str, str], pod: str | None) -> str:
    """The job of an exporter that reported on something else (lower case), or "". Either its own pod is the
    alert's pod while a workload or node label names what the alert is about, or the alert's pod is another
    workload's (kube-state-metrics reporting on a deployment or a pod, say): the exporter's pod, address and job
    are then shared by every alert it reports and say nothing about which component is in trouble."""
    job = labels.get("job", "").strip().lower()
    if not pod or not job:
        return ""
    own = workload_name(pod).strip().lower()
    if own != job:
        return "" if own in job or job in own else job  # "checkout-api-metrics" is checkout-api's own job
    named = [workload_name(labels.get(key, "")).strip().lower() for key in (*_WORKLOAD_LABELS, *_VOLUME_LABELS)]
    named += [labels.get(key, "").strip().lower() for key in _NODE_LABELS]
    return job if any(name and name != own for name in named) else ""


def instance_host(instance: str) -> str:
    """``10.1.2.3:9100`` → ``10.1.2.3``; ``https://shop.example.com/health`` → ``shop.example.com``."""
    instance = instance.strip()
    if "://" in instance:
        return (urlsplit(instance).hostname or "").lower()
    if instance.startswith("["):  # [ipv6]:port
        return instance[1:].split("]", 1)[0]
    host, _, port = instance.rpartition(":")
    return host if host and port.isdigit() else instance


def _add(entities: set[tuple[str, str]], kind: str, value: str | None) -> None:
    value = (value or "").strip()
    if value:
        entities.add((kind, value.lower()))
