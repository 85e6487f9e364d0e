"""Synthetic, labelled Alertmanager alert streams for developing and testing the alert correlator.

A seeded *world* — clusters, nodes, services with a dependency DAG, pods, label conventions and a per-world
variant of the rule catalogue in ``generator_catalogue.yaml`` — is driven by *scenarios*: injected faults that
cascade along dependencies and runs-on edges, lone noise alerts and chatty flapping alerts. The result is the
"storm" line format (``{"at", "alert", "truth"}`` sorted by ``at``, ``alert`` an Alertmanager v4 alert object)
plus a topology document::

    stream = generate(7, hours=24)                          # a random day
    world = build_world(7, pods_per_node=350)               # or hand-built hard cases
    node = world.busiest_node(world.cluster_names[0])
    storm = world.stream([Scenario("node_failure", start_min=10, duration_min=30, root=node, spread=1.0)])
    storm.write("out/")                                      # storm.jsonl.gz + topology.json

It is one module because world building, fault cascades and delivery scheduling share one seeded random state
and the world's tables; it is long (world/labels, faults, schedule) and those three are the natural split when it
next grows.
"""

from __future__ import annotations

import argparse
import functools
import gzip
import json
import math
import random
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml

from knowledge.fingerprint import labels_fingerprint

FAULT_KINDS: tuple[str, ...] = (
    "db_down",
    "cache_down",
    "queue_down",
    "db_saturation",
    "cache_memory",
    "db_replication",
    "db_disk_full",
    "consumer_stuck",
    "node_failure",
    "node_pressure",
    "bad_deploy",
    "memory_leak",
    "ingress_failure",
    "cert_expiry",
    "storage_degraded",
    "dns_failure",
    "control_plane",
    "global_rollout",
)
"""Scenario kinds that inject a fault (truth ``kind: cascade``)."""
LONE_KINDS: tuple[str, ...] = ("noise", "flap")
"""Scenario kinds of a single alert: a lone noise alert, or a chatty alert flapping over the whole window."""

_CATALOGUE_PATH = Path(__file__).with_name("generator_catalogue.yaml")
_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_ZERO_TIME = "0001-01-01T00:00:00Z"
_POD_SCHEMES = frozenset({"app", "exporter", "ksm_pod", "kubelet", "kubelet_volume", "ingress_backend"})
_STORE_TYPES = ("database", "cache", "queue", "storage")


# ---------------------------------------------------------------------------------------------- public types


@dataclass(frozen=True)
class Scenario:
    """One injected fault or lone alert. Times are minutes after the stream start.

    ``cluster``/``root``/``rule`` left ``None`` are drawn (the stream's ``scenarios`` has them filled in);
    ``root`` is a service name, or a node name for node faults; ``rule`` is a catalogue key (see
    :func:`rule_keys`) of the root alert. ``spread`` is the probability that a symptom propagates one more hop
    (the world's own decreasing per-hop odds if ``None``) and scales the odds of optional symptoms; 1.0 makes
    every caller and every optional symptom alert. ``repeat_of`` is the index of an earlier scenario in the same
    list whose root alert (same labels, so the same fingerprint) this one repeats as a new incident; its kind,
    cluster, root and rule are taken from that scenario.
    """

    kind: str
    start_min: float
    duration_min: float = 30.0
    cluster: str | None = None
    root: str | None = None
    rule: str | None = None
    spread: float | None = None
    repeat_of: int | None = None


@dataclass
class GeneratedStream:
    """Storm lines (``{"at", "alert", "truth"}``, sorted by ``at``), the topology document, and the scenarios
    that produced them (with drawn clusters, roots and root rules filled in)."""

    lines: list[dict[str, Any]]
    topology: dict[str, Any]
    scenarios: list[Scenario]

    def write(self, directory: str | Path, *, compress: bool = True) -> tuple[Path, Path]:
        """Write ``storm.jsonl.gz`` (or ``storm.jsonl``) and ``topology.json`` into ``directory``."""
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        lines_path = folder / ("storm.jsonl.gz" if compress else "storm.jsonl")
        write_lines(self.lines, lines_path)
        topology_path = folder / "topology.json"
        write_topology(self.topology, topology_path)
        return lines_path, topology_path


def write_lines(lines: Iterable[Mapping[str, Any]], path: str | Path) -> None:
    """Write storm lines as JSON Lines; a path ending in ``.gz`` is gzip-compressed (reproducibly)."""
    data = "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines).encode()
    target = Path(path)
    if target.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    target.write_bytes(data)


def write_topology(topology: Mapping[str, Any], path: str | Path) -> None:
    """Write a topology document as indented JSON."""
    Path(path).write_text(json.dumps(topology, indent=1) + "\n")


def rule_keys() -> list[str]:
    """Catalogue keys of every rule (usable as :attr:`Scenario.rule`)."""
    return [rule.key for rule in _rules()]


def generate(
    seed: int,
    *,
    hours: float = 6.0,
    faults: int | None = None,
    noise: int | None = None,
    flaps: int | None = None,
    clusters: int | None = None,
    pods_per_node: int | None = None,
    start: datetime | None = None,
) -> GeneratedStream:
    """A random stream of ``hours``: about 2.5 faults, 11 noise alerts per hour and one chatty alert per 6 h
    unless ``faults``/``noise``/``flaps`` say otherwise, in a world of ``clusters`` (1-3, drawn if ``None``).
    Deterministic for a seed.
    """
    world = build_world(seed, clusters=clusters, pods_per_node=pods_per_node, start=start)
    return world.stream(world.random_scenarios(hours, faults=faults, noise=noise, flaps=flaps))


def build_world(
    seed: int, *, clusters: int | None = None, pods_per_node: int | None = None, start: datetime | None = None
) -> World:
    """A seeded world: its topology, label conventions and rule spellings. ``pods_per_node`` scales workload
    replicas so that worker nodes hold about that many pods (node-failure storms); ``start`` is the stream
    start (a midnight drawn from the seed if ``None``)."""
    return World(seed, clusters=clusters, pods_per_node=pods_per_node, start=start)


# ---------------------------------------------------------------------------------------------- catalogue


@dataclass(frozen=True)
class _Rule:
    key: str
    names: tuple[str, ...]
    group: str
    scheme: str
    types: frozenset[str]
    techs: frozenset[str]
    kinds: frozenset[str]
    modes: frozenset[str]
    severity: str
    fors: tuple[int, ...]
    low: float
    high: float
    unit: str
    extra: Mapping[str, Any]
    noise: float
    chatty: bool
    expr: str
    summary: str
    description: str


@dataclass(frozen=True)
class _Bound:
    """A rule as one world spells it."""

    rule: _Rule
    alertname: str
    for_s: int
    severity: str


def _seconds(text: str) -> int:
    return int(text[:-1]) * {"s": 1, "m": 60, "h": 3600}[text[-1]]


@functools.cache
def _vocabulary() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(_CATALOGUE_PATH.read_text())
    return loaded


@functools.cache
def _rules() -> tuple[_Rule, ...]:
    rules = []
    for raw in _vocabulary()["rules"]:
        low, high = raw["value"]
        rules.append(
            _Rule(
                key=raw["key"],
                names=tuple(raw["names"]),
                group=raw["group"],
                scheme=raw["scheme"],
                types=frozenset(raw["types"]),
                techs=frozenset(raw.get("techs", ())),
                kinds=frozenset(raw.get("kinds", ())),
                modes=frozenset(raw["modes"]),
                severity=raw["severity"],
                fors=tuple(_seconds(text) for text in raw["for"]),
                low=float(low),
                high=float(high),
                unit=raw["unit"],
                extra=raw.get("extra", {}),
                noise=float(raw.get("noise", 0)),
                chatty=bool(raw.get("chatty", False)),
                expr=raw["expr"],
                summary=raw["summary"],
                description=raw["description"],
            )
        )
    return tuple(rules)


# ---------------------------------------------------------------------------------------------- topology


@dataclass
class _Pod:
    name: str
    ip: str
    node: str


@dataclass
class _Node:
    name: str
    ip: str
    role: str
    pods: list[str] = field(default_factory=list)


@dataclass
class _Service:
    name: str
    cluster: str
    namespace: str
    type: str
    tech: str
    kind: str
    port: int
    job: str
    k8s_service: str
    container: str
    public_host: str | None
    depends_on: list[str]
    replicas: int
    placement: str = "worker"
    pods: list[_Pod] = field(default_factory=list)


@dataclass
class _Cluster:
    name: str
    region: str
    mesh: str
    nodes: dict[str, _Node] = field(default_factory=dict)
    services: dict[str, _Service] = field(default_factory=dict)

    def platform(self, tech: str) -> _Service | None:
        return next((s for s in self.services.values() if s.type == "platform" and s.tech == tech), None)


@dataclass(frozen=True)
class _Target:
    """What an alert is about: a service (optionally one pod, and a backend for ingress alerts) or a node."""

    cluster: _Cluster
    service: _Service | None = None
    pod: _Pod | None = None
    node: _Node | None = None
    backend: _Service | None = None

    @property
    def component(self) -> str:
        """The service or node name."""
        return self.service.name if self.service else self.node.name if self.node else ""

    @property
    def ident(self) -> str:
        pod = self.pod.name if self.pod else ""
        return f"{self.cluster.name}/{self.component}/{pod}/{self.backend.name if self.backend else ''}"


@dataclass(frozen=True)
class _Style:
    """A world's monitoring conventions and process parameters."""

    node_label: bool
    endpoint_label: bool
    exporter_suffix: str
    blackbox_job: str
    external: Mapping[str, str]
    summary_style: int
    description_style: int
    prom_url: str
    claim: str
    issuer: str
    kubelet_service: str
    probe_path: str
    topic_suffix: str
    hop_p: tuple[float, ...]
    symptom_flap: float
    root_flap: float
    overlap: float
    recurrence: float
    weights: Mapping[str, float]


def _rng(key: str) -> random.Random:
    """A generator seeded by ``key`` (a string seed hashes the same in every process)."""
    return random.Random(key)  # noqa: S311 (simulation draws, not secrets)


def _suffix(rng: random.Random, length: int) -> str:
    return "".join(rng.choice(_SUFFIX_ALPHABET) for _ in range(length))


def _pick(key: str, options: Sequence[Any]) -> Any:
    """A stable choice among ``options`` for ``key`` (the same alert on the same target looks the same)."""
    return options[zlib.crc32(key.encode()) % len(options)]


class World:
    """A seeded world. Build streams from it with :meth:`stream` (explicit scenarios) or
    :meth:`random_scenarios`; inspect it with the name helpers or :meth:`topology`."""

    def __init__(self, seed: int, *, clusters: int | None, pods_per_node: int | None, start: datetime | None) -> None:
        self.seed = seed
        rng = _rng(f"world/{seed}")
        vocab = _vocabulary()
        if start is None:
            start = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(days=rng.randrange(900))
        self.start = start
        self._epoch = start.timestamp()
        self.theme = rng.choice(sorted(vocab["themes"]))
        self.domain = rng.choice(vocab["themes"][self.theme]["domain"])
        self.cloud = rng.choice(sorted(vocab["clouds"]))
        self.style = self._style(rng)
        self.bound = self._bind_rules(rng)
        self._by_mode: dict[str, list[_Bound]] = {}
        for bound in self.bound.values():
            for mode in bound.rule.modes:
                self._by_mode.setdefault(mode, []).append(bound)
        self.clusters: list[_Cluster] = []
        self._build(rng, clusters if clusters is not None else rng.choice((1, 2, 2, 3)), pods_per_node)
        self._targets: dict[str, list[_Target]] = {}
        self._callers: dict[tuple[str, str], list[_Service]] = {}
        for cluster in self.clusters:
            for service in cluster.services.values():
                for dep in self.dependencies(service):
                    self._callers.setdefault((dep.cluster, dep.name), []).append(service)

    # ------------------------------------------------------------------ public helpers

    @property
    def cluster_names(self) -> list[str]:
        """Names of the clusters."""
        return [cluster.name for cluster in self.clusters]

    def service_names(self, cluster: str, type: str | None = None) -> list[str]:
        """Services of ``cluster`` (of one ``type``: ingress, web, worker, database, cache, queue, storage,
        platform)."""
        return [s.name for s in self._cluster(cluster).services.values() if type is None or s.type == type]

    def node_names(self, cluster: str, role: str = "worker") -> list[str]:
        """Nodes of ``cluster`` with ``role`` (``worker`` or ``control-plane``)."""
        return [n.name for n in self._cluster(cluster).nodes.values() if n.role == role]

    def busiest_node(self, cluster: str) -> str:
        """The worker node of ``cluster`` that runs the most pods."""
        nodes = [n for n in self._cluster(cluster).nodes.values() if n.role == "worker"]
        return max(nodes, key=lambda n: (len(n.pods), n.name)).name

    def root_options(self, kind: str, cluster: str) -> list[str]:
        """Components of ``cluster`` that can be the root of a ``kind`` fault (services, or nodes)."""
        return _root_options(self, kind, self._cluster(cluster))

    def unrelated_roots(self, kind: str, cluster: str, root: str) -> list[str]:
        """The :meth:`root_options` of a ``kind`` fault that are neither ``root`` nor a service that depends on it or
        that it depends on: a second fault there is unrelated to one at ``root`` (the overlaps of
        :meth:`random_scenarios`)."""
        services = self._cluster(cluster).services.values()
        neighbours = {
            s.name: [d.name for d in self.dependencies(s)] + [c.name for c in self.callers(s)] for s in services
        }
        related = {root} | {name for name, around in neighbours.items() if root in around}
        return [option for option in self.root_options(kind, cluster) if option not in related]

    def callers_of(self, cluster: str, service: str) -> list[tuple[str, str]]:
        """``(cluster, service)`` of the services that depend on ``service`` (other clusters included)."""
        return [(s.cluster, s.name) for s in self._callers.get((cluster, service), [])]

    def topology(self) -> dict[str, Any]:
        """The topology document (the world before any stream adds pods of new ReplicaSets)."""
        return self._topology({})

    def stream(self, scenarios: Sequence[Scenario], *, seed: int | None = None) -> GeneratedStream:
        """The stream that ``scenarios`` produce (``seed`` varies the timing draws; the world's seed if None)."""
        return _Run(self, self.seed if seed is None else seed).play(scenarios)

    def random_scenarios(
        self, hours: float, *, faults: int | None = None, noise: int | None = None, flaps: int | None = None
    ) -> list[Scenario]:
        """A random schedule over ``hours`` with overlapping faults, recurrences, noise and chatty alerts."""
        return _schedule(self, _rng(f"schedule/{self.seed}/{hours}"), hours, faults, noise, flaps)

    # ------------------------------------------------------------------ internals used by the run

    def dependencies(self, service: _Service) -> list[_Service]:
        out = []
        for ref in service.depends_on:
            cluster_name, _, name = ref.rpartition("/")
            cluster = self._cluster(cluster_name or service.cluster)
            if name in cluster.services:
                out.append(cluster.services[name])
        return out

    def callers(self, service: _Service) -> list[_Service]:
        return self._callers.get((service.cluster, service.name), [])

    def targets(self, bound: _Bound) -> list[_Target]:
        """Every service and node of the world that ``bound``'s rule can watch."""
        found = self._targets.get(bound.rule.key)
        if found is None:
            everything = [_Target(c, node=n) for c in self.clusters for n in c.nodes.values()]
            everything += [_Target(c, s) for c in self.clusters for s in c.services.values()]
            found = self._targets[bound.rule.key] = [t for t in everything if self.fits(bound.rule, t)]
        return found

    def _cluster(self, name: str) -> _Cluster:
        for cluster in self.clusters:
            if cluster.name == name:
                return cluster
        raise ValueError(f"no cluster {name!r} in this world (clusters: {', '.join(self.cluster_names)})")

    def candidates(self, target: _Target, mode: str, schemes: frozenset[str] | None) -> list[_Bound]:
        return [
            b
            for b in self._by_mode.get(mode, ())
            if (schemes is None or b.rule.scheme in schemes) and self.fits(b.rule, target)
        ]

    def fits(self, rule: _Rule, target: _Target) -> bool:
        if "node" in rule.types:
            return target.service is None and target.node is not None
        service = target.service
        if service is None or service.type not in rule.types or (rule.kinds and service.kind not in rule.kinds):
            return False
        if rule.scheme == "mesh":
            return target.cluster.mesh in rule.techs
        if rule.techs and service.tech not in rule.techs:
            return False
        if rule.scheme in ("blackbox", "cert"):
            return service.public_host is not None
        if rule.scheme == "kubelet_volume":
            return service.kind == "StatefulSet" and bool(service.pods)
        if rule.scheme == "ingress_backend":
            return bool(service.pods) and (target.backend is not None or bool(self.dependencies(service)))
        return rule.scheme not in _POD_SCHEMES or bool(service.pods)

    def iso(self, offset_s: float) -> str:
        ms = round((self._epoch + offset_s) * 1000)
        stamp = datetime.fromtimestamp(ms // 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        return f"{stamp}.{ms % 1000:03d}Z"

    # ------------------------------------------------------------------ construction

    def _style(self, rng: random.Random) -> _Style:
        external: dict[str, str] = {}
        if rng.random() < 0.5:
            external["prometheus"] = rng.choice(("monitoring/k8s", "monitoring/main", "observability/prom"))
        if rng.random() < 0.3:
            external["env"] = rng.choice(("prod", "production", "live"))
        kinds = [k for k in FAULT_KINDS if k != "global_rollout"]
        weights = {kind: rng.uniform(0.3, 2.0) for kind in kinds}
        weights["global_rollout"] = rng.uniform(0.3, 1.0)
        return _Style(
            node_label=rng.random() < 0.6,
            endpoint_label=rng.random() < 0.5,
            exporter_suffix=rng.choice(("", "", "-metrics", "-exporter")),
            blackbox_job=rng.choice(("blackbox", "blackbox-exporter", "probe/{namespace}/{service}")),
            external=external,
            summary_style=rng.randrange(3),
            description_style=rng.randrange(3),
            prom_url=rng.choice(
                (
                    "https://prometheus.{cluster}.{domain}",
                    "https://metrics-{region}.{domain}/prometheus",
                    "http://prometheus-k8s.monitoring.svc:9090",
                    "https://thanos.{domain}",
                )
            ),
            claim=rng.choice(("data", "storage", "datadir", "pvc")),
            issuer=rng.choice(("letsencrypt-prod", "acme-issuer", "corp-ca", "public-issuer")),
            kubelet_service=rng.choice(("kubelet", "kube-prometheus-stack-kubelet", "monitoring-kubelet")),
            probe_path=rng.choice(("/", "/healthz", "/status", "/-/ready")),
            topic_suffix=rng.choice(("events", "jobs", "tasks", "requests")),
            hop_p=tuple(sorted((rng.uniform(0.25, 0.95) for _ in range(4)), reverse=True)),
            symptom_flap=rng.uniform(0.06, 0.18),
            root_flap=rng.uniform(0.02, 0.08),
            overlap=rng.uniform(0.08, 0.18),
            recurrence=rng.uniform(0.06, 0.14),
            weights=weights,
        )

    def _bind_rules(self, rng: random.Random) -> dict[str, _Bound]:
        groups = sorted({rule.group for rule in _rules()})
        prefix = rng.choice(("", "", "", "Infra", "Sre", "Platform", "Ops"))
        prefixed = {g for g in groups if prefix and rng.random() < 0.4}
        levels = rng.choice(
            (
                {"critical": "critical", "warning": "warning", "info": "info"},
                {"critical": "critical", "warning": "warning", "info": "info"},
                {"critical": "page", "warning": "ticket", "info": "info"},
                {"critical": "P1", "warning": "P3", "info": "P5"},
                {"critical": "high", "warning": "medium", "info": "low"},
            )
        )
        bound = {}
        for rule in _rules():
            name = rng.choice(rule.names)
            if rule.group in prefixed and not name.startswith(prefix):
                name = prefix + name
            severity = rule.severity
            if rng.random() < 0.1:
                severity = {"critical": "warning", "warning": rng.choice(("critical", "info")), "info": "warning"}[
                    severity
                ]
            bound[rule.key] = _Bound(rule, name, rng.choice(rule.fors), levels[severity])
        return bound

    def _build(self, rng: random.Random, n_clusters: int, pods_per_node: int | None) -> None:
        vocab = _vocabulary()
        blueprints = self._blueprints(rng)
        regions = rng.sample(vocab["clouds"][self.cloud]["regions"], n_clusters)
        style = rng.choice(vocab["cluster_name_styles"])
        short = rng.choice(vocab["cluster_shorts"])
        mesh = rng.choice(("istio", "linkerd"))
        for index, region in enumerate(regions):
            name = style.format(region=region, n=index + 1, short=short)
            cluster = _Cluster(name, region, mesh if rng.random() < 0.85 else rng.choice(("istio", "linkerd")))
            self.clusters.append(cluster)
        home = self.clusters[0].name
        for cluster in self.clusters:
            self._instantiate(rng, cluster, blueprints, home)
            self._add_platform(rng, cluster)
            self._place(rng, cluster, pods_per_node)

    def _blueprints(self, rng: random.Random) -> list[dict[str, Any]]:
        """Business services of the world: name, type, tech, namespace and dependency names."""
        vocab = _vocabulary()
        words = list(vocab["themes"][self.theme]["words"])
        rng.shuffle(words)
        n = rng.randint(10, 25)
        n_ingress = 1 if n < 16 else rng.randint(1, 2)
        n_storage = int(rng.random() < 0.5)
        n_db = max(2, round(n * rng.uniform(0.12, 0.22)))
        n_cache, n_queue = rng.randint(1, 2), rng.randint(1, 2)
        n_worker = max(1, round(n * rng.uniform(0.1, 0.2)))
        n_web = max(3, n - n_ingress - n_storage - n_db - n_cache - n_queue - n_worker)
        techs = vocab["techs"]
        db_techs = rng.sample(sorted(techs["database"]), rng.randint(1, 3))
        cache_techs = rng.sample(sorted(techs["cache"]), rng.randint(1, 2))
        queue_techs = rng.sample(sorted(techs["queue"]), rng.randint(1, 2))
        runtimes = rng.sample(sorted(techs["web"]), rng.randint(1, 3))
        web_suffixes = rng.sample(vocab["web_suffixes"], rng.randint(1, 3))
        worker_suffixes = rng.sample(vocab["worker_suffixes"], 2)
        names: set[str] = set()

        def unique(name: str) -> str:
            while name in names:
                name = f"{name}-{rng.randint(2, 9)}"
            names.add(name)
            return name

        def bp(name: str, type_: str, tech: str) -> dict[str, Any]:
            return {"name": unique(name), "type": type_, "tech": tech, "deps": [], "public": False}

        web_words = [words[i % len(words)] for i in range(n_web)]
        webs = [bp(f"{w}-{rng.choice(web_suffixes)}", "web", rng.choice(runtimes)) for w in web_words]
        stores = []
        store_words = iter(rng.sample(web_words, len(web_words)) + words)
        for type_, count, choices in (
            ("database", n_db, db_techs),
            ("cache", n_cache, cache_techs),
            ("queue", n_queue, queue_techs),
        ):
            for _ in range(count):
                tech = rng.choice(choices)
                suffix = rng.choice(vocab["store_suffixes"][tech])
                stores.append(bp(f"{next(store_words)}-{suffix}", type_, tech))
        storage = [
            bp(rng.choice(vocab["store_suffixes"][tech]), "storage", tech)
            for tech in rng.sample(sorted(techs["storage"]), n_storage)
        ]
        workers = [
            bp(f"{next(store_words)}-{rng.choice(worker_suffixes)}", "worker", rng.choice(sorted(techs["worker"])))
            for _ in range(n_worker)
        ]
        ingresses = []
        for _ in range(n_ingress):
            tech = rng.choice(sorted(techs["ingress"]))
            form = rng.choice(("edge-{t}", "{t}-ingress", "public-{t}", "ingress-{t}", "{t}-gateway"))
            ingresses.append(bp(form.format(t=tech), "ingress", tech))
            ingresses[-1]["public"] = True
        n_public = max(1, len(webs) // 3)
        public, internal = webs[:n_public], webs[n_public:] or webs[:1]
        for web in public:
            web["public"] = rng.random() < 0.5
        caches = [s for s in stores if s["type"] == "cache"]
        dbs = [s for s in stores if s["type"] == "database"]
        queues = [s for s in stores if s["type"] == "queue"]
        for i, ingress in enumerate(ingresses):
            chosen = rng.sample(public, min(len(public), rng.randint(1, 3)))
            if i == 0:
                chosen = public
            ingress["deps"] = [w["name"] for w in chosen]
        for web in public:
            web["deps"] = [w["name"] for w in rng.sample(internal, min(len(internal), rng.randint(1, 3)))]
            if rng.random() < 0.5:
                web["deps"].append(rng.choice(caches)["name"])
        for i, web in enumerate(internal):
            deps = [d["name"] for d in rng.sample(dbs, min(len(dbs), rng.randint(1, 2)))]
            deps += [rng.choice(caches)["name"]] if rng.random() < 0.4 else []
            deps += [rng.choice(queues)["name"]] if rng.random() < 0.35 else []
            later = internal[i + 1 :]
            if later and rng.random() < 0.25:
                deps.append(rng.choice(later)["name"])
            web["deps"] = deps
        for worker in workers:
            worker["deps"] = [rng.choice(queues)["name"]] + ([rng.choice(dbs)["name"]] if rng.random() < 0.8 else [])
            worker["cron"] = rng.random() < 0.2
        # every store has a user
        users = internal + workers
        for store in stores:
            if not any(store["name"] in u["deps"] for u in users + public):
                rng.choice(users)["deps"].append(store["name"])
        for store in dbs + queues:
            if storage and rng.random() < 0.6:
                store["deps"].append(rng.choice(storage)["name"])
        everything = ingresses + webs + workers + stores + storage
        self._namespaces(rng, everything)
        return everything

    def _namespaces(self, rng: random.Random, blueprints: list[dict[str, Any]]) -> None:
        mode = rng.choice(("teams", "single", "tiers"))
        if mode == "single":
            shared = rng.choice(("prod", "apps", "default", self.theme))
            for b in blueprints:
                b["namespace"] = shared
            return
        if mode == "tiers":
            tiers = {
                "ingress": rng.choice(("ingress", "edge", "ingress-system")),
                "web": "frontend",
                "worker": rng.choice(("jobs", "workers", "batch")),
                "database": "data",
                "cache": "data",
                "queue": rng.choice(("messaging", "data")),
                "storage": rng.choice(("storage", "rook-ceph", "object-store")),
            }
            for b in blueprints:
                b["namespace"] = tiers[b["type"]] if b["type"] != "web" or b["public"] else "backend"
            return
        teams = [
            f"team-{w}" if rng.random() < 0.5 else w
            for w in rng.sample(_vocabulary()["themes"][self.theme]["words"], rng.randint(3, 6))
        ]
        by_name = {b["name"]: b for b in blueprints}
        for b in blueprints:
            b["namespace"] = (
                rng.choice(teams) if b["type"] in ("web", "worker") else "ingress" if b["type"] == "ingress" else ""
            )
        for b in blueprints:  # a store lives with its first user
            for dep in b["deps"]:
                if by_name[dep]["namespace"] == "":
                    by_name[dep]["namespace"] = b["namespace"] or "data"
        for b in blueprints:
            b["namespace"] = b["namespace"] or "data"

    def _instantiate(self, rng: random.Random, cluster: _Cluster, blueprints: list[dict[str, Any]], home: str) -> None:
        vocab = _vocabulary()
        regional = cluster.name != home
        present = {
            b["name"]
            for b in blueprints
            if not regional or rng.random() < (0.85 if b["type"] in ("ingress", "web", "worker") else 0.6)
        }
        prefixes = vocab["public_prefixes"]
        for b in blueprints:
            if b["name"] not in present:
                continue
            deps = []
            for dep in b["deps"]:
                if dep in present:
                    deps.append(dep)
                elif next(x for x in blueprints if x["name"] == dep)["type"] in _STORE_TYPES:
                    deps.append(f"{home}/{dep}")
            type_, tech = b["type"], b["tech"]
            port = vocab["techs"][type_][tech]
            kind = "StatefulSet" if type_ in _STORE_TYPES else "CronJob" if b.get("cron") else "Deployment"
            replicas = {
                "ingress": rng.randint(2, 4),
                "web": rng.randint(2, 6),
                "worker": 1 if kind == "CronJob" else rng.randint(1, 4),
                "database": 3 if tech in ("elasticsearch", "cassandra") else rng.randint(1, 3),
                "cache": rng.randint(1, 3),
                "queue": 3,
                "storage": rng.randint(3, 4),
            }[type_]
            host = None
            if b["public"]:
                word = b["name"].split("-")[0] if type_ == "web" else rng.choice(prefixes)
                host = rng.choice(("{w}.{r}.{d}", "{w}-{r}.{d}")).format(w=word, r=cluster.region, d=self.domain)
            container = b["name"] if rng.random() < 0.6 else rng.choice(("app", "server", "main"))
            if type_ in _STORE_TYPES:
                container = tech
            cluster.services[b["name"]] = _Service(
                b["name"],
                cluster.name,
                b["namespace"],
                type_,
                tech,
                kind,
                port,
                b["name"],
                b["name"],
                container,
                host,
                deps,
                replicas,
            )

    def _add_platform(self, rng: random.Random, cluster: _Cluster) -> None:
        names: dict[str, str] = getattr(self, "_platform_names", {})
        for entry in _vocabulary()["platform"]:
            tech = entry["tech"]
            if entry.get("optional") and rng.random() < 0.5:
                continue
            name = names.setdefault(tech, rng.choice(entry["names"]))
            kind = entry["kind"]
            replicas = {"Deployment": rng.randint(1, 2), "StatefulSet": rng.randint(2, 3)}.get(kind, 0)
            job = {"apiserver": "apiserver", "coredns": "coredns", "node-exporter": "node-exporter"}.get(tech, name)
            deps = [
                s.name
                for dep in entry.get("depends_on", ())
                for s in cluster.services.values()
                if s.type == "platform" and s.tech == dep
            ]
            cluster.services[name] = _Service(
                name,
                cluster.name,
                entry["namespace"],
                "platform",
                tech,
                kind,
                entry["port"],
                job,
                entry.get("k8s_service", name),
                name,
                None,
                deps,
                replicas,
                entry.get("placement", "worker"),
            )
        self._platform_names = names

    def _place(self, rng: random.Random, cluster: _Cluster, pods_per_node: int | None) -> None:
        vocab = _vocabulary()
        index = self.clusters.index(cluster)
        movable = [s for s in cluster.services.values() if s.kind in ("Deployment", "StatefulSet", "CronJob")]
        total = sum(s.replicas for s in movable)
        if pods_per_node:
            n_workers = rng.randint(3, 5)
            scalable = [s for s in movable if s.kind == "Deployment" and s.type in ("web", "worker", "ingress")]
            base = sum(s.replicas for s in scalable)
            factor = max(1.0, (pods_per_node * n_workers - (total - base)) / max(1, base))
            for s in scalable:
                s.replicas = max(1, round(s.replicas * factor))
        else:
            n_workers = max(3, min(14, round(total / rng.uniform(8, 16))))
        n_cp = 3 if rng.random() < 0.85 else 1
        ips = iter(_rng(f"ips/{self.seed}/{index}").sample(range(1, 60000), n_workers + n_cp))
        subnet = 16 + index * 8 + rng.randrange(4)
        node_style = vocab["node_name_styles"][self.cloud]
        cp_style = rng.choice(vocab["control_plane_styles"])
        pool = rng.randint(1, 3)
        hash8, digits8 = _suffix(rng, 8), f"{rng.randrange(10**8):08d}"  # one node pool
        for i in range(n_workers + n_cp):
            raw = next(ips)
            ip = f"10.{subnet}.{raw // 250}.{raw % 250 + 2}"
            role = "worker" if i < n_workers else "control-plane"
            context = {
                "ip_dashed": ip.replace(".", "-"),
                "region": cluster.region,
                "cluster": cluster.name,
                "pool": pool,
                "hash8": hash8,
                "hash4": _suffix(rng, 4),
                "digits8": digits8,
                "index6": f"{i:06d}",
                "index2": f"{i + 1:02d}",
                "index": i - n_workers + 1,
                "hash5": _suffix(rng, 5),
            }
            name = (node_style if role == "worker" else cp_style).format(**context)
            cluster.nodes[name] = _Node(name, ip, role)
        workers = [n for n in cluster.nodes.values() if n.role == "worker"]
        control = [n for n in cluster.nodes.values() if n.role == "control-plane"]
        pod_net = 100 + index * 16
        counter = [rng.randrange(5000)]

        def pod_ip() -> str:  # increasing, with gaps, unique within the cluster's pod network
            counter[0] += rng.randint(1, 9)
            n = counter[0]
            return f"10.{pod_net + n // 64000}.{n // 250 % 256}.{n % 250 + 2}"

        for service in cluster.services.values():
            if service.kind == "DaemonSet":
                for node in workers + control:
                    self._add_pod(service, f"{service.name}-{_suffix(rng, 5)}", node.ip, node)
            elif service.kind == "Static":
                for node in control:
                    self._add_pod(service, f"{service.name}-{node.name}", node.ip, node)
            else:
                pool_nodes = control if service.placement == "control-plane" else workers
                rs_hash = _suffix(rng, rng.choice((9, 10)))
                used: set[str] = set()
                for i in range(service.replicas):
                    free = [n for n in pool_nodes if n.name not in used] or pool_nodes
                    node = min(rng.sample(free, min(2, len(free))), key=lambda n: len(n.pods))
                    used.add(node.name)
                    if service.kind == "StatefulSet":
                        name = f"{service.name}-{i}"
                    elif service.kind == "CronJob":
                        name = f"{service.name}-{28_000_000 + rng.randrange(900_000)}-{_suffix(rng, 5)}"
                    else:
                        name = f"{service.name}-{rs_hash}-{_suffix(rng, 5)}"
                    self._add_pod(service, name, pod_ip(), node)

    @staticmethod
    def _add_pod(service: _Service, name: str, ip: str, node: _Node) -> None:
        service.pods.append(_Pod(name, ip, node.name))
        node.pods.append(name)

    def _topology(self, extra: Mapping[tuple[str, str], list[_Pod]]) -> dict[str, Any]:
        clusters = []
        for cluster in self.clusters:
            node_pods = {name: list(node.pods) for name, node in cluster.nodes.items()}
            services = []
            for s in cluster.services.values():
                pods = s.pods + extra.get((cluster.name, s.name), [])
                for pod in extra.get((cluster.name, s.name), []):
                    node_pods[pod.node].append(pod.name)
                services.append(
                    {
                        "name": s.name,
                        "namespace": s.namespace,
                        "type": s.type,
                        "tech": s.tech,
                        "kind": s.kind,
                        "public_host": s.public_host,
                        "depends_on": list(s.depends_on),
                        "pods": [{"name": p.name, "ip": p.ip, "node": p.node} for p in pods],
                    }
                )
            nodes = [
                {"name": n.name, "ip": n.ip, "role": n.role, "pods": node_pods[n.name]} for n in cluster.nodes.values()
            ]
            clusters.append(
                {
                    "name": cluster.name,
                    "region": cluster.region,
                    "service_mesh": cluster.mesh,
                    "nodes": nodes,
                    "services": services,
                }
            )
        return {"clusters": clusters}

    # ------------------------------------------------------------------ labels

    def labels(self, bound: _Bound, target: _Target, pod: _Pod | None) -> dict[str, str]:
        rule, cluster, style = bound.rule, target.cluster, self.style
        service, node = target.service, target.node
        ksm = cluster.platform("kube-state-metrics")
        assert ksm is not None and ksm.pods
        ksm_pod = ksm.pods[0]
        ksm_labels = {"job": "kube-state-metrics", "service": ksm.name, "instance": f"{ksm_pod.ip}:{ksm.port}"}
        labels: dict[str, str] = {}
        scheme = rule.scheme
        if scheme in ("node", "ksm_node"):
            assert node is not None
            if scheme == "ksm_node":
                labels = {
                    **ksm_labels,
                    "namespace": ksm.namespace,
                    "pod": ksm_pod.name,
                    "container": "kube-state-metrics",
                    "node": node.name,
                }
            else:
                exporter = cluster.platform("node-exporter")
                assert exporter is not None
                ne_pod = next(p for p in exporter.pods if p.node == node.name)
                labels = {
                    "job": "node-exporter",
                    "instance": f"{node.ip}:9100",
                    "namespace": exporter.namespace,
                    "pod": ne_pod.name,
                    "service": exporter.name,
                    "container": "node-exporter",
                }
                if style.node_label:
                    labels["node"] = node.name
        else:
            assert service is not None
            labels = self._service_labels(scheme, service, target, pod, ksm_labels, ksm_pod.name)
        if style.endpoint_label and scheme in ("app", "exporter", "ksm_pod", "ksm_workload", "ksm_node"):
            labels["endpoint"] = "metrics" if scheme == "exporter" else "http-metrics"
        context: dict[str, str] = dict(labels)
        if service is not None:
            consumer = target.backend if target.backend and target.backend.type == "worker" else None
            if consumer is None and service.type == "queue":
                readers = [c for c in self.callers(service) if c.type == "worker"]
                consumer = _pick(service.name, readers) if readers else None
            reader = consumer.name if consumer else f"{service.name.split('-')[0]}-reader"
            context.update(
                db=service.name.split("-")[0].replace("-", "_"),
                consumer=reader,
                topic=f"{reader.split('-')[0]}.{style.topic_suffix}",
            )
        key = f"{self.seed}|{target.ident}|{rule.key}"
        for name, value in rule.extra.items():
            chosen = _pick(f"{key}|{name}", value) if isinstance(value, list) else value
            labels[name] = str(chosen).format_map(context)
        labels.update(style.external)
        labels.update(alertname=bound.alertname, severity=bound.severity, cluster=cluster.name)
        return labels

    def _service_labels(
        self, scheme: str, service: _Service, target: _Target, pod: _Pod | None, ksm: Mapping[str, str], ksm_pod: str
    ) -> dict[str, str]:
        cluster, style = target.cluster, self.style
        if scheme in ("app", "ingress_backend"):
            assert pod is not None
            labels = {
                "namespace": service.namespace,
                "service": service.k8s_service,
                "job": service.job,
                "instance": f"{pod.ip}:{service.port}",
                "pod": pod.name,
                "container": service.container,
            }
            if scheme == "ingress_backend":
                b = target.backend
                assert b is not None
                labels.update(
                    {
                        "nginx": {"exported_namespace": b.namespace, "exported_service": b.name, "ingress": b.name},
                        "haproxy": {"proxy": f"{b.namespace}_{b.name}_{b.port}"},
                        "envoy": {"envoy_cluster_name": f"{b.namespace}_{b.name}_{b.port}"},
                        "traefik": {"exported_service": f"{b.namespace}-{b.name}-{b.port}@kubernetes"},
                    }[service.tech]
                )
            return labels
        if scheme == "exporter":
            assert pod is not None
            name = service.name + style.exporter_suffix
            return {
                "namespace": service.namespace,
                "service": name,
                "job": name,
                "instance": f"{pod.ip}:{service.port}",
                "pod": pod.name,
                "container": f"{service.tech}-exporter",
            }
        if scheme == "ksm_pod":
            assert pod is not None
            return {**ksm, "namespace": service.namespace, "pod": pod.name, "container": service.container}
        if scheme == "ksm_workload":
            kind_label = {
                "Deployment": "deployment",
                "StatefulSet": "statefulset",
                "DaemonSet": "daemonset",
                "CronJob": "cronjob",
            }[service.kind]
            return {
                **ksm,
                "namespace": service.namespace,
                "pod": ksm_pod,
                "container": "kube-state-metrics",
                kind_label: service.name,
            }
        if scheme in ("kubelet", "kubelet_volume"):
            assert pod is not None
            node = cluster.nodes[pod.node]
            labels = {
                "namespace": service.namespace,
                "node": node.name,
                "job": "kubelet",
                "service": style.kubelet_service,
                "instance": f"{node.ip}:10250",
            }
            if scheme == "kubelet":
                return {**labels, "pod": pod.name, "container": service.container, "metrics_path": "/metrics/cadvisor"}
            return {**labels, "persistentvolumeclaim": f"{style.claim}-{pod.name}", "metrics_path": "/metrics"}
        if scheme == "mesh":
            extra = (
                {"destination_workload": service.name, "reporter": "destination"}
                if cluster.mesh == "istio"
                else {"deployment": service.name, "direction": "inbound"}
            )
            return {"namespace": service.namespace, "service": service.name, **extra}
        if scheme == "blackbox":
            job = style.blackbox_job.format(namespace="monitoring", service=service.name)
            return {"job": job, "instance": f"https://{service.public_host}{style.probe_path}"}
        if scheme == "cert":
            manager = cluster.platform("cert-manager")
            assert manager is not None and manager.pods
            return {
                "namespace": manager.namespace,
                "job": manager.job,
                "service": manager.name,
                "instance": f"{manager.pods[0].ip}:{manager.port}",
                "pod": manager.pods[0].name,
                "container": "cert-manager-controller",
                "name": f"{service.name}-tls",
                "exported_namespace": service.namespace,
                "issuer_name": style.issuer,
                "issuer_kind": "ClusterIssuer",
            }
        raise ValueError(f"unknown label scheme {scheme!r}")

    def generator_url(self, bound: _Bound, cluster: _Cluster) -> str:
        base = self.style.prom_url.format(cluster=cluster.name, region=cluster.region, domain=self.domain)
        return f"{base}/graph?g0.expr={quote(bound.rule.expr, safe='')}&g0.tab=1"


# ---------------------------------------------------------------------------------------------- a run


@dataclass
class _Alert:
    bound: _Bound
    labels: dict[str, str]
    fingerprint: str
    url: str
    start: float
    end: float
    root: bool
    flap: bool
    base: float
    episodes: list[tuple[float, float]] | None = None


@dataclass
class _Incident:
    kind: str
    scenario: str
    root_service: str
    root_cluster: str
    start: float
    alerts: dict[str, _Alert] = field(default_factory=dict)


class _Run:
    """Expands scenarios into incidents, then renders their deliveries."""

    def __init__(self, world: World, seed: int) -> None:
        self.world = world
        self.rng = _rng(f"run/{world.seed}/{seed}")
        self.extra: dict[tuple[str, str], list[_Pod]] = {}
        self.incidents: list[_Incident] = []

    def play(self, scenarios: Sequence[Scenario]) -> GeneratedStream:
        resolved: list[Scenario] = []
        roots: list[_Alert | None] = []
        for index, scenario in enumerate(scenarios):
            if scenario.repeat_of is not None and not 0 <= scenario.repeat_of < index:
                raise ValueError(f"scenario {index}: repeat_of must name an earlier scenario")
            original = resolved[scenario.repeat_of] if scenario.repeat_of is not None else None
            if original is not None:
                scenario = replace(
                    scenario, kind=original.kind, cluster=original.cluster, root=original.root, rule=original.rule
                )
            expansion = _Expansion(self, scenario)
            resolved.append(expansion.expand())
            root = expansion.first_root
            if original is not None and root is not None:
                earlier = roots[scenario.repeat_of or 0]
                if earlier is not None:  # the same root alert, hence the same fingerprint
                    del expansion.incident.alerts[root.fingerprint]
                    root = replace(
                        root,
                        bound=earlier.bound,
                        labels=dict(earlier.labels),
                        fingerprint=earlier.fingerprint,
                        url=earlier.url,
                    )
                    expansion.incident.alerts[root.fingerprint] = root
            roots.append(root)
        return GeneratedStream(self._render(), self.world._topology(self.extra), resolved)

    def new_pods(self, service: _Service, count: int) -> list[_Pod]:
        """Pods of a new ReplicaSet of ``service`` (a rollout), on random worker nodes."""
        cluster = self.world._cluster(service.cluster)
        workers = [n for n in cluster.nodes.values() if n.role == "worker"]
        rs_hash = _suffix(self.rng, 10)
        pods = [
            _Pod(
                f"{service.name}-{rs_hash}-{_suffix(self.rng, 5)}",
                f"10.{200 + self.world.clusters.index(cluster)}.{self.rng.randrange(256)}.{self.rng.randrange(2, 252)}",
                self.rng.choice(workers).name,
            )
            for _ in range(count)
        ]
        self.extra.setdefault((service.cluster, service.name), []).extend(pods)
        return pods

    def _render(self) -> list[dict[str, Any]]:
        rng, world = self.rng, self.world
        busy: dict[str, list[tuple[float, float]]] = {}
        events: list[tuple[int, int, _Incident, _Alert, str, float, float, float]] = []
        for incident in sorted(self.incidents, key=lambda i: i.start):
            for alert in sorted(incident.alerts.values(), key=lambda a: a.start):
                interval = rng.uniform(60, 180)
                for start, end in alert.episodes if alert.episodes is not None else self._episodes(alert):
                    at = start + rng.uniform(0.5, 30)
                    if at >= end or any(start < e + 5 and s < end + 65 for s, e in busy.get(alert.fingerprint, ())):
                        continue
                    while at < end:
                        events.append((round(at * 1000), len(events), incident, alert, "firing", start, end, at))
                        at += interval
                    resolved_at = end + rng.uniform(0.5, 60)
                    events.append((round(resolved_at * 1000), len(events), incident, alert, "resolved", start, end, at))
                    busy.setdefault(alert.fingerprint, []).append((start, resolved_at))
        events.sort(key=lambda e: (e[0], e[1]))
        ids: dict[int, str] = {}
        lines = []
        for ms, _, incident, alert, status, start, end, _ in events:
            ident = ids.setdefault(id(incident), f"F{len(ids) + 1:04d}")
            lines.append(
                {
                    "at": world.iso(ms / 1000),
                    "alert": {
                        "status": status,
                        "labels": dict(alert.labels),
                        "annotations": _annotations(world, alert, rng),
                        "startsAt": world.iso(start),
                        "endsAt": world.iso(end) if status == "resolved" else _ZERO_TIME,
                        "generatorURL": alert.url,
                        "fingerprint": alert.fingerprint,
                    },
                    "truth": {
                        "incident": ident,
                        "root_cause": alert.root,
                        "root_service": incident.root_service,
                        "kind": incident.kind,
                        "root_cluster": incident.root_cluster,
                        "scenario": incident.scenario,
                    },
                }
            )
        return lines

    def _episodes(self, alert: _Alert) -> list[tuple[float, float]]:
        rng = self.rng
        fire = alert.start + alert.bound.for_s + rng.uniform(0, 30)
        if fire >= alert.end - 1:
            return []
        if not alert.flap:
            return [(fire, alert.end)]
        episodes = []
        start = fire
        count = rng.randint(2, 4)
        for i in range(count):
            end = alert.end if i == count - 1 else min(alert.end, start + rng.uniform(60, 420))
            episodes.append((start, end))
            start = end + rng.uniform(60, 300)
            if end >= alert.end or start >= alert.end - 30:
                break
        return episodes


def _format_value(value: float, unit: str) -> str:
    if unit == "percent":
        return f"{value:.1f}%"
    if unit == "seconds":
        return f"{value / 3600:.1f}h" if value >= 3600 else f"{value / 60:.1f}m" if value >= 120 else f"{value:.2f}s"
    if unit == "ms":
        return f"{value:.0f}ms"
    if unit == "bytes":
        return f"{value / 2**30:.2f}GiB" if value >= 2**30 else f"{value / 2**20:.0f}MiB"
    if unit == "days":
        return f"{value:.0f}d"
    if unit == "ratio":
        return f"{value:.2f}"
    return f"{value:.0f}"


def _annotations(world: World, alert: _Alert, rng: random.Random) -> dict[str, str]:
    rule, labels = alert.bound.rule, alert.labels
    value = alert.base
    if rule.high > rule.low and rule.unit != "code":
        value = min(rule.high * 1.1, max(rule.low * 0.9, value * (1 + rng.gauss(0, 0.04))))
    if rule.unit in ("count", "code"):
        value = round(value)
    shown = _format_value(value, rule.unit)
    context = {**labels, "value": shown, "for": f"{alert.bound.for_s // 60}m"}
    summary = rule.summary.format_map(context)
    description = rule.description.format_map(context)
    style = world.style
    if style.summary_style == 1:
        subject = labels.get("instance") or labels.get("pod") or labels.get("node") or labels.get("service", "")
        summary = f"{summary} ({subject})" if subject and subject not in summary else summary
    elif style.summary_style == 2:
        summary = f"[{labels['cluster']}] {summary}"
    if style.description_style == 1:
        shown_labels = ", ".join(f"{k}={v}" for k, v in sorted(labels.items()) if k not in ("alertname", "severity"))
        description = f"{description}\n  value: {value}\n  labels: {shown_labels}"
    elif style.description_style == 2:
        description = f"{description} (current value: {shown})"
    return {"summary": summary, "description": description}


# ---------------------------------------------------------------------------------------------- faults


class _Expansion:
    """One scenario turned into one incident's alerts (condition windows, before timing and delivery)."""

    def __init__(self, run: _Run, scenario: Scenario) -> None:
        if scenario.kind not in FAULT_KINDS + LONE_KINDS:
            raise ValueError(f"unknown scenario kind {scenario.kind!r}; one of {', '.join(FAULT_KINDS + LONE_KINDS)}")
        self.run, self.world, self.rng, self.scenario = run, run.world, run.rng, scenario
        self.t0 = scenario.start_min * 60
        self.t1 = self.t0 + max(1.0, scenario.duration_min) * 60
        self.first_root: _Alert | None = None
        self.seen: set[tuple[str, str]] = set()
        self.incident = _Incident("cascade", scenario.kind, "", "", self.t0)

    # ------------------------------------------------------------------ helpers

    def chance(self, p: float) -> bool:
        spread = self.scenario.spread
        return self.rng.random() < (p if spread is None else max(p, spread) if spread >= 1 else p * spread / 0.6)

    def hop(self, depth: int) -> bool:
        spread = self.scenario.spread
        return self.rng.random() < (self.world.style.hop_p[depth - 1] if spread is None else spread)

    def end(self, start: float) -> float:
        return max(start + 60, self.t1 + self.rng.uniform(-90, 120))

    def target(self, service: _Service, pod: _Pod | None = None, backend: _Service | None = None) -> _Target:
        return _Target(self.world._cluster(service.cluster), service, pod, None, backend)

    def add(
        self,
        target: _Target,
        mode: str | None,
        start: float,
        end: float | None = None,
        *,
        schemes: Iterable[str] | None = None,
        root: bool = False,
        rule: str | None = None,
    ) -> _Alert | None:
        """Add one alert on ``target`` for ``mode`` (or the catalogue ``rule``); None when no rule fits."""
        world = self.world
        if rule is not None:
            bound = world.bound[rule]
            if not world.fits(bound.rule, target):
                raise ValueError(f"rule {rule!r} does not apply to {target.ident}")
        else:
            assert mode is not None
            candidates = world.candidates(target, mode, frozenset(schemes) if schemes is not None else None)
            if not candidates:
                return None
            if root:  # a root must fire within the fault
                quick = [b for b in candidates if b.for_s + 90 < self.t1 - self.t0]
                candidates = quick or candidates
            bound = _pick(f"{world.seed}|{target.ident}|{mode}|{root}", candidates)
        pod = target.pod
        service = target.service
        if bound.rule.scheme in _POD_SCHEMES and pod is None and service is not None:
            pod = _pick(f"{world.seed}|{service.name}|{bound.rule.key}", service.pods)
        if bound.rule.scheme == "ingress_backend" and target.backend is None and service is not None:
            target = replace(target, backend=self.rng.choice(world.dependencies(service)))
        if end is None:
            end = self.end(start)
        if root:
            end = max(end, start + bound.for_s + 150)
        labels = world.labels(bound, target, pod)
        fingerprint = labels_fingerprint(labels)
        existing = self.incident.alerts.get(fingerprint)
        if existing is not None:
            existing.start, existing.end = min(existing.start, start), max(existing.end, end)
            existing.root = existing.root or root
            return existing
        flap_p = world.style.root_flap if root else world.style.symptom_flap
        alert = _Alert(
            bound,
            labels,
            fingerprint,
            world.generator_url(bound, target.cluster),
            start,
            end,
            root,
            self.rng.random() < flap_p,
            self.rng.uniform(bound.rule.low, bound.rule.high),
        )
        self.incident.alerts[fingerprint] = alert
        if root and self.first_root is None:
            self.first_root = alert
        return alert

    def add_root(
        self,
        target: _Target,
        modes: Sequence[str],
        schemes: Iterable[str] | None = None,
        prefer: Iterable[str] | None = None,
    ) -> _Alert:
        """The root alert: the scenario's rule if given, else the first mode with a fitting rule (rules of the
        ``prefer`` schemes first, e.g. the database's own exporter before a generic target-down rule)."""
        if self.scenario.rule is not None:
            alert = self.add(target, None, self.t0, self.t1, root=True, rule=self.scenario.rule)
            assert alert is not None
            return alert
        for allowed in ([prefer] if prefer is not None else []) + [schemes]:
            for mode in modes:
                alert = self.add(target, mode, self.t0, self.t1, schemes=allowed, root=True)
                if alert is not None:
                    return alert
        raise ValueError(f"no rule of modes {modes} fits {target.ident}")

    def cascade(self, service: _Service, effect: str, start: float, depth: int = 1) -> None:
        """Symptoms on the callers of ``service``, hop by hop (up to 4 hops)."""
        if depth > 4:
            return
        for caller in self.world.callers(service):
            key = (caller.cluster, caller.name)
            if key in self.seen or not self.hop(depth):
                continue
            self.seen.add(key)
            at = start + self.rng.uniform(5, 120) * (1 + 0.3 * (depth - 1))
            self.symptoms(caller, effect, at, backend=service)
            self.cascade(caller, effect, at, depth + 1)

    def symptoms(self, service: _Service, effect: str, at: float, backend: _Service | None = None) -> None:
        """What a service shows when a dependency fails (``effect`` errors) or slows down (``latency``)."""
        t = self.target(service)
        jitter = self.rng.uniform
        probe = "probe" if effect == "errors" else "latency"
        if service.type == "ingress":
            if backend is not None and backend.name in [d.name for d in self.world.dependencies(service)]:
                t = self.target(service, backend=backend)
                self.per_instance(t, self.add(t, effect, at, schemes={"ingress_backend"}), at)
            else:
                self.per_instance(t, self.add(t, effect, at, schemes={"mesh", "app"}), at)
            if service.public_host and self.chance(0.6):
                self.add(t, probe, at + jitter(0, 40), schemes={"blackbox"})
        elif service.type == "web":
            self.per_instance(t, self.add(t, effect, at, schemes={"mesh", "app"}), at)
            if self.chance(0.2):
                self.per_instance(t, self.add(t, effect, at + jitter(0, 60), schemes={"app"}), at)
            if service.public_host and self.chance(0.35):
                self.add(t, probe, at + jitter(0, 40), schemes={"blackbox"})
            if effect == "errors" and self.chance(0.15):
                self.add(t, "unready", at + jitter(20, 90), schemes={"ksm_pod"})
            if effect == "latency" and self.chance(0.25):
                self.add(t, "hpa", at + jitter(30, 120))
            if effect == "latency" and self.chance(0.15):
                self.add(t, "throttling", at + jitter(30, 120))
        elif service.type == "worker":
            if effect == "errors" or self.chance(0.3):
                mode = "crash" if self.rng.random() < 0.4 else "errors"
                self.per_instance(t, self.add(t, mode, at, schemes={"app", "ksm_pod"}), at)
        elif service.type == "platform":
            self.add(t, "errors" if effect == "errors" else "latency", at)
        else:  # a data store on failing storage
            self.add(t, "down" if effect == "errors" and self.chance(0.5) else "latency", at, schemes={"exporter"})

    def per_instance(self, target: _Target, alert: _Alert | None, at: float) -> None:
        """Repeat a per-pod symptom on one or two more pods of the service (one alert per instance)."""
        service = target.service
        if alert is None or service is None or alert.bound.rule.scheme not in _POD_SCHEMES or not self.chance(0.35):
            return
        others = [pod for pod in service.pods if pod.name != alert.labels.get("pod")]
        for pod in self.rng.sample(others, min(len(others), self.rng.randint(1, 2))):
            self.add(replace(target, pod=pod), None, at + self.rng.uniform(0, 60), rule=alert.bound.rule.key)

    # ------------------------------------------------------------------ scenarios

    def expand(self) -> Scenario:
        scenario, world = self.scenario, self.world
        kind = scenario.kind
        if kind in LONE_KINDS:
            return self._lone()
        cluster_name, root_name = _resolve_root(world, kind, scenario.cluster, scenario.root, self.rng)
        cluster = world._cluster(cluster_name)
        self.incident.root_service, self.incident.root_cluster = root_name, cluster_name
        if kind in ("node_failure", "node_pressure"):
            node = cluster.nodes[root_name]
            (_node_failure if kind == "node_failure" else _node_pressure)(self, cluster, node)
        else:
            _SERVICE_FAULTS[kind](self, cluster.services[root_name])
        self.run.incidents.append(self.incident)
        root_rule = self.first_root.bound.rule.key if self.first_root else scenario.rule
        return replace(scenario, cluster=cluster_name, root=root_name, rule=root_rule)

    def _lone(self) -> Scenario:
        scenario, world, rng = self.scenario, self.world, self.rng
        chatty = scenario.kind == "flap"
        if scenario.rule is not None:
            rules = [world.bound[scenario.rule]]
        else:
            rules = [b for b in world.bound.values() if (b.rule.chatty if chatty else b.rule.noise > 0)]
        options: list[tuple[_Bound, list[_Target]]] = []
        for bound in rules:
            targets = [
                t
                for t in world.targets(bound)
                if scenario.cluster in (None, t.cluster.name) and scenario.root in (None, t.component)
            ]
            if targets:
                options.append((bound, targets))
        if not options:
            raise ValueError(f"no {scenario.kind} rule fits {scenario.root or 'any component'}")
        bound, targets = rng.choices(options, [b.rule.noise or 1.0 for b, _ in options])[0]
        target = rng.choice(targets)
        if target.service is not None and bound.rule.scheme in _POD_SCHEMES:
            target = replace(target, pod=rng.choice(target.service.pods))
        self.incident.kind = self.incident.scenario = scenario.kind
        self.incident.root_cluster = target.cluster.name
        self.incident.root_service = target.component
        alert = self.add(target, None, self.t0, self.t1, root=True, rule=bound.rule.key)
        assert alert is not None
        if chatty:
            episodes, start = [], self.t0
            while start < self.t1 - 90:
                end = min(self.t1, start + rng.uniform(90, 900))
                episodes.append((start, end))
                start = end + rng.uniform(180, 3600)
            alert.episodes = episodes
        else:
            alert.flap = rng.random() < 0.1
        self.run.incidents.append(self.incident)
        return replace(
            scenario, cluster=self.incident.root_cluster, root=self.incident.root_service, rule=bound.rule.key
        )


def _store_down(x: _Expansion, service: _Service) -> None:
    primary = service.pods[0]
    x.add_root(
        x.target(service, primary), ["down", "crash", "replicas"], {"exporter", "app", "ksm_pod"}, prefer={"exporter"}
    )
    t0, jitter = x.t0, x.rng.uniform
    if x.chance(0.6):
        x.add(x.target(service, primary), "target_down", t0 + jitter(0, 20), schemes={"app"})
    if x.chance(0.6):
        x.add(x.target(service), "replicas", t0 + jitter(10, 60), schemes={"ksm_workload"})
    if x.chance(0.5):
        x.add(x.target(service, primary), "unready", t0 + jitter(5, 40), schemes={"ksm_pod"})
    if x.chance(0.3):
        x.add(x.target(service, primary), "crash", t0 + jitter(30, 120), schemes={"ksm_pod"})
    for replica in service.pods[1:3]:
        if x.chance(0.5):
            x.add(x.target(service, replica), "replication", t0 + jitter(10, 90))
    x.cascade(service, "errors", t0)


def _store_strain(x: _Expansion, service: _Service) -> None:
    mode = {"db_saturation": "saturation", "cache_memory": "memory", "db_replication": "replication"}[x.scenario.kind]
    pod = service.pods[-1] if mode == "replication" else service.pods[0]
    x.add_root(x.target(service, pod), [mode, "saturation", "latency"], schemes={"exporter"})
    if mode != "replication":
        if x.chance(0.3):
            x.add(x.target(service, pod), "memory", x.t0 + x.rng.uniform(30, 180), schemes={"kubelet"})
        x.cascade(service, "latency", x.t0)
    elif x.chance(0.5):
        x.add(x.target(service, pod), "unready", x.t0 + x.rng.uniform(60, 300), schemes={"ksm_pod"})


def _disk_full(x: _Expansion, service: _Service) -> None:
    pod = service.pods[0]
    x.add_root(x.target(service, pod), ["disk"], schemes={"kubelet_volume", "exporter"})
    later = x.t0 + x.rng.uniform(60, 300)
    if x.chance(0.5):
        x.add(x.target(service, pod), "errors" if x.chance(0.5) else "down", later, schemes={"exporter"})
    x.cascade(service, "errors", later)


def _consumer_stuck(x: _Expansion, worker: _Service) -> None:
    x.add_root(x.target(worker), ["crash", "job_failed", "errors"], schemes={"ksm_pod", "app"})
    queues = [d for d in x.world.dependencies(worker) if d.type == "queue"]
    for queue in queues:
        backlog = x.t0 + x.rng.uniform(60, 300)
        x.add(x.target(queue, queue.pods[0], backend=worker), "lag", backlog, schemes={"exporter"})
    if worker.kind == "Deployment" and x.chance(0.4):
        x.add(x.target(worker), "replicas", x.t0 + x.rng.uniform(30, 120), schemes={"ksm_workload"})


def _bad_deploy(x: _Expansion, service: _Service, stagger: float = 0.0) -> None:
    pods = x.run.new_pods(service, x.rng.randint(1, 3))
    t0, jitter = x.t0 + stagger, x.rng.uniform
    mode = "rollout" if x.rng.random() < 0.3 else "crash"
    target = x.target(service, pods[0])
    if x.scenario.rule is not None:
        root = x.add(target, None, t0, x.t1 + stagger, root=True, rule=x.scenario.rule)
    else:
        root = x.add(target, mode, t0, x.t1 + stagger, root=True, schemes={"ksm_pod"}) or x.add(
            x.target(service), "rollout", t0, x.t1 + stagger, root=True
        )
    assert root is not None
    for pod in pods[1:]:
        x.add(x.target(service, pod), "crash", t0 + jitter(10, 90), x.t1 + stagger, schemes={"ksm_pod"})
    if x.chance(0.6):
        x.add(x.target(service), "rollout", t0 + jitter(30, 120), x.t1 + stagger, schemes={"ksm_workload"})
    if x.chance(0.5):
        x.add(x.target(service), "replicas", t0 + jitter(30, 120), x.t1 + stagger, schemes={"ksm_workload"})
    if x.chance(0.6):
        x.add(x.target(service), "errors", t0 + jitter(10, 60), x.t1 + stagger, schemes={"mesh", "app"})
    x.cascade(service, "errors", t0 + 30)


def _global_rollout(x: _Expansion, service: _Service) -> None:
    stagger = 0.0
    for cluster in x.world.clusters:
        twin = cluster.services.get(service.name)
        if twin is None:
            continue
        _bad_deploy(x, twin, stagger)
        stagger += x.rng.uniform(120, 900)


def _memory_leak(x: _Expansion, service: _Service) -> None:
    pod = _pick(f"{x.world.seed}|leak|{service.name}", service.pods)
    x.add_root(x.target(service, pod), ["memory"], schemes={"app", "kubelet"})
    oom = x.t0 + (x.t1 - x.t0) * x.rng.uniform(0.4, 0.8)
    x.add(x.target(service, pod), "oom", oom, schemes={"ksm_pod"})
    if x.chance(0.3):
        x.add(x.target(service, pod), "crash", oom + x.rng.uniform(30, 120), schemes={"ksm_pod"})
    if x.chance(0.5):
        x.add(x.target(service), "latency", x.t0 + x.rng.uniform(120, 600), schemes={"mesh", "app"})
    x.cascade(service, "latency", oom)


def _ingress_failure(x: _Expansion, ingress: _Service) -> None:
    x.add_root(x.target(ingress), ["down", "errors", "saturation"], schemes={"app"})
    jitter = x.rng.uniform
    if ingress.public_host:
        x.add(x.target(ingress), "probe", x.t0 + jitter(10, 60), schemes={"blackbox"})
    for backend in x.world.dependencies(ingress):
        if backend.public_host and x.chance(0.5):
            x.add(x.target(backend), "probe", x.t0 + jitter(10, 90), schemes={"blackbox"})
        if x.chance(0.4):
            x.add(x.target(ingress, backend=backend), "errors", x.t0 + jitter(10, 60), schemes={"ingress_backend"})
    if x.chance(0.3):
        x.add(x.target(ingress), "errors", x.t0 + jitter(10, 60), schemes={"mesh"})


def _cert_expiry(x: _Expansion, service: _Service) -> None:
    x.add_root(x.target(service), ["cert"])
    jitter = x.rng.uniform
    if x.chance(0.8):
        x.add(x.target(service), "probe", x.t0 + jitter(5, 60), schemes={"blackbox"})
    if x.chance(0.3):
        x.add(x.target(service), "errors", x.t0 + jitter(5, 60), schemes={"app", "mesh"})
    for caller in x.world.callers(service):
        if caller.type == "ingress" and x.chance(0.4):
            x.add(x.target(caller, backend=service), "errors", x.t0 + jitter(5, 60), schemes={"ingress_backend"})


def _storage_degraded(x: _Expansion, storage: _Service) -> None:
    x.add_root(x.target(storage), ["storage", "down", "latency"], schemes={"exporter"})
    effect = "errors" if x.rng.random() < 0.4 else "latency"
    for store in x.world.callers(storage):
        if not x.hop(1):
            continue
        x.seen.add((store.cluster, store.name))
        at = x.t0 + x.rng.uniform(20, 150)
        x.symptoms(store, effect, at)
        if store.kind == "StatefulSet" and x.chance(0.3):
            x.add(x.target(store), "storage", at, schemes={"kubelet_volume"})
        x.cascade(store, effect, at, depth=2)


def _dns_failure(x: _Expansion, dns: _Service) -> None:
    x.add_root(x.target(dns), ["dns"])
    cluster = x.world._cluster(dns.cluster)
    business = [s for s in cluster.services.values() if s.type in ("web", "worker", "ingress")]
    share = 1.0 if (x.scenario.spread or 0) >= 1 else x.rng.uniform(0.25, 0.55)
    for service in x.rng.sample(business, max(1, round(len(business) * share))):
        x.symptoms(service, "errors", x.t0 + x.rng.uniform(20, 200))


def _control_plane(x: _Expansion, etcd: _Service) -> None:
    x.add_root(x.target(etcd), ["control"])
    cluster = x.world._cluster(etcd.cluster)
    jitter = x.rng.uniform
    apiserver = cluster.platform("apiserver")
    if apiserver is not None and x.chance(0.9):
        x.add(x.target(apiserver), "latency" if x.rng.random() < 0.5 else "errors", x.t0 + jitter(20, 120))
    for tech, mode, p in (
        ("kube-state-metrics", "errors", 0.5),
        ("controller-manager", "errors", 0.4),
        ("cert-manager", "errors", 0.3),
        ("gitops", "errors", 0.3),
        ("prometheus", "errors", 0.2),
        ("scheduler", "down", 0.15),
    ):
        service = cluster.platform(tech)
        if service is not None and x.chance(p):
            x.add(x.target(service), mode, x.t0 + jitter(60, 300))


def _node_failure(x: _Expansion, cluster: _Cluster, node: _Node) -> None:
    target = _Target(cluster, node=node)
    t0, jitter = x.t0, x.rng.uniform
    if x.scenario.rule is not None:
        x.add(target, None, t0, x.t1, root=True, rule=x.scenario.rule)
    else:
        x.add(target, "notready", t0, x.t1, root=True, schemes={"ksm_node"})
    x.add(target, "target_down", t0 + jitter(0, 20), schemes={"node"})
    if x.chance(0.3):
        x.add(
            target, "memory" if x.rng.random() < 0.5 else "saturation", t0 - jitter(120, 600), t0 + 30, schemes={"node"}
        )
    workloads: dict[str, _Service] = {}
    for service in cluster.services.values():
        for pod in service.pods:
            if pod.node != node.name:
                continue
            at = t0 + jitter(30, 150)
            workloads[service.name] = service
            if service.kind in ("DaemonSet", "Static"):
                continue
            if x.chance(0.9):
                x.add(x.target(service, pod), "unready", at, schemes={"ksm_pod"})
            if x.chance(0.45):
                x.add(x.target(service, pod), "target_down", at + jitter(0, 60), schemes={"app"})
            if x.chance(0.25):
                x.add(x.target(service, pod), "crash", at + jitter(30, 120), schemes={"ksm_pod"})
            if service.kind == "StatefulSet" and pod is service.pods[0] and service.type in _STORE_TYPES:
                x.add(x.target(service, pod), "down", at, schemes={"exporter"})
                x.cascade(service, "errors", at)
    for service in workloads.values():
        if service.kind in ("Deployment", "StatefulSet", "DaemonSet") and x.chance(0.7):
            x.add(x.target(service), "replicas", t0 + jitter(60, 240), schemes={"ksm_workload"})


def _node_pressure(x: _Expansion, cluster: _Cluster, node: _Node) -> None:
    target = _Target(cluster, node=node)
    if x.scenario.rule is not None:
        x.add(target, None, x.t0, x.t1, root=True, rule=x.scenario.rule)
    else:
        x.add(target, "pressure", x.t0, x.t1, root=True)
    victims = [
        (s, p)
        for s in cluster.services.values()
        if s.kind in ("Deployment", "StatefulSet")
        for p in s.pods
        if p.node == node.name
    ]
    share = 1.0 if (x.scenario.spread or 0) >= 1 else x.rng.uniform(0.2, 0.5)
    for service, pod in x.rng.sample(victims, round(len(victims) * share)):
        mode = x.rng.choice(("oom", "crash", "unready"))
        x.add(x.target(service, pod), mode, x.t0 + x.rng.uniform(30, 300), schemes={"ksm_pod"})


_SERVICE_FAULTS: dict[str, Callable[[_Expansion, _Service], None]] = {
    "db_down": _store_down,
    "cache_down": _store_down,
    "queue_down": _store_down,
    "db_saturation": _store_strain,
    "cache_memory": _store_strain,
    "db_replication": _store_strain,
    "db_disk_full": _disk_full,
    "consumer_stuck": _consumer_stuck,
    "bad_deploy": _bad_deploy,
    "global_rollout": _global_rollout,
    "memory_leak": _memory_leak,
    "ingress_failure": _ingress_failure,
    "cert_expiry": _cert_expiry,
    "storage_degraded": _storage_degraded,
    "dns_failure": _dns_failure,
    "control_plane": _control_plane,
}


def _root_options(world: World, kind: str, cluster: _Cluster) -> list[str]:
    """Components of ``cluster`` that can be the root of a ``kind`` fault."""
    services = list(cluster.services.values())

    def of(*types: str) -> list[str]:
        return [s.name for s in services if s.type in types and s.pods]

    if kind in ("node_failure", "node_pressure"):
        return [n.name for n in cluster.nodes.values() if n.role == "worker" and n.pods]
    if kind in ("db_down", "db_saturation", "db_disk_full"):
        return of("database")
    if kind == "db_replication":
        return [s.name for s in services if s.type == "database" and len(s.pods) > 1]
    if kind in ("cache_down", "cache_memory"):
        return of("cache")
    if kind == "queue_down":
        return of("queue")
    if kind == "consumer_stuck":
        return [
            s.name for s in services if s.type == "worker" and any(d.type == "queue" for d in world.dependencies(s))
        ]
    if kind == "bad_deploy":
        return [s.name for s in services if s.type == "web" and s.kind == "Deployment"]
    if kind == "global_rollout":
        return [
            s.name
            for s in services
            if s.type == "web"
            and sum(s.name in c.services for c in world.clusters) > 1
            and cluster is world.clusters[0]
        ]
    if kind == "memory_leak":
        return [s.name for s in services if s.type in ("web", "worker") and s.kind == "Deployment"]
    if kind == "ingress_failure":
        return of("ingress")
    if kind == "cert_expiry":
        return [s.name for s in services if s.public_host]
    if kind == "storage_degraded":
        return of("storage")
    if kind == "dns_failure":
        return [s.name for s in services if s.tech == "coredns"]
    if kind == "control_plane":
        return [s.name for s in services if s.tech == "etcd"]
    raise ValueError(f"unknown fault kind {kind!r}")


def _resolve_root(
    world: World, kind: str, cluster: str | None, root: str | None, rng: random.Random
) -> tuple[str, str]:
    clusters = [world._cluster(cluster)] if cluster else world.clusters
    choices = [(c.name, name) for c in clusters for name in _root_options(world, kind, c) if root in (None, name)]
    if not choices:
        raise ValueError(
            f"no root for a {kind} fault in {cluster or 'any cluster'}" + (f" named {root!r}" if root else "")
        )
    return rng.choice(choices)


# ---------------------------------------------------------------------------------------------- schedule


def _schedule(
    world: World, rng: random.Random, hours: float, faults: int | None, noise: int | None, flaps: int | None
) -> list[Scenario]:
    span = hours * 60
    n_faults = faults if faults is not None else round(span / 24 * rng.uniform(0.8, 1.2))
    n_noise = noise if noise is not None else round(hours * rng.uniform(8, 13))
    n_flaps = flaps if flaps is not None else max(1, round(hours / 6))
    feasible = {k: w for k, w in world.style.weights.items() if any(_root_options(world, k, c) for c in world.clusters)}
    kinds, weights = list(feasible), list(feasible.values())
    scenarios: list[Scenario] = []
    for _ in range(n_faults):
        kind = rng.choices(kinds, weights)[0]
        duration = min(span * 0.5, max(5.0, min(120.0, rng.lognormvariate(math.log(20), 0.7))))
        start = rng.uniform(0, max(1.0, span - duration - 10))
        cluster_name, root = _resolve_root(world, kind, None, None, rng)
        scenarios.append(Scenario(kind, round(start, 3), round(duration, 3), cluster_name, root))
    # overlap: move some faults next to another one, on an unrelated component of the same cluster
    for i in range(len(scenarios)):
        if rng.random() >= world.style.overlap or len(scenarios) < 2:
            continue
        j = rng.choice([k for k in range(len(scenarios)) if k != i])
        anchor, moved = scenarios[j], scenarios[i]
        if "global_rollout" in (anchor.kind, moved.kind) or anchor.cluster is None:
            continue
        options = world.unrelated_roots(moved.kind, anchor.cluster, anchor.root or "")
        if options:
            start = min(max(0.0, anchor.start_min + rng.uniform(-6, 15)), max(0.0, span - moved.duration_min - 10))
            scenarios[i] = replace(moved, start_min=round(start, 3), cluster=anchor.cluster, root=rng.choice(options))
    # recurrences: an earlier fault's root alert again, at least 2 h after it ended
    for j in range(len(scenarios)):
        if rng.random() >= world.style.recurrence:
            continue
        earlier = scenarios[j]
        earliest = earlier.start_min + earlier.duration_min + 120
        latest = span - earlier.duration_min - 10
        if earliest < latest:
            start = rng.uniform(earliest, latest)
            scenarios.append(replace(earlier, start_min=round(start, 3), repeat_of=j))
    for _ in range(n_noise):
        duration = min(360.0, max(2.5, rng.lognormvariate(math.log(20), 1.0)), span - 5)
        start = rng.uniform(0, max(0.0, span - duration - 5))
        scenarios.append(Scenario("noise", round(start, 3), round(duration, 3)))
    for _ in range(n_flaps):
        start = rng.uniform(0, min(30.0, span / 4))
        scenarios.append(Scenario("flap", round(start, 3), round(span - start - 5, 3)))
    return scenarios


# ---------------------------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m knowledge.correlation.generator --seed N --hours H --out DIR``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--hours", type=float, default=6.0)
    parser.add_argument("--faults", type=int)
    parser.add_argument("--noise", type=int)
    parser.add_argument("--clusters", type=int)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--plain", action="store_true", help="write storm.jsonl instead of storm.jsonl.gz")
    args = parser.parse_args(argv)
    stream = generate(args.seed, hours=args.hours, faults=args.faults, noise=args.noise, clusters=args.clusters)
    lines_path, topology_path = stream.write(args.out, compress=not args.plain)
    incidents = len({line["truth"]["incident"] for line in stream.lines})
    print(f"{lines_path}: {len(stream.lines)} lines, {incidents} incidents; {topology_path}")


if __name__ == "__main__":
    main()
