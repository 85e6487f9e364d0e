"""The closed list of incident categories: what an incident can be routed by.

Each category has a key (what routes, commands and the database use), a title for people and a description.
The descriptions are written for people and are also embedded, so that a fresh install can place alerts before
it has learned from any label.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Category:
    key: str
    title: str
    description: str


CATEGORIES: tuple[Category, ...] = (
    Category(
        "compute",
        "Compute / node",
        "Hosts, virtual machines and Kubernetes nodes: node down or not ready, CPU, memory, load, disk space and "
        "I/O on a host, hardware sensors, clock skew, kernel and systemd problems.",
    ),
    Category(
        "network",
        "Network",
        "Connectivity and name resolution: DNS failures, packet loss, interface errors, firewall and CNI problems, "
        "unreachable endpoints, blackbox probes failing, BGP and VPN links.",
    ),
    Category(
        "storage",
        "Storage",
        "Persistent volumes and storage systems: volumes filling up, Ceph or MinIO degraded, object storage errors, "
        "slow or failing disks behind a storage cluster, backups.",
    ),
    Category(
        "database",
        "Database",
        "Databases and caches: PostgreSQL, MySQL, MongoDB, Elasticsearch, Cassandra, Redis, Memcached; down, "
        "replication lag, connections exhausted, slow queries, locks, cache evictions.",
    ),
    Category(
        "messaging",
        "Messaging",
        "Message brokers and queues: Kafka, RabbitMQ, NATS, Pulsar; consumer lag, queue backlog, no consumers, "
        "partitions offline, brokers down.",
    ),
    Category(
        "application",
        "Application errors / latency",
        "Services that answer requests: HTTP 5xx error rates, high latency, failing health checks, exceptions, "
        "runtime problems (JVM, Go, Python memory, threads, garbage collection), proxies and service meshes.",
    ),
    Category(
        "kubernetes",
        "Kubernetes workload",
        "Workloads on Kubernetes: pods crash-looping or not ready, deployments and stateful sets with missing "
        "replicas, rollouts stuck, jobs failing, autoscalers at their limit, the control plane and API server.",
    ),
    Category(
        "observability",
        "Observability pipeline",
        "The monitoring stack itself: Prometheus, Alertmanager, Grafana, Loki, Thanos, Mimir, Tempo, exporters and "
        "scrape targets missing, rule evaluation failures, remote write falling behind.",
    ),
    Category(
        "security",
        "Certificates / security",
        "Certificates about to expire or invalid, TLS errors, secrets and vaults sealed, authentication failures, "
        "intrusion and audit alerts.",
    ),
    Category(
        "cicd",
        "CI/CD",
        "Build and delivery systems: CI pipelines and runners failing, Argo CD or Flux out of sync, deployments "
        "that failed to roll out from the pipeline, artefact registries.",
    ),
)

CATEGORY_KEYS: tuple[str, ...] = tuple(category.key for category in CATEGORIES)
UNCLASSIFIED = "unclassified"  # what an incident says when the classifier abstains and nobody picked


def category(key: str) -> Category:
    """The category with ``key``; ``KeyError`` names the valid keys."""
    for candidate in CATEGORIES:
        if candidate.key == key:
            return candidate
    raise KeyError(f"unknown category {key!r}: one of {', '.join(CATEGORY_KEYS)}")
