"""Benchmark of the alert-ingest webhook (``POST /alerts/alertmanager``) on SQLite and PostgreSQL.

What it measures, per database and run, each phase against a service of its own (fresh SQLite state dir, or
an emptied PostgreSQL database; ``incibot db upgrade``; ``incibot serve``; SIGTERM and wait at the end):

1. Throughput: accepted (202) requests/s at concurrency 16. wrk (``-t2 -c16``) with ``bench/wrk/alertmanager.lua``
   sends exactly ``--requests`` single-alert Alertmanager v4 webhooks, every one with a label set of its own, and
   stops; requests/s = 202 answers / time from the first request to the last answer.
2. Latency: p99 at a fixed 1,000 requests/s. Debian's wrk 4.1.0 has no ``-R`` (that is wrk2, which Debian does not
   package), so this file has an open-loop generator: asyncio (uvloop), raw HTTP/1.1 on 32 keep-alive
   connections; request i is due at start + i/rate whatever happened to earlier ones, and its latency is measured
   from that due time, so a slow server cannot slow the schedule down (no coordinated omission). The first
   ``--warmup-seconds`` are sent and checked but left out of the percentiles.
3. Small webhooks while one huge group is applied: a single ``--big-alerts`` (20,000) alert Alertmanager group is
   posted (one delivery, about 6 MB); once it is accepted, single-alert webhooks are sent at ``--big-rate`` req/s
   for ``--big-seconds`` with the open-loop generator while the worker applies the group in chunks. Reported: the
   small webhooks' p99 (target < 250 ms, every one a 202, no 503) and whether the group was still being applied
   when the last one was answered; then how fast it is applied: the time until it is fully applied, or (checked:
   exactly what was applied is in the incident) how far it got when ``--big-timeout`` (60 s) after its 202 the
   service is stopped.
4. Correctness, after each phase (server stopped): the ``alerts`` table holds exactly one row per label set sent,
   with the expected fingerprint and labels, ``deliveries`` one row per request, and every answer was a 202 with
   no socket error. Anything else is printed loudly and makes the exit status 1.

The service runs with its defaults: SQLite in WAL mode with synchronous=NORMAL, the processing worker running.
Medians over ``--runs`` runs are printed next to the targets and written to ``bench/results/ingest.json``.

Run (about 3 minutes on 2 cores for a service that meets the targets; a slower one takes longer, as every
request must be answered)::

    .venv/bin/python bench/ingest.py --db both

Options: ``--db sqlite|postgres|both``, ``--runs N``, ``--requests N``, ``--phases throughput,latency,big``,
``--pg-url URL`` (a database whose name contains "bench": it is wiped; it is created if missing). A run of some
phases only replaces those phases' figures in the results file and keeps the others.

Exit status: 0 every check passed (targets may still
be missed: see the table), 1 a check failed, 2 the benchmark could not run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import math
import os
import platform
import resource
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import uvloop
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import SQLAlchemyError

from knowledge.fingerprint import labels_fingerprint

BENCH_DIR = Path(__file__).resolve().parent
LUA_SCRIPT = BENCH_DIR / "wrk" / "alertmanager.lua"
CACHE_DIR = BENCH_DIR / ".cache"
DEFAULT_OUTPUT = BENCH_DIR / "results" / "ingest.json"
DEFAULT_PG_URL = "postgresql+psycopg://incibot:incibot@127.0.0.1/incibot_bench"
TOKEN = "bench-token"  # noqa: S105  # the throwaway token of a service on 127.0.0.1
PATH = "/alerts/alertmanager"
ALERTNAME = "BenchIngest"  # the label sets must match bench/wrk/alertmanager.lua
STARTS_AT = "2026-03-10T09:00:00Z"
LATENCY_TOOL = "bench/ingest.py open-loop generator (asyncio+uvloop, latency from the scheduled send time)"


@dataclass(frozen=True)
class Targets:
    min_accepted_rps: float
    max_p99_ms: float | None
    max_small_p99_during_big_ms: float = 250.0


TARGETS = {"sqlite": Targets(2000, 50.0), "postgres": Targets(1000, None)}
PHASES = ("throughput", "latency", "big")
BIG_GROUP_KEY = f'{{}}:{{alertname="{ALERTNAME}"}}'

NOISY_OTHER_PCT = 20.0  # CPU (% of a core) used by processes outside the benchmark before a run is called noisy


class BenchError(Exception):
    """The benchmark could not run (a tool is missing, the service did not start, ...)."""


class PhaseFailed(Exception):
    """A phase ran but a check failed: carries the run so that it is reported."""

    def __init__(self, run: ThroughputRun | LatencyRun | BigGroupRun) -> None:
        super().__init__("check failed")
        self.run = run


@dataclass(frozen=True)
class Config:
    databases: tuple[str, ...]
    runs: int
    requests: int
    threads: int
    connections: int
    rate: int
    rate_seconds: float
    warmup_seconds: float
    rate_connections: int
    pg_url: str
    incibot: Path
    wrk: Path
    output: Path
    keep: bool
    phases: tuple[str, ...] = PHASES
    big_alerts: int = 20_000
    big_rate: int = 50
    big_seconds: float = 20.0
    big_timeout: float = 60.0

    @property
    def rate_requests(self) -> int:
        return round(self.rate * (self.rate_seconds + self.warmup_seconds))

    @property
    def warmup_requests(self) -> int:
        return round(self.rate * self.warmup_seconds)


def parse_args(argv: Sequence[str] | None = None) -> Config:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--runs", type=int, default=3, help="runs per database (default 3); medians are reported")
    parser.add_argument("--requests", type=int, default=20_000, help="webhooks per throughput run (default 20000)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (default 16)")
    parser.add_argument("--rate", type=int, default=1000, help="fixed rate of the latency phase, req/s (1000)")
    parser.add_argument("--rate-seconds", type=float, default=10.0, help="measured seconds at that rate (10)")
    parser.add_argument("--warmup-seconds", type=float, default=1.0, help="unmeasured seconds before that (1)")
    parser.add_argument("--rate-connections", type=int, default=32, help="connections of the generator (32)")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL, help="PostgreSQL database to use (it is wiped)")
    parser.add_argument("--incibot", type=Path, default=Path(sys.executable).parent / "incibot")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON results file")
    parser.add_argument("--keep", action="store_true", help="keep each phase's state dir and logs")
    parser.add_argument("--phases", default=",".join(PHASES), help="comma-separated subset of: " + ", ".join(PHASES))
    parser.add_argument("--big-alerts", type=int, default=20_000, help="alerts in the huge group (20000)")
    parser.add_argument("--big-rate", type=int, default=50, help="small webhooks/s while it is applied (50)")
    parser.add_argument("--big-seconds", type=float, default=20.0, help="seconds of small webhooks (20)")
    parser.add_argument(
        "--big-timeout", type=float, default=60.0, help="seconds from its 202 to stopping the service at most (60)"
    )
    args = parser.parse_args(argv)
    phases = tuple(phase for phase in PHASES if phase in args.phases.split(","))
    if not phases or set(args.phases.split(",")) - set(PHASES):
        parser.error(f"--phases takes a comma-separated subset of {', '.join(PHASES)}")
    if args.runs < 1 or args.requests < args.threads or args.connections < args.threads or args.rate < 1:
        parser.error("need --runs >= 1, --requests >= --threads, --connections >= --threads, --rate >= 1")
    wrk = shutil.which("wrk")
    if wrk is None and "throughput" in phases:
        parser.error("wrk is not installed (apt-get install wrk), and the throughput phase needs it")
    if not args.incibot.exists():
        parser.error(f"{args.incibot} not found: run with the project's .venv/bin/python, or pass --incibot")
    return Config(
        databases=("sqlite", "postgres") if args.db == "both" else (args.db,),
        runs=args.runs,
        requests=args.requests,
        threads=args.threads,
        connections=args.connections,
        rate=args.rate,
        rate_seconds=args.rate_seconds,
        warmup_seconds=args.warmup_seconds,
        rate_connections=args.rate_connections,
        pg_url=args.pg_url,
        incibot=args.incibot,
        wrk=Path(wrk or "wrk"),
        output=args.output,
        keep=args.keep,
        phases=phases,
        big_alerts=args.big_alerts,
        big_rate=args.big_rate,
        big_seconds=args.big_seconds,
        big_timeout=args.big_timeout,
    )


# --- databases ---------------------------------------------------------------------------------------------------


class Backend(Protocol):
    name: str

    def prepare(self, state_dir: Path) -> dict[str, str]:
        """Make an empty database for one phase; returns the INCIBOT_* settings that point the service at it."""
        ...

    def url(self, state_dir: Path) -> str:
        """The SQLAlchemy URL of the phase's database, to check what was stored."""
        ...

    def info(self) -> dict[str, str]: ...


class SqliteBackend:
    """The service's default: a SQLite file in the state dir, WAL + synchronous=NORMAL (set by the service)."""

    name = "sqlite"

    def prepare(self, state_dir: Path) -> dict[str, str]:
        return {}  # a fresh state dir is a fresh database

    def url(self, state_dir: Path) -> str:
        return f"sqlite:///{state_dir / 'incibot.db'}"

    def info(self) -> dict[str, str]:
        return {"sqlite_version": sqlite3.sqlite_version, "durability": "WAL, synchronous=NORMAL (service default)"}


class PostgresBackend:
    """A PostgreSQL database that the benchmark owns: created if missing, its public schema emptied per phase."""

    name = "postgres"

    def __init__(self, url: str) -> None:
        database = make_url(url).database or ""
        if "bench" not in database:
            raise BenchError(f"refusing to wipe database {database!r}: --pg-url must name a database with 'bench'")
        self._url = url
        self._ensure_database()

    def _ensure_database(self) -> None:
        parsed = make_url(self._url)
        maintenance = parsed.set(database="postgres").render_as_string(hide_password=False)
        with connect(maintenance, isolation_level="AUTOCOMMIT") as connection:
            exists = connection.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": parsed.database})
            if not exists:
                quoted = connection.dialect.identifier_preparer.quote(parsed.database or "")
                connection.execute(text("CREATE DATABASE " + quoted))

    def prepare(self, state_dir: Path) -> dict[str, str]:
        with connect(self._url) as connection:
            connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
            connection.commit()
        return {"INCIBOT_DATABASE_URL": self._url}

    def url(self, state_dir: Path) -> str:
        return self._url

    def info(self) -> dict[str, str]:
        names = ("server_version", "fsync", "synchronous_commit", "wal_sync_method", "shared_buffers")
        with connect(self._url) as connection:
            settings = {name: str(connection.scalar(text("SELECT current_setting(:n)"), {"n": name})) for name in names}
        return {"postgres_url": _safe(self._url), **{f"postgres_{key}": value for key, value in settings.items()}}


@contextlib.contextmanager
def connect(url: str, **options: Any) -> Iterator[Connection]:
    """A connection on an engine of its own; a database error becomes a :class:`BenchError`."""
    engine = create_engine(url, **options)
    try:
        with engine.connect() as connection:
            yield connection
    except SQLAlchemyError as exc:
        raise BenchError(f"database error on {_safe(url)}: {_first_line(exc)}") from None
    finally:
        engine.dispose()


def _safe(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0]


# --- what is sent, and whether it was stored ---------------------------------------------------------------------


def alert_labels(instance: str) -> dict[str, str]:
    """The label set of one benchmark alert (the same as bench/wrk/alertmanager.lua builds)."""
    return {"alertname": ALERTNAME, "severity": "warning", "job": "bench", "instance": instance}


def wrk_instances(requests: int, threads: int) -> list[str]:
    """The ``instance`` labels wrk sends: thread k sends wrk-k-1 .. wrk-k-quota(k)."""
    instances = []
    for thread in range(threads):
        quota = requests // threads + (1 if thread < requests % threads else 0)
        instances += [f"wrk-{thread}-{i}" for i in range(1, quota + 1)]
    return instances


def webhook_body(instance: str) -> bytes:
    """A single-alert Alertmanager v4 webhook, grouped by alertname and instance."""
    return group_body([instance], f'{{}}:{{alertname="{ALERTNAME}", instance="{instance}"}}')


def group_body(instances: Sequence[str], group_key: str) -> bytes:
    """An Alertmanager v4 webhook of one group with an alert per instance."""
    payload = {
        "version": "4",
        "groupKey": group_key,
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "bench",
        "groupLabels": {"alertname": ALERTNAME},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://am",
        "alerts": [
            {
                "status": "firing",
                "labels": alert_labels(instance),
                "annotations": {"summary": f"bench alert {instance}"},
                "startsAt": STARTS_AT,
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prom",
            }
            for instance in instances
        ],
    }
    return json.dumps(payload, separators=(",", ":")).encode()


@dataclass(frozen=True)
class StoreCheck:
    """What the database holds after a phase, against what was sent."""

    expected: int
    expected_deliveries: int
    alert_rows: int
    distinct_fingerprints: int
    missing: int
    unexpected: int
    wrong_labels: int
    deliveries: int
    deliveries_pending: int  # not yet processed into incidents by the worker when the service stopped

    @property
    def ok(self) -> bool:
        exact = self.alert_rows == self.distinct_fingerprints == self.expected
        exact = exact and self.deliveries == self.expected_deliveries
        return exact and self.missing == self.unexpected == self.wrong_labels == 0

    def describe(self) -> str:
        verdict = "ok" if self.ok else "MISMATCH"
        return (
            f"stored {self.alert_rows:,} alerts / {self.distinct_fingerprints:,} fingerprints / "
            f"{self.deliveries:,} deliveries for {self.expected:,} alerts in {self.expected_deliveries:,}"
            f" webhooks: {verdict}"
            + (
                ""
                if self.ok
                else f" (missing {self.missing}, unexpected {self.unexpected}, wrong labels {self.wrong_labels})"
            )
        )


def check_store(url: str, instances: Sequence[str], deliveries_sent: int | None = None) -> StoreCheck:
    """Compare the ``alerts`` and ``deliveries`` tables with the label sets sent (one webhook each, unless
    ``deliveries_sent`` says how many webhooks carried them)."""
    expected = {labels_fingerprint(alert_labels(i)): alert_labels(i) for i in instances}
    with connect(url) as connection:
        rows = connection.execute(text("SELECT fingerprint, labels FROM alerts")).all()
        deliveries = connection.scalar(text("SELECT count(*) FROM deliveries")) or 0
        pending = connection.scalar(text("SELECT count(*) FROM deliveries WHERE status = 'pending'")) or 0
    stored = {fingerprint: _as_dict(labels) for fingerprint, labels in rows}
    return StoreCheck(
        expected=len(instances),
        expected_deliveries=len(instances) if deliveries_sent is None else deliveries_sent,
        alert_rows=len(rows),
        distinct_fingerprints=len(stored),
        missing=len(expected.keys() - stored.keys()),
        unexpected=len(stored.keys() - expected.keys()),
        wrong_labels=sum(1 for fp, labels in stored.items() if fp in expected and labels != expected[fp]),
        deliveries=deliveries,
        deliveries_pending=pending,
    )


def _as_dict(labels: object) -> dict[str, str]:
    parsed = json.loads(labels) if isinstance(labels, str) else labels  # SQLite gives text, PostgreSQL a dict
    return dict(parsed) if isinstance(parsed, Mapping) else {}


# --- CPU accounting (from /proc: which side is CPU bound) --------------------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class CpuSample:
    at: float
    service: float  # CPU seconds of the service: the serve process and its descendants (a worker process, ...)
    postgres: float  # CPU seconds of all processes named postgres
    children: float  # CPU seconds of this script's waited-for children (wrk)
    self_: float  # CPU seconds of this script (the open-loop generator)
    busy: float  # machine-wide busy and total CPU seconds
    total: float


@dataclass(frozen=True)
class _Process:
    pid: int
    parent: int
    name: str
    cpu: float  # seconds, user + system


def _stat(path: Path) -> tuple[str, int, float]:
    """A process's or thread's ``stat`` file (``/proc/<pid>`` or ``/proc/<pid>/task/<tid>``): its name, parent and
    CPU seconds (user + system)."""
    head, _, tail = (path / "stat").read_text().rpartition(")")
    fields = tail.split()  # state, ppid, ... utime (12th), stime (13th)
    return head.partition("(")[2], int(fields[1]), (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _processes() -> list[_Process]:
    processes = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):  # gone, or not ours to read
                name, parent, cpu = _stat(entry)
                processes.append(_Process(int(entry.name), parent, name, cpu))
    return processes


def _tree(processes: Sequence[_Process], root: int) -> set[int]:
    """``root`` and all its descendants."""
    tree, grew = {root}, True
    while grew:
        grown = tree | {process.pid for process in processes if process.parent in tree}
        grew, tree = grown != tree, grown
    return tree


def _tree_cpu(processes: Sequence[_Process], root: int) -> float:
    """CPU seconds of ``root`` and all its descendants."""
    tree = _tree(processes, root)
    return sum(process.cpu for process in processes if process.pid in tree)


def thread_cpu(root: int) -> dict[str, float]:
    """CPU seconds of each thread of ``root`` and its descendants, summed by ``process/thread`` name (incibot's
    threads carry their names into the operating system: ``bot.threads``; a process's main thread has its name)."""
    processes = _processes()
    tree = _tree(processes, root)
    seconds: dict[str, float] = {}
    for process in processes:
        if process.pid not in tree:
            continue
        tasks: list[Path] = []
        with contextlib.suppress(OSError):  # the process ended meanwhile
            tasks = list(Path(f"/proc/{process.pid}/task").iterdir())
        for task in tasks:
            with contextlib.suppress(OSError, IndexError, ValueError):  # the thread ended meanwhile
                name, _, cpu = _stat(task)
                key = f"{process.name}/{name}"
                seconds[key] = seconds.get(key, 0.0) + cpu
    return seconds


def thread_cpu_used(before: dict[str, float], after: dict[str, float], *, least: float = 0.05) -> dict[str, float]:
    """CPU seconds each thread name used between two :func:`thread_cpu` samples (at least ``least``), most first."""
    used = {name: round(seconds - before.get(name, 0.0), 2) for name, seconds in after.items()}
    return dict(sorted(((n, s) for n, s in used.items() if s >= least), key=lambda item: -item[1]))


def sample_cpu(service_pid: int) -> CpuSample:
    ticks = [int(value) for value in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = ticks[3] + ticks[4]  # idle + iowait
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = resource.getrusage(resource.RUSAGE_SELF)
    processes = _processes()
    return CpuSample(
        at=time.monotonic(),
        service=_tree_cpu(processes, service_pid),
        postgres=sum(process.cpu for process in processes if process.name == "postgres"),
        children=children.ru_utime + children.ru_stime,
        self_=own.ru_utime + own.ru_stime,
        busy=(sum(ticks[:8]) - idle) / CLOCK_TICKS,
        total=sum(ticks[:8]) / CLOCK_TICKS,
    )


def cpu_usage(before: CpuSample, after: CpuSample, client: str) -> dict[str, float]:
    """Percent of one core used by each side between two samples; ``machine`` is percent of all cores."""
    wall = max(after.at - before.at, 1e-9)

    def pct(seconds: float) -> float:
        return round(100 * seconds / wall, 1)

    client_seconds = after.children - before.children if client == "wrk" else after.self_ - before.self_
    service, postgres = after.service - before.service, after.postgres - before.postgres
    busy = after.busy - before.busy
    return {
        "service_pct": pct(service),
        "postgres_pct": pct(postgres),
        f"{client}_pct": pct(client_seconds),
        "other_pct": pct(max(0.0, busy - service - postgres - client_seconds)),
        "machine_pct": round(100 * busy / max(after.total - before.total, 1e-9), 1),
    }


# --- the service -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Service:
    pid: int
    port: int


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _service_env(state_dir: Path, settings: Mapping[str, str]) -> dict[str, str]:
    """The service's defaults: nothing of the caller's incibot or Slack settings (no real Slack is posted to)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("INCIBOT_", "SLACK_"))}
    env.update(INCIBOT_STATE_DIR=str(state_dir), INCIBOT_INGEST_TOKENS=TOKEN, **settings)
    return env


def _upgrade(cfg: Config, env: Mapping[str, str]) -> None:
    done = subprocess.run(
        [str(cfg.incibot), "db", "upgrade"], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    if done.returncode != 0:
        raise BenchError(f"incibot db upgrade failed ({done.returncode}): {done.stderr.strip()[-2000:]}")


def _wait_healthy(process: subprocess.Popen[bytes], port: int, log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"incibot serve exited with {process.returncode}:\n{_tail(log)}")
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        try:
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        finally:
            connection.close()
        time.sleep(0.1)
    raise BenchError(f"incibot serve was not healthy within {timeout:.0f} s:\n{_tail(log)}")


def _stop(process: subprocess.Popen[bytes], log: Path, timeout: float = 60.0) -> float:
    """SIGTERM, then wait; returns the seconds the service took to stop."""
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise BenchError(
            f"incibot serve did not stop within {timeout:.0f} s of SIGTERM; killed:\n{_tail(log)}"
        ) from None
    if process.returncode != 0:
        raise BenchError(f"incibot serve exited with {process.returncode} after SIGTERM:\n{_tail(log)}")
    return time.monotonic() - started


def _tail(log: Path, lines: int = 20) -> str:
    text_lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    return "\n".join("    " + line for line in text_lines[-lines:])


@contextlib.contextmanager
def running_service(cfg: Config, backend: Backend, state_dir: Path, stats: dict[str, float]) -> Iterator[Service]:
    """Empty database, ``incibot db upgrade``, ``incibot serve``; SIGTERM and wait on the way out."""
    env = _service_env(state_dir, backend.prepare(state_dir))
    _upgrade(cfg, env)
    port = _free_port()
    log = state_dir / "server.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [str(cfg.incibot), "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_healthy(process, port, log)
        yield Service(process.pid, port)
    finally:
        if process.poll() is None:
            stats["stop_seconds"] = round(_stop(process, log), 2)
        elif process.returncode != 0:
            raise BenchError(f"incibot serve died with {process.returncode}:\n{_tail(log)}")


@contextlib.contextmanager
def phase_dir(cfg: Config, label: str) -> Iterator[Path]:
    CACHE_DIR.mkdir(exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=f"{label}-", dir=CACHE_DIR))
    failed = True
    try:
        yield path
        failed = False
    finally:
        if failed or cfg.keep:
            print(f"    state and logs kept in {path}", file=sys.stderr)
        else:
            shutil.rmtree(path, ignore_errors=True)


# --- phase 1: throughput with wrk --------------------------------------------------------------------------------


@dataclass
class ThroughputRun:
    accepted_rps: float
    seconds: float
    sent: int
    answered: int
    statuses: dict[str, int]
    socket_errors: dict[str, int]
    wrk_latency_ms: dict[str, float]
    cpu: dict[str, float]
    store: StoreCheck
    service: dict[str, float] = field(default_factory=dict)

    @property
    def non_202(self) -> int:
        return sum(count for status, count in self.statuses.items() if status != "202")

    @property
    def socket_error_count(self) -> int:
        return sum(count for kind, count in self.socket_errors.items() if kind != "status")

    @property
    def ok(self) -> bool:
        complete = self.answered == self.sent == self.store.expected
        return complete and self.non_202 == 0 and self.socket_error_count == 0 and self.store.ok


def run_wrk(cfg: Config, port: int, *script_args: str) -> dict[str, Any]:
    """Run wrk until each thread reports its quota answered, then SIGINT it; returns the script's result.
    ``script_args`` go to the Lua script after TOTAL THREADS TOKEN (``api``: Alertmanager's own API)."""
    limit = 30 + cfg.requests // 100  # seconds; a bound only: a run normally ends long before
    command = [str(cfg.wrk), "-t", str(cfg.threads), "-c", str(cfg.connections), "-d", f"{limit}s"]
    command += ["--timeout", "60s", "-s", str(LUA_SCRIPT), f"http://127.0.0.1:{port}/"]
    command += ["--", str(cfg.requests), str(cfg.threads), TOKEN, *script_args]
    output: list[str] = []
    done_threads = 0
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as process:
        assert process.stdout is not None
        try:
            for line in process.stdout:
                output.append(line)
                done_threads += line.startswith("bench-thread-done ")
                if done_threads == cfg.threads:
                    process.send_signal(signal.SIGINT)  # wrk sleeps until -d otherwise; SIGINT makes it report now
                    break
            output += process.stdout.read().splitlines(keepends=True)
            process.wait(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
    results = [line.removeprefix("bench-result ") for line in output if line.startswith("bench-result ")]
    if not results:
        raise BenchError(f"wrk gave no result (exit {process.returncode}):\n{''.join(output)[-3000:]}")
    result: dict[str, Any] = json.loads(results[-1])
    result["all_threads_done"] = done_threads == cfg.threads
    return result


def throughput_run(cfg: Config, backend: Backend, label: str) -> ThroughputRun:
    service_stats: dict[str, float] = {}
    with phase_dir(cfg, label) as state_dir:
        with running_service(cfg, backend, state_dir, service_stats) as service:
            before = sample_cpu(service.pid)
            result = run_wrk(cfg, service.port)
            cpu = cpu_usage(before, sample_cpu(service.pid), "wrk")
        store = check_store(backend.url(state_dir), wrk_instances(cfg.requests, cfg.threads))
        statuses = {str(status): int(count) for status, count in result["statuses"].items()}
        seconds = float(result["seconds"])
        run = ThroughputRun(
            accepted_rps=round(statuses.get("202", 0) / seconds, 1) if seconds > 0 else 0.0,
            seconds=round(seconds, 3),
            sent=int(result["sent"]),
            answered=int(result["received"]),
            statuses=statuses,
            socket_errors={kind: int(count) for kind, count in result["errors"].items()},
            wrk_latency_ms={key: round(value / 1000, 2) for key, value in result["latency_us"].items()},
            cpu=cpu,
            store=store,
            service=service_stats,
        )
        if not result["all_threads_done"]:
            print(f"!!! wrk stopped at its time limit: {run.answered:,} of {cfg.requests:,} answered", file=sys.stderr)
        if not run.ok:
            raise PhaseFailed(run)
        return run


# --- phase 2: latency at a fixed rate, open loop -----------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    due: float  # when the schedule said to send it
    dispatched: float  # when the generator handed it to a connection (lateness of the generator itself)
    answered: float
    status: int  # 0: no answer (socket error or timeout)


class _Connection:
    """One keep-alive HTTP/1.1 connection; answers are read by Content-Length."""

    def __init__(self, port: int) -> None:
        self._port = port
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def connect(self) -> None:
        if self._streams is None:
            self._streams = await asyncio.open_connection("127.0.0.1", self._port)

    async def post(self, request: bytes) -> int:
        await self.connect()
        assert self._streams is not None
        reader, writer = self._streams
        try:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            await reader.readexactly(_content_length(head))
            return int(head[9:12])
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            self.close()
            raise

    def close(self) -> None:
        if self._streams is not None:
            self._streams[1].close()
            self._streams = None


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    raise ValueError("answer without Content-Length")


def _http_request(port: int, body: bytes) -> bytes:
    head = (
        f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {TOKEN}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _send_all(
    connection: _Connection,
    queue: asyncio.Queue[tuple[int, float, float] | None],
    requests: Sequence[bytes],
    samples: list[Sample | None],
) -> None:
    while (item := await queue.get()) is not None:
        index, due, dispatched = item
        try:
            async with asyncio.timeout(60):
                status = await connection.post(requests[index])
        except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            connection.close()
            status = 0
        samples[index] = Sample(due, dispatched, time.perf_counter(), status)


async def open_loop(port: int, requests: Sequence[bytes], rate: float, connections: int) -> list[Sample | None]:
    """Send ``requests[i]`` at start + i/rate on a pool of connections; a busy pool queues, the clock runs on."""
    pool = [_Connection(port) for _ in range(connections)]
    await asyncio.gather(*(connection.connect() for connection in pool))  # before the clock starts
    queue: asyncio.Queue[tuple[int, float, float] | None] = asyncio.Queue()
    samples: list[Sample | None] = [None] * len(requests)
    senders = [asyncio.create_task(_send_all(connection, queue, requests, samples)) for connection in pool]
    start = time.perf_counter() + 0.01
    index = 0
    while index < len(requests):
        now = time.perf_counter()
        while index < len(requests) and start + index / rate <= now:
            queue.put_nowait((index, start + index / rate, now))
            index += 1
        if index < len(requests):
            await asyncio.sleep(max(start + index / rate - time.perf_counter(), 0.0005))
    for _ in pool:
        queue.put_nowait(None)
    await asyncio.gather(*senders)
    for connection in pool:
        connection.close()
    return samples


def percentile(sorted_values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return math.nan
    return sorted_values[max(0, math.ceil(pct / 100 * len(sorted_values)) - 1)]


@dataclass
class LatencyRun:
    rate: int
    sent: int
    measured: int
    achieved_rps: float  # the generator's sending rate over the measured requests
    answered_rps: float  # the service's answering rate over them: below the rate, it could not keep up
    latency_ms: dict[str, float]
    generator_lag_p99_ms: float
    statuses: dict[str, int]
    cpu: dict[str, float]
    store: StoreCheck
    service: dict[str, float] = field(default_factory=dict)

    @property
    def p99_ms(self) -> float:
        return self.latency_ms["p99"]

    @property
    def ok(self) -> bool:
        return set(self.statuses) == {"202"} and self.statuses["202"] == self.sent and self.store.ok


def summarize_latency(warmup_requests: int, samples: Sequence[Sample | None]) -> dict[str, Any]:
    answered = [sample for sample in samples if sample is not None]
    measured = answered[warmup_requests:]
    latencies = sorted(1000 * (sample.answered - sample.due) for sample in measured)
    lags = sorted(1000 * (sample.dispatched - sample.due) for sample in measured)
    sending = max(sample.dispatched for sample in measured) - min(sample.dispatched for sample in measured)
    answering = max(sample.answered for sample in measured) - min(sample.due for sample in measured)
    return {
        "measured": len(measured),
        "achieved_rps": round((len(measured) - 1) / sending, 1) if sending > 0 else math.nan,
        "answered_rps": round(len(measured) / answering, 1) if answering > 0 else math.nan,
        "latency_ms": {
            name: round(percentile(latencies, pct), 2)
            for name, pct in (("p50", 50), ("p90", 90), ("p99", 99), ("p99.9", 99.9), ("max", 100))
        },
        "generator_lag_p99_ms": round(percentile(lags, 99), 2),
        "statuses": dict(Counter(str(sample.status) for sample in answered)),
    }


def latency_run(cfg: Config, backend: Backend, label: str) -> LatencyRun:
    service_stats: dict[str, float] = {}
    instances = [f"rate-{i}" for i in range(cfg.rate_requests)]
    with phase_dir(cfg, label) as state_dir:
        with running_service(cfg, backend, state_dir, service_stats) as service:
            requests = [_http_request(service.port, webhook_body(instance)) for instance in instances]
            before = sample_cpu(service.pid)
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                samples = runner.run(open_loop(service.port, requests, cfg.rate, cfg.rate_connections))
            cpu = cpu_usage(before, sample_cpu(service.pid), "generator")
        summary = summarize_latency(cfg.warmup_requests, samples)
        run = LatencyRun(
            rate=cfg.rate,
            sent=len(requests),
            cpu=cpu,
            store=check_store(backend.url(state_dir), instances),
            service=service_stats,
            **summary,
        )
        if not run.ok:
            raise PhaseFailed(run)
        return run


# --- phase 3: small webhooks while one huge group is applied -----------------------------------------------------


@dataclass
class BigGroupRun:
    alerts: int
    body_bytes: int
    accept_status: int
    accept_seconds: float
    small_rate: int
    small_sent: int
    measured: int
    achieved_rps: float
    answered_rps: float
    latency_ms: dict[str, float]
    generator_lag_p99_ms: float
    statuses: dict[str, int]
    applying_throughout: bool  # the group was still being applied when the last small webhook was answered
    events_applied_at_end: int  # of the group, when the last small webhook was answered
    apply_seconds: float | None  # from the group's 202 until it was fully applied; None: not within --big-timeout
    events_applied_at_stop: int  # of the group, when the service was stopped
    applied_per_second: float  # events of the group applied per second, from its 202 to the stop
    group_incident_alerts: int
    cpu: dict[str, float]
    store: StoreCheck
    service: dict[str, float] = field(default_factory=dict)

    @property
    def p99_ms(self) -> float:
        return self.latency_ms["p99"]

    @property
    def ok(self) -> bool:
        small = set(self.statuses) == {"202"} and self.statuses["202"] == self.small_sent
        # Whatever was applied when the service stopped is in the incident, exactly once.
        applied = self.group_incident_alerts == self.events_applied_at_stop
        return self.accept_status == 202 and small and applied and self.store.ok


def _post_once(port: int, body: bytes, timeout: float) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        connection.request("POST", PATH, body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def _wait_for_log(log: Path, line: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while line not in log.read_text(errors="replace"):
        if time.monotonic() > deadline:
            raise BenchError(f"no {line!r} in the service's log within {timeout:.0f} s:\n{_tail(log)}")
        time.sleep(0.5)


def _group_progress(url: str) -> tuple[str, int]:
    """(status, events applied) of the big group's delivery: the first one."""
    with connect(url) as connection:
        row = connection.execute(text("SELECT status, events_applied FROM deliveries ORDER BY id LIMIT 1")).one()
    return str(row.status), int(row.events_applied)


def _group_incident_alerts(url: str) -> int:
    with connect(url) as connection:
        query = "SELECT alert_count FROM incidents WHERE group_key = :key"
        return int(connection.scalar(text(query), {"key": f"alertmanager:{BIG_GROUP_KEY}"}) or 0)


def big_group_run(cfg: Config, backend: Backend, label: str) -> BigGroupRun:
    service_stats: dict[str, float] = {}
    big = [f"big-{i}" for i in range(cfg.big_alerts)]
    small = [f"small-{i}" for i in range(round(cfg.big_rate * cfg.big_seconds))]
    with phase_dir(cfg, label) as state_dir:
        url = backend.url(state_dir)
        with running_service(cfg, backend, state_dir, service_stats) as service:
            # The worker process loads the embedding model first: measure once it applies deliveries.
            _wait_for_log(state_dir / "server.log", "incibot started (worker", timeout=300)
            body = group_body(big, BIG_GROUP_KEY)
            requests = [_http_request(service.port, webhook_body(instance)) for instance in small]
            before = sample_cpu(service.pid)
            sent_at = time.monotonic()
            accept_status = _post_once(service.port, body, timeout=120)
            accepted_at = time.monotonic()
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                samples = runner.run(open_loop(service.port, requests, cfg.big_rate, cfg.rate_connections))
            status, applied_at_end = _group_progress(url)
            applied = applied_at_end
            apply_seconds: float | None = None
            while time.monotonic() - accepted_at < cfg.big_timeout:
                if status == "done":
                    apply_seconds = round(time.monotonic() - accepted_at, 1)
                    break
                time.sleep(0.5)
                status, applied = _group_progress(url)
            applying_for = time.monotonic() - accepted_at
            cpu = cpu_usage(before, sample_cpu(service.pid), "generator")
        _status, applied = _group_progress(url)  # the service has stopped: nothing moves any more
        summary = summarize_latency(0, samples)
        run = BigGroupRun(
            alerts=len(big),
            body_bytes=len(body),
            accept_status=accept_status,
            accept_seconds=round(accepted_at - sent_at, 2),
            small_rate=cfg.big_rate,
            small_sent=len(requests),
            applying_throughout=applied_at_end < len(big),
            events_applied_at_end=applied_at_end,
            apply_seconds=apply_seconds,
            events_applied_at_stop=applied,
            applied_per_second=round(applied / applying_for, 1),
            group_incident_alerts=_group_incident_alerts(url),
            cpu=cpu,
            store=check_store(url, big + small, deliveries_sent=1 + len(small)),
            service=service_stats,
            **summary,
        )
        if not run.ok:
            raise PhaseFailed(run)
        return run


# --- runs, medians, report ---------------------------------------------------------------------------------------


@dataclass
class DatabaseResult:
    """The runs on one database. Medians take every run that ran to its end, failed checks or not (accepted
    req/s counts 202 answers only); a failed check shows in ``all_stored`` and the exit status."""

    name: str
    throughput: list[ThroughputRun] = field(default_factory=list)
    latency: list[LatencyRun] = field(default_factory=list)
    big: list[BigGroupRun] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def median_small_p99_during_big_ms(self) -> float:
        return _median([run.p99_ms for run in self.big])

    @property
    def small_503s_during_big(self) -> int:
        return sum(run.statuses.get("503", 0) for run in self.big)

    def meets_big(self) -> bool:
        target = TARGETS[self.name].max_small_p99_during_big_ms
        return self.median_small_p99_during_big_ms < target and self.small_503s_during_big == 0

    @property
    def median_rps(self) -> float:
        return _median([run.accepted_rps for run in self.throughput])

    @property
    def median_p99_ms(self) -> float:
        return _median([run.p99_ms for run in self.latency])

    @property
    def all_stored(self) -> bool:
        runs: list[ThroughputRun | LatencyRun | BigGroupRun] = [*self.throughput, *self.latency, *self.big]
        return bool(runs) and not self.failures and all(run.ok for run in runs)

    def meets(self) -> dict[str, bool | None]:
        targets = TARGETS[self.name]
        p99_ok = None if targets.max_p99_ms is None else self.median_p99_ms < targets.max_p99_ms
        return {"accepted_rps": self.median_rps >= targets.min_accepted_rps, "p99_at_rate": p99_ok}


def _median(values: Sequence[float]) -> float:
    return round(statistics.median(values), 2) if values else math.nan


Run = ThroughputRun | LatencyRun | BigGroupRun


def run_phase(result: DatabaseResult, label: str, phase: Callable[[], Run]) -> Run | None:
    """Run one phase; a failed check or a broken run is recorded and reported loudly, not raised."""
    try:
        run: Run = phase()
    except PhaseFailed as failed:
        run = failed.run
        result.failures.append(f"{label}: check failed")
        print(f"!!! {label}: CHECK FAILED: {_describe(run)}", file=sys.stderr, flush=True)
    except BenchError as exc:
        result.failures.append(f"{label}: {_first_line(exc)}")
        print(f"!!! {label}: {exc}", file=sys.stderr, flush=True)
        return None
    else:
        print(f"  {label}: {_describe(run)}", flush=True)
    if run.cpu["other_pct"] > NOISY_OTHER_PCT:
        other = run.cpu["other_pct"]
        print(f"!!! {label}: other processes used {other:.0f}% of a core: figures are pessimistic", file=sys.stderr)
    return run


def _describe(run: Run) -> str:
    cpu = ", ".join(f"{key.removesuffix('_pct')} {value:.0f}%" for key, value in run.cpu.items())
    if isinstance(run, BigGroupRun):
        lat = run.latency_ms
        applied = (
            f"{run.events_applied_at_stop:,} applied at the stop"
            if run.apply_seconds is None
            else f"applied in {run.apply_seconds:.0f} s"
        )
        during = "still applying at the end" if run.applying_throughout else "APPLIED BEFORE THE END"
        return (
            f"{run.alerts:,}-alert group ({run.body_bytes / 1e6:.1f} MB) answered {run.accept_status} in"
            f" {run.accept_seconds:.1f} s, {applied} ({run.applied_per_second:,.0f}/s);"
            f" small webhooks at {run.small_rate} req/s meanwhile:"
            f" p50 {lat['p50']:.1f} ms p99 {lat['p99']:.1f} ms max {lat['max']:.1f} ms, answers {run.statuses}"
            f" ({during}: {run.events_applied_at_end:,} applied); CPU {cpu}; {run.store.describe()}"
        )
    if isinstance(run, ThroughputRun):
        errors = "" if run.socket_error_count == 0 else f", SOCKET ERRORS {run.socket_errors}"
        return (
            f"{run.accepted_rps:,.0f} accepted req/s ({run.answered:,} answers {run.statuses} in {run.seconds:.1f} s"
            f"{errors}); wrk latency p50 {run.wrk_latency_ms['p50']:.1f} ms p99 {run.wrk_latency_ms['p99']:.1f} ms;"
            f" CPU {cpu}; {run.store.describe()}; worker backlog {run.store.deliveries_pending:,}"
        )
    lat = run.latency_ms
    return (
        f"p50 {lat['p50']:.1f} ms p99 {lat['p99']:.1f} ms p99.9 {lat['p99.9']:.1f} ms max {lat['max']:.1f} ms"
        f" sending {run.achieved_rps:,.0f} req/s, answered {run.answered_rps:,.0f} req/s ({run.measured:,} measured,"
        f" answers {run.statuses}, generator lag p99 {run.generator_lag_p99_ms:.1f} ms); CPU {cpu};"
        f" {run.store.describe()}"
    )


def bench_database(cfg: Config, backend: Backend) -> DatabaseResult:
    result = DatabaseResult(backend.name)
    for number in range(1, cfg.runs + 1):
        label = f"{backend.name} run {number}/{cfg.runs}"
        if "throughput" in cfg.phases:
            run = run_phase(result, f"{label} throughput", lambda: throughput_run(cfg, backend, f"{backend.name}-tp"))
            if isinstance(run, ThroughputRun):
                result.throughput.append(run)
        if "latency" in cfg.phases:
            run = run_phase(result, f"{label} latency", lambda: latency_run(cfg, backend, f"{backend.name}-lat"))
            if isinstance(run, LatencyRun):
                result.latency.append(run)
        if "big" in cfg.phases:
            run = run_phase(result, f"{label} huge group", lambda: big_group_run(cfg, backend, f"{backend.name}-big"))
            if isinstance(run, BigGroupRun):
                result.big.append(run)
    return result


def machine_info(backends: Sequence[Backend]) -> dict[str, Any]:
    model = next(
        (
            line.partition(":")[2].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    wrk_version = (
        subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False).stdout
        if shutil.which("wrk")
        else ""
    )
    info: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "cpu_model": model,
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "wrk_version": wrk_version.splitlines()[0].split(" [")[0] if wrk_version else "unknown",
    }
    for backend in backends:
        info.update(backend.info())
    return info | code_version()


def code_version() -> dict[str, Any]:
    """The commit measured, and the service files that differ from it (read-only git commands)."""
    repo = BENCH_DIR.parent

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "--no-optional-locks", *args], cwd=repo, capture_output=True, text=True, check=False
        )
        return done.stdout.rstrip() if done.returncode == 0 else "unknown"

    changed = git("status", "--porcelain", "--", "bot", "knowledge", "pyproject.toml")
    return {"git_commit": git("rev-parse", "HEAD"), "uncommitted_service_files": changed.splitlines()}


def _fmt(value: float, decimals: int = 0) -> str:
    return "-" if math.isnan(value) else f"{value:,.{decimals}f}"


def print_table(cfg: Config, results: Sequence[DatabaseResult]) -> None:
    print(
        f"\nAlert ingest: {cfg.requests:,} single-alert Alertmanager webhooks with unique label sets per run, "
        f"{cfg.runs} run(s), medians."
    )
    print(f"  accepted req/s: wrk -t{cfg.threads} -c{cfg.connections} + bench/wrk/alertmanager.lua")
    print(f"  p99 at {cfg.rate:,} req/s: {LATENCY_TOOL},")
    print(f"    {cfg.rate_seconds:g} s measured after {cfg.warmup_seconds:g} s of warm-up\n")
    columns = ("database", "accepted req/s", "target", f"p99 @ {cfg.rate:,} req/s", "target", "all 202, stored once")
    print("{:<10} {:>15}  {:<16} {:>18}  {:<16} {}".format(*columns))
    for result in results:
        targets, meets = TARGETS[result.name], result.meets()
        rps_target = f">= {targets.min_accepted_rps:,.0f} {_verdict(meets['accepted_rps'])}"
        p99_target = "-"
        if targets.max_p99_ms is not None:
            p99_target = f"< {targets.max_p99_ms:.0f} ms {_verdict(meets['p99_at_rate'])}"
        runs = len(result.throughput) + len(result.latency)
        stored = f"yes ({runs} phases)" if result.all_stored else "NO: see the lines marked !!!"
        p99 = _fmt(result.median_p99_ms, 1) + " ms"
        print(f"{result.name:<10} {_fmt(result.median_rps):>15}  {rps_target:<16} {p99:>18}  {p99_target:<16} {stored}")
        for line in _run_details(result):
            print(f"{'':<10} {line}")
    if "big" in cfg.phases:
        print(
            f"\nSmall webhooks ({cfg.big_rate} req/s for {cfg.big_seconds:g} s) while a {cfg.big_alerts:,}-alert group"
            " is applied: median p99, target < 250 ms and no 503"
        )
        for result in results:
            p99s = ", ".join(_fmt(run.p99_ms, 1) for run in result.big) or "-"
            applies = ", ".join(_fmt(run.applied_per_second) for run in result.big)
            verdict = "ok" if result.meets_big() else "MISSED"
            print(
                f"{result.name:<10} p99 {_fmt(result.median_small_p99_during_big_ms, 1)} ms {verdict}"
                f" (runs {p99s} ms; 503s: {result.small_503s_during_big}); group applied at {applies or '-'} alerts/s"
            )


def _run_details(result: DatabaseResult) -> list[str]:
    """Every run's figures, and where the CPU went (percent of one core) during the throughput runs."""
    throughput = result.throughput

    def each(values: Iterator[float], decimals: int = 0) -> str:
        return ", ".join(_fmt(value, decimals) for value in values) or "-"

    return [
        f"runs: {each(run.accepted_rps for run in throughput)} req/s;"
        f" p99 {each((run.p99_ms for run in result.latency), 1)} ms",
        f"CPU at full load (% of a core): service {each(run.cpu['service_pct'] for run in throughput)};"
        f" postgres {each(run.cpu['postgres_pct'] for run in throughput)};"
        f" other processes {each(run.cpu['other_pct'] for run in throughput)}",
        f"deliveries not yet processed into incidents at the end: "
        f"{each(run.store.deliveries_pending for run in throughput)} of {each(run.sent for run in throughput)}",
    ]


def _verdict(ok: bool | None) -> str:
    return "" if ok is None else "ok" if ok else "MISSED"


def write_json(cfg: Config, results: Sequence[DatabaseResult], machine: dict[str, Any], wall: float) -> None:
    document = {
        "benchmark": "alert ingest webhook (POST /alerts/alertmanager)",
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "wall_seconds": round(wall, 1),
        "machine": machine,
        "config": {
            "requests_per_throughput_run": cfg.requests,
            "wrk": f"-t{cfg.threads} -c{cfg.connections}",
            "rate_rps": cfg.rate,
            "rate_measured_seconds": cfg.rate_seconds,
            "rate_warmup_seconds": cfg.warmup_seconds,
            "rate_connections": cfg.rate_connections,
            "latency_tool": LATENCY_TOOL,
            "runs": cfg.runs,
        },
        "databases": {result.name: _database_json(cfg, result) for result in results},
    }
    document = _keep_phases_not_run(cfg, document)
    cfg.output.parent.mkdir(parents=True, exist_ok=True)
    cfg.output.write_text(json.dumps(_without_nan(document), indent=2, allow_nan=False) + "\n")


def _without_nan(value: Any) -> Any:
    """JSON has no NaN (a median of no runs, a percentile of no samples): write null."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {key: _without_nan(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_without_nan(item) for item in value]
    return value


def _keep_phases_not_run(cfg: Config, document: dict[str, Any]) -> dict[str, Any]:
    """A run of some phases replaces only their figures: the others are taken from the existing results file."""
    if set(cfg.phases) == set(PHASES) or not cfg.output.exists():
        return document
    previous: dict[str, Any] = json.loads(cfg.output.read_text())
    merged = {**previous, "databases": dict(previous.get("databases", {}))}
    for name, entry in document["databases"].items():
        old = merged["databases"].get(name, {})
        if "big" in cfg.phases:
            merged["databases"][name] = {**old, "big_group": entry["big_group"]}
        else:
            merged["databases"][name] = {**entry, "big_group": old.get("big_group")}
    merged["big_group_generated_at" if "big" in cfg.phases else "generated_at"] = document["generated_at"]
    merged["big_group_command" if "big" in cfg.phases else "command"] = document["command"]
    merged["machine"] = document["machine"]
    return merged


def _database_json(cfg: Config, result: DatabaseResult) -> dict[str, Any]:
    return {
        "big_group": {
            "alerts": cfg.big_alerts,
            "small_rate_rps": cfg.big_rate,
            "small_seconds": cfg.big_seconds,
            "median_small_p99_ms": result.median_small_p99_during_big_ms,
            "small_503s": result.small_503s_during_big,
            "target_small_p99_ms": TARGETS[result.name].max_small_p99_during_big_ms,
            "meets_target": result.meets_big(),
            "median_accept_seconds": _median([run.accept_seconds for run in result.big]),
            "median_apply_seconds": _median([run.apply_seconds for run in result.big if run.apply_seconds is not None]),
            "median_applied_per_second": _median([run.applied_per_second for run in result.big]),
            "runs": [_run_json(run) for run in result.big],
        },
        "runs": len(result.throughput),
        "median_accepted_rps": result.median_rps,
        "median_p99_ms_at_fixed_rate": result.median_p99_ms,
        "all_202_and_stored_exactly_once": result.all_stored,
        "targets": asdict(TARGETS[result.name]),
        "meets_targets": result.meets(),
        "failures": result.failures,
        "throughput_runs": [_run_json(run) for run in result.throughput],
        "latency_runs": [_run_json(run) for run in result.latency],
    }


def _run_json(run: Run) -> dict[str, Any]:
    data = asdict(run)
    data["store"]["ok"] = run.store.ok
    data["ok"] = run.ok
    return data


def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so that the service and wrk are stopped on the way out.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(128 + signal.SIGTERM))
    started = time.monotonic()
    try:
        backends: list[Backend] = [
            SqliteBackend() if name == "sqlite" else PostgresBackend(cfg.pg_url) for name in cfg.databases
        ]
        machine = machine_info(backends)
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    changed = len(machine["uncommitted_service_files"])
    print(
        f"{machine['cpu_count']} CPUs ({machine['cpu_model']}), Python {machine['python_version']}, "
        f"incibot at {machine['git_commit'][:12]} ({changed} service files changed since)",
        flush=True,
    )
    results = [bench_database(cfg, backend) for backend in backends]
    wall = time.monotonic() - started
    print_table(cfg, results)
    write_json(cfg, results, machine, wall)
    print(f"\nwall time {wall:.0f} s; results in {cfg.output}")
    failed = [result.name for result in results if not result.all_stored]
    if failed:
        print(f"!!! CHECKS FAILED on {', '.join(failed)}: see the lines marked !!! above", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
