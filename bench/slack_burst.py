"""Alert-ingest latency during a burst of Slack slash commands: do Bolt's sync handlers block ingestion?

Every phase runs against a fresh ``incibot serve`` of its own, so that both kinds start from the same state: a
new state dir (SQLite with the service's defaults), no INCIBOT_*/SLACK_* variable but an ingest token (so the
built-in Slack stand-in, served by the same process), the processing worker running. A phase:

1. ``incibot db upgrade``; ``incibot serve`` on a free port of 127.0.0.1; waits for ``GET /healthz`` and for
   ``<state dir>/runtime.json`` (the bot's URL, the stand-in's URL and the signing secret).
2. Seeds ``--seeds`` incidents (one Alertmanager group each) and waits until the ``incidents`` table holds them.
3. Ingest: bench/ingest.py's open-loop generator (asyncio+uvloop, 32 keep-alive connections) sends unique
   single-alert Alertmanager webhooks at ``--rate`` req/s for ``--warmup-seconds`` + ``--seconds``; latency is
   measured from each request's scheduled send time, so a stalled server cannot slow the schedule down.
4. Burst phase only, during that same ingest load: ``--commands`` signed ``/incident`` slash commands (``list``,
   ``show ID``, ``ack ID`` in turn (``--mix``), on the seeded incidents, by Alice, Bob and Carol) go open-loop to
   ``POST /slack/events`` over ``--burst-seconds``, starting ``--burst-delay`` s into the measured window, from
   ``--burst-threads`` threads of a separate process (so that the client's GIL does not slow the generator).
   They are sent by ``bot.standin.driver.SlackDriver``, minus the stand-in round trips it makes per command
   (channel lookup, minting the response URL, reading the replies): the response URLs are minted before the
   ingest starts and the replies are counted after it ends, so the serve process, which also hosts the
   stand-in, does during the burst only what real Slack would make it do. A command counts as acked when a
   2xx answer came within Slack's 3 s.

Ingest percentiles are given over the whole measured window and over the *burst window* (the scheduled burst
interval; the same offsets in the baseline phase, where nothing else happens in it): the comparison of the
two phases' burst-window p99 is the figure that answers the question. ``--runs`` runs, each a baseline and a
burst phase (their order alternates between runs); medians are printed and written, with every phase's
figures and where the CPU went, to ``bench/results/slack_burst.json``.

Run (about 100 s on 2 cores)::

    .venv/bin/python bench/slack_burst.py

Exit status: 0 every check passed; 1 an ingest request was not answered 202, a slash command was not acked
within 3 s, or a phase broke; 2 the benchmark could not run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import math
import multiprocessing
import os
import platform
import queue
import resource
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx
import ingest  # bench/ingest.py (this script's directory is on sys.path): the generator and service helpers
import uvloop

from bot.standin.driver import ACK_DEADLINE, Delivery, SlackDriver

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_OUTPUT = BENCH_DIR / "results" / "slack_burst.json"
COMMAND = "/incident"
CHANNEL = "incidents"
USERS = ("U0ALICE", "U0BOB", "U0CAROL")
KINDS = ("list", "show", "ack")
SEED_ALERTNAME = "SlackBurstSeed"
PHASES = ("baseline", "burst")

BenchError = ingest.BenchError


@dataclass(frozen=True)
class Config:
    runs: int
    rate: int
    seconds: float
    warmup_seconds: float
    connections: int
    commands: int
    burst_seconds: float
    burst_delay: float
    burst_threads: int
    seeds: int
    mix: tuple[str, ...]
    incibot: Path
    output: Path
    keep: bool

    @property
    def ingest_requests(self) -> int:
        return round(self.rate * (self.warmup_seconds + self.seconds))

    @property
    def burst_start(self) -> float:
        """Seconds from the ingest schedule's start to the burst's first command."""
        return self.warmup_seconds + self.burst_delay

    @property
    def burst_rate(self) -> float:
        return self.commands / self.burst_seconds


def parse_args(argv: Sequence[str] | None = None) -> Config:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=3, help="runs, each a baseline and a burst phase (3)")
    parser.add_argument("--rate", type=int, default=500, help="ingest requests per second (500)")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured ingest seconds (10)")
    parser.add_argument("--warmup-seconds", type=float, default=1.0, help="unmeasured ingest seconds first (1)")
    parser.add_argument("--connections", type=int, default=32, help="connections of the ingest generator (32)")
    parser.add_argument("--commands", type=int, default=300, help="slash commands per burst (300)")
    parser.add_argument("--burst-seconds", type=float, default=5.0, help="the burst's length (5)")
    parser.add_argument("--burst-delay", type=float, default=2.5, help="burst start, s into the measured window")
    parser.add_argument("--burst-threads", type=int, default=16, help="threads sending the commands (16)")
    parser.add_argument("--seeds", type=int, default=5, help="incidents created before the load (5)")
    parser.add_argument("--mix", default=",".join(KINDS), help="the commands sent in turn (list,show,ack)")
    parser.add_argument("--incibot", type=Path, default=Path(sys.executable).parent / "incibot")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON results file")
    parser.add_argument("--keep", action="store_true", help="keep each phase's state dir and logs")
    args = parser.parse_args(argv)
    if min(args.runs, args.rate, args.connections, args.commands, args.burst_threads, args.seeds) < 1:
        parser.error("--runs, --rate, --connections, --commands, --burst-threads and --seeds must be >= 1")
    if args.burst_seconds <= 0 or args.burst_delay < 0 or args.burst_delay + args.burst_seconds > args.seconds:
        parser.error("the burst (--burst-delay + --burst-seconds) must fit in the measured --seconds")
    mix = tuple(kind.strip() for kind in args.mix.split(",") if kind.strip())
    if not mix or set(mix) - set(KINDS):
        parser.error(f"--mix takes a comma-separated list of {', '.join(KINDS)}")
    if not args.incibot.exists():
        parser.error(f"{args.incibot} not found: run with the project's .venv/bin/python, or pass --incibot")
    return Config(
        runs=args.runs,
        rate=args.rate,
        seconds=args.seconds,
        warmup_seconds=args.warmup_seconds,
        connections=args.connections,
        commands=args.commands,
        burst_seconds=args.burst_seconds,
        burst_delay=args.burst_delay,
        burst_threads=args.burst_threads,
        seeds=args.seeds,
        mix=mix,
        incibot=args.incibot,
        output=args.output,
        keep=args.keep,
    )


# --- the service -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Service:
    pid: int
    port: int
    state_dir: Path
    bot_url: str
    standin_url: str
    signing_secret: str
    runtime_file_mode: str  # runtime.json's permission bits (it holds the signing secret: 0o600)


@contextlib.contextmanager
def state_dir(cfg: Config, label: str) -> Iterator[Path]:
    ingest.CACHE_DIR.mkdir(exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=f"slack-burst-{label}-", dir=ingest.CACHE_DIR))
    failed = True
    try:
        yield path
        failed = False
    finally:
        if failed or cfg.keep:
            print(f"    state and logs kept in {path}", file=sys.stderr)
        else:
            shutil.rmtree(path, ignore_errors=True)


def _upgrade(incibot: Path, env: dict[str, str]) -> None:
    command = [str(incibot), "db", "upgrade"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise BenchError(f"incibot db upgrade failed ({done.returncode}): {done.stderr.strip()[-2000:]}")


def _read_runtime_file(process: subprocess.Popen[bytes], path: Path, log: Path, timeout: float = 30.0) -> Any:
    """``runtime.json`` as ``serve`` wrote it in stand-in mode, once it holds all three fields."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"incibot serve exited with {process.returncode}:\n{ingest._tail(log)}")
        with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
            info = json.loads(path.read_text())
            if isinstance(info, dict) and all(info.get(k) for k in ("bot_url", "standin_url", "signing_secret")):
                return info
        time.sleep(0.1)
    raise BenchError(f"no complete {path} within {timeout:.0f} s (is the service in stand-in mode?)")


@contextlib.contextmanager
def running_service(
    incibot: Path, directory: Path, settings: dict[str, str] | None = None, ready_timeout: float = 60.0
) -> Iterator[Service]:
    """``incibot db upgrade`` and ``incibot serve`` with the defaults (and ``settings``); SIGTERM and wait on the
    way out."""
    env = ingest._service_env(directory, settings or {})  # strips INCIBOT_* and SLACK_*, sets the state dir, a token
    _upgrade(incibot, env)
    port = ingest._free_port()
    log = directory / "server.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [str(incibot), "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        ingest._wait_healthy(process, port, log, timeout=ready_timeout)
        runtime_file = directory / "runtime.json"
        info = _read_runtime_file(process, runtime_file, log)
        mode = oct(runtime_file.stat().st_mode & 0o777)
        yield Service(process.pid, port, directory, info["bot_url"], info["standin_url"], info["signing_secret"], mode)
    finally:
        if process.poll() is None:
            ingest._stop(process, log)
        elif process.returncode != 0:
            raise BenchError(f"incibot serve died with {process.returncode}:\n{ingest._tail(log)}")


# --- seeding -----------------------------------------------------------------------------------------------------


def seed_body(number: int) -> bytes:
    """An Alertmanager group of one critical alert: one incident per ``number``."""
    service = f"seed-{number}"
    labels = {"alertname": SEED_ALERTNAME, "severity": "critical", "service": service, "instance": service}
    payload = {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{SEED_ALERTNAME}", service="{service}"}}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "bench",
        "groupLabels": {"alertname": SEED_ALERTNAME, "service": service},
        "commonLabels": labels,
        "commonAnnotations": {},
        "externalURL": "http://am",
        "alerts": [
            {
                "status": "firing",
                "labels": labels,
                "annotations": {"summary": f"slack burst seed {number}"},
                "startsAt": ingest.STARTS_AT,
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prom",
            }
        ],
    }
    return json.dumps(payload, separators=(",", ":")).encode()


def _post_alert(port: int, body: bytes) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        headers = {"Authorization": f"Bearer {ingest.TOKEN}", "Content-Type": "application/json"}
        connection.request("POST", ingest.PATH, body=body, headers=headers)
        return connection.getresponse().status
    finally:
        connection.close()


def _incident_ids(database: Path) -> list[int]:
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)) as connection:
        return [int(row[0]) for row in connection.execute("SELECT id FROM incidents ORDER BY id")]


def seed_incidents(cfg: Config, service: Service, timeout: float = 30.0) -> list[int]:
    """Send the seed groups; returns the ids of their incidents once the worker has made them."""
    for number in range(1, cfg.seeds + 1):
        status = _post_alert(service.port, seed_body(number))
        if status != 202:
            raise BenchError(f"seed alert {number} was answered {status}, not 202")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(sqlite3.OperationalError):  # not created yet, or busy
            ids = _incident_ids(service.state_dir / "incibot.db")
            if len(ids) >= cfg.seeds:
                return ids[: cfg.seeds]
        time.sleep(0.1)
    raise BenchError(f"the {cfg.seeds} seed incidents did not appear within {timeout:.0f} s")


# --- the burst of slash commands (runs in a process of its own) --------------------------------------------------


@dataclass(frozen=True)
class Command:
    kind: str
    text: str  # what follows /incident
    user: str
    response_url: str  # minted before the phase


@dataclass(frozen=True)
class BurstPlan:
    bot_url: str
    standin_url: str
    signing_secret: str
    channel: dict[str, Any]  # the stand-in's channel object, as SlackDriver looks it up
    commands: tuple[Command, ...]
    rate: float
    threads: int
    start_at: float = 0.0  # time.perf_counter() of the first command (CLOCK_MONOTONIC: the same in every process)


@dataclass(frozen=True)
class CommandResult:
    kind: str
    due: float
    dispatched: float
    done: float
    status: int | None
    latency: float  # seconds from sending to the ack (Delivery.latency)
    acked: bool  # a 2xx within Slack's 3 s
    error: str | None


class _PlannedDriver(SlackDriver):
    """SlackDriver without its per-command stand-in round trips (see the module's docstring)."""

    def __init__(self, plan: BurstPlan) -> None:
        super().__init__(plan.standin_url, bot_url=plan.bot_url, signing_secret=plan.signing_secret)
        self._planned_channel = plan.channel
        self._next_response_url = ""

    def _channel(self, channel: str) -> dict[str, Any]:
        return self._planned_channel

    def _mint_response_url(self, channel_id: str, user: str, message_ts: str | None = None) -> str:
        return self._next_response_url

    def _with_responses(self, delivery: Delivery, response_url: str, wait: float, expect: int) -> Delivery:
        delivery.response_url = response_url  # the replies are read after the phase
        return delivery

    def send(self, command: Command) -> Delivery:
        self._next_response_url = command.response_url
        return self.slash_command(COMMAND, command.text, user=command.user, channel=CHANNEL, wait_responses=0)


def _burst_thread(plan: BurstPlan, todo: queue.SimpleQueue[int], results: list[CommandResult | None]) -> None:
    """Take the next command, wait for its due time (open loop: whatever happened to earlier ones), send it."""
    driver = _PlannedDriver(plan)
    try:
        while True:
            try:
                index = todo.get_nowait()
            except queue.Empty:
                return
            command = plan.commands[index]
            due = plan.start_at + index / plan.rate
            time.sleep(max(0.0, due - time.perf_counter()))
            dispatched = time.perf_counter()
            try:
                delivery = driver.send(command)
            except Exception as exc:  # a broken driver call must not lose the command's record
                done, failure = time.perf_counter(), f"{type(exc).__name__}: {exc}"
                results[index] = CommandResult(
                    command.kind, due, dispatched, done, None, done - dispatched, False, failure
                )
                continue
            error = delivery.error or (f"no ack within {ACK_DEADLINE:g} s" if delivery.timed_out else None)
            results[index] = CommandResult(
                command.kind,
                due,
                dispatched,
                time.perf_counter(),
                delivery.status,
                delivery.latency,
                delivery.acked,
                error,
            )
    finally:
        driver.close()


def run_burst(plan: BurstPlan) -> list[CommandResult]:
    """Send ``plan.commands[i]`` at ``plan.start_at + i / plan.rate`` from ``plan.threads`` threads."""
    todo: queue.SimpleQueue[int] = queue.SimpleQueue()
    for index in range(len(plan.commands)):
        todo.put(index)
    results: list[CommandResult | None] = [None] * len(plan.commands)
    threads = [
        threading.Thread(target=_burst_thread, args=(plan, todo, results), name=f"burst-{n}", daemon=True)
        for n in range(plan.threads)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [result for result in results if result is not None]


def _commands(cfg: Config, incident_ids: Sequence[int], mint: Callable[[str], str]) -> tuple[Command, ...]:
    commands = []
    for index in range(cfg.commands):
        turn = index // len(cfg.mix)
        kind, incident, user = (
            cfg.mix[index % len(cfg.mix)],
            incident_ids[turn % len(incident_ids)],
            USERS[turn % len(USERS)],
        )
        text = kind if kind == "list" else f"{kind} {incident}"
        commands.append(Command(kind, text, user, mint(user)))
    return tuple(commands)


def prepare_burst(cfg: Config, service: Service, incident_ids: Sequence[int]) -> BurstPlan:
    """Look the channel up and mint every command's response URL in the stand-in, before the load starts."""
    try:
        with httpx.Client(base_url=service.standin_url, timeout=10) as standin:
            channel: dict[str, Any] = standin.get(f"/_standin/channels/{CHANNEL}").raise_for_status().json()

            def mint(user: str) -> str:
                body = {"channel": channel["id"], "user": user, "message_ts": None}
                url: str = standin.post("/_standin/response_urls", json=body).raise_for_status().json()["url"]
                return url

            commands = _commands(cfg, incident_ids, mint)
    except httpx.HTTPError as exc:
        raise BenchError(f"the stand-in at {service.standin_url} failed: {exc}") from None
    return BurstPlan(
        service.bot_url,
        service.standin_url,
        service.signing_secret,
        channel,
        commands,
        cfg.burst_rate,
        cfg.burst_threads,
    )


def count_replies(service: Service, commands: Sequence[Command], wait: float = 10.0) -> int:
    """How many commands got their reply on their response URL (waiting up to ``wait`` s for stragglers)."""
    pending = [command.response_url.rsplit("/", 1)[-1] for command in commands]
    deadline = time.monotonic() + wait
    try:
        with httpx.Client(base_url=service.standin_url, timeout=10) as standin:
            while True:
                pending = [
                    url_id
                    for url_id in pending
                    if not standin.get(f"/_standin/responses/{url_id}").raise_for_status().json()["responses"]
                ]
                if not pending or time.monotonic() >= deadline:
                    return len(commands) - len(pending)
                time.sleep(0.2)
    except httpx.HTTPError as exc:
        raise BenchError(f"reading the replies from the stand-in failed: {exc}") from None


# --- CPU accounting ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CpuSnapshot:
    at: float
    serve: float  # CPU seconds of the serve process alone (web, Bolt, the stand-in)
    worker: float  # of its descendants (the processing worker)
    burst: float  # of the slash-command process
    generator: float  # of this process (the ingest generator)
    busy: float  # machine-wide busy and total CPU seconds
    total: float


def cpu_snapshot(service_pid: int, burst_pid: int) -> CpuSnapshot:
    processes = ingest._processes()
    serve = next((process.cpu for process in processes if process.pid == service_pid), 0.0)
    ticks = [int(value) for value in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    own = resource.getrusage(resource.RUSAGE_SELF)
    return CpuSnapshot(
        at=time.monotonic(),
        serve=serve,
        worker=ingest._tree_cpu(processes, service_pid) - serve,
        burst=ingest._tree_cpu(processes, burst_pid),
        generator=own.ru_utime + own.ru_stime,
        busy=(sum(ticks[:8]) - ticks[3] - ticks[4]) / ingest.CLOCK_TICKS,
        total=sum(ticks[:8]) / ingest.CLOCK_TICKS,
    )


def cpu_usage(before: CpuSnapshot, after: CpuSnapshot) -> dict[str, float]:
    """Percent of one core used by each part between two snapshots; ``machine`` is percent of all cores."""
    wall = max(after.at - before.at, 1e-9)
    parts = {name: getattr(after, name) - getattr(before, name) for name in ("serve", "worker", "burst", "generator")}
    busy = after.busy - before.busy
    usage = {f"{name}_pct": round(100 * seconds / wall, 1) for name, seconds in parts.items()}
    usage["other_pct"] = round(100 * max(0.0, busy - sum(parts.values())) / wall, 1)
    usage["machine_pct"] = round(100 * busy / max(after.total - before.total, 1e-9), 1)
    return usage


# --- one phase ---------------------------------------------------------------------------------------------------


@dataclass
class PhaseRun:
    kind: str  # "baseline" or "burst"
    run: int
    ingest: dict[str, Any]
    commands: dict[str, Any] | None
    cpu: dict[str, float]
    runtime_file_mode: str
    failures: list[str]

    @property
    def ok(self) -> bool:
        return not self.failures


def _latency_stats(values_ms: Sequence[float]) -> dict[str, float]:
    ordered = sorted(values_ms)
    stats = {"count": float(len(ordered))}
    for name, pct in (("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("max", 100.0)):
        stats[name] = round(ingest.percentile(ordered, pct), 2)
    return stats


def summarize_ingest(cfg: Config, samples: Sequence[ingest.Sample | None], t0: float) -> dict[str, Any]:
    """Latency over the measured window and over the burst window; ``t0`` is the schedule's start."""
    answered = [sample for sample in samples if sample is not None]
    measured = [sample for sample in answered if sample.due >= t0 + cfg.warmup_seconds]
    low, high = t0 + cfg.burst_start, t0 + cfg.burst_start + cfg.burst_seconds
    window = [sample for sample in measured if low <= sample.due < high]
    return {
        "sent": len(samples),
        "statuses": dict(Counter(str(sample.status) for sample in answered)),  # "0": socket error or timeout
        "unanswered": len(samples) - len(answered),
        "measured_ms": _latency_stats([1000 * (s.answered - s.due) for s in measured]),
        "burst_window_ms": _latency_stats([1000 * (s.answered - s.due) for s in window]),
        "generator_lag_p99_ms": round(
            ingest.percentile(sorted(1000 * (s.dispatched - s.due) for s in measured), 99), 2
        ),
    }


def summarize_commands(results: Sequence[CommandResult], sent: int, replies: int, t0: float) -> dict[str, Any]:
    by_kind = {kind: _latency_stats([1000 * r.latency for r in results if r.kind == kind]) for kind in KINDS}
    return {
        "sent": sent,
        "recorded": len(results),
        "acked_within_3s": sum(result.acked for result in results),
        "replied": replies,  # replies found on the response URLs after the phase
        "statuses": dict(Counter(str(result.status) for result in results)),
        "errors": dict(Counter(result.error for result in results if result.error is not None)),
        "ack_ms": _latency_stats([1000 * result.latency for result in results]),
        "ack_ms_by_kind": by_kind,
        "client_lag_p99_ms": round(ingest.percentile(sorted(1000 * (r.dispatched - r.due) for r in results), 99), 2),
        "first_sent_s": round(min((r.dispatched for r in results), default=math.nan) - t0, 3),
        "last_acked_s": round(max((r.done for r in results), default=math.nan) - t0, 3),
    }


def _checks(cfg: Config, ingest_summary: dict[str, Any], commands: dict[str, Any] | None) -> list[str]:
    failures = []
    statuses, sent = ingest_summary["statuses"], ingest_summary["sent"]
    if statuses.get("202", 0) != sent:
        failures.append(f"ingest: {sent - statuses.get('202', 0)} of {sent} not answered 202 ({statuses})")
    if commands is not None and commands["acked_within_3s"] != commands["sent"]:
        missing = commands["sent"] - commands["acked_within_3s"]
        failures.append(f"slash commands: {missing} of {commands['sent']} not acked within 3 s {commands['errors']}")
    return failures


def drive(
    cfg: Config, port: int, requests: Sequence[bytes], plan: BurstPlan | None, pool: ProcessPoolExecutor
) -> tuple[list[ingest.Sample | None], list[CommandResult]]:
    """The ingest load, and the burst (when there is a plan) in the burst process at its offset into it."""
    future = None
    if plan is not None:
        # open_loop starts its clock right after connecting, a few ms from now; the figures use its real start.
        future = pool.submit(run_burst, replace(plan, start_at=time.perf_counter() + cfg.burst_start))
    limit = cfg.warmup_seconds + cfg.seconds + 90
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        try:
            samples = runner.run(
                asyncio.wait_for(ingest.open_loop(port, requests, cfg.rate, cfg.connections), timeout=limit)
            )
        except TimeoutError:
            raise BenchError(f"the ingest load did not finish within {limit:.0f} s") from None
    results = [] if future is None else future.result(timeout=cfg.burst_delay + cfg.burst_seconds + 60)
    return samples, results


def run_phase(cfg: Config, kind: str, number: int, pool: ProcessPoolExecutor, burst_pid: int) -> PhaseRun:
    with state_dir(cfg, f"{kind}-{number}") as directory, running_service(cfg.incibot, directory) as service:
        incident_ids = seed_incidents(cfg, service)
        plan = prepare_burst(cfg, service, incident_ids) if kind == "burst" else None
        bodies = (ingest.webhook_body(f"{kind}-{number}-{index}") for index in range(cfg.ingest_requests))
        requests = [ingest._http_request(service.port, body) for body in bodies]
        before = cpu_snapshot(service.pid, burst_pid)
        samples, results = drive(cfg, service.port, requests, plan, pool)
        cpu = cpu_usage(before, cpu_snapshot(service.pid, burst_pid))
        replies = count_replies(service, plan.commands) if plan is not None else 0
    t0 = min((sample.due for sample in samples if sample is not None), default=math.nan)
    ingest_summary = summarize_ingest(cfg, samples, t0)
    commands = None if plan is None else summarize_commands(results, len(plan.commands), replies, t0)
    return PhaseRun(
        kind, number, ingest_summary, commands, cpu, service.runtime_file_mode, _checks(cfg, ingest_summary, commands)
    )


def describe(run: PhaseRun) -> str:
    measured, window = run.ingest["measured_ms"], run.ingest["burst_window_ms"]
    text = (
        f"ingest p50 {measured['p50']:.1f} p99 {measured['p99']:.1f} ms, in the burst window p50 {window['p50']:.1f}"
        f" p99 {window['p99']:.1f} max {window['max']:.1f} ms (answers {run.ingest['statuses']}, generator lag p99"
        f" {run.ingest['generator_lag_p99_ms']:.1f} ms)"
    )
    if run.commands is not None:
        ack, commands = run.commands["ack_ms"], run.commands
        text += (
            f"; acks p50 {ack['p50']:.0f} p99 {ack['p99']:.0f} max {ack['max']:.0f} ms,"
            f" {commands['acked_within_3s']}/{commands['sent']} within 3 s, {commands['replied']} replied,"
            f" sent {commands['first_sent_s']:.2f}-{commands['last_acked_s']:.2f} s"
        )
    cpu = ", ".join(f"{key.removesuffix('_pct')} {value:.0f}%" for key, value in run.cpu.items())
    return f"{text}; CPU {cpu}"


# --- all runs, medians, report -----------------------------------------------------------------------------------


def bench(cfg: Config, pool: ProcessPoolExecutor, burst_pid: int) -> tuple[list[PhaseRun], list[str]]:
    phases: list[PhaseRun] = []
    broken: list[str] = []
    for number in range(1, cfg.runs + 1):
        for kind in PHASES if number % 2 else PHASES[::-1]:
            label = f"run {number}/{cfg.runs} {kind}"
            try:
                run = run_phase(cfg, kind, number, pool, burst_pid)
            except BenchError as exc:
                broken.append(f"{label}: {ingest._first_line(exc)}")
                print(f"!!! {label}: {exc}", file=sys.stderr, flush=True)
                continue
            phases.append(run)
            print(f"  {label}: {describe(run)}", flush=True)
            for failure in run.failures:
                print(f"!!! {label}: CHECK FAILED: {failure}", file=sys.stderr, flush=True)
            if run.commands is not None and run.commands["replied"] != run.commands["sent"]:
                replied, sent = run.commands["replied"], run.commands["sent"]
                print(f"!!! {label}: only {replied} of {sent} commands got their reply", file=sys.stderr, flush=True)
            if run.cpu["other_pct"] > ingest.NOISY_OTHER_PCT:
                other = run.cpu["other_pct"]
                print(
                    f"!!! {label}: other processes used {other:.0f}% of a core: figures are pessimistic",
                    file=sys.stderr,
                )
            if run.runtime_file_mode != "0o600":
                print(f"!!! {label}: runtime.json has mode {run.runtime_file_mode}, not 0o600", file=sys.stderr)
    return phases, broken


def _median(values: Sequence[float]) -> float:
    present = [value for value in values if not math.isnan(value)]
    return round(statistics.median(present), 2) if present else math.nan


def medians(phases: Sequence[PhaseRun], kind: str) -> dict[str, float]:
    runs = [run for run in phases if run.kind == kind]
    figures = {
        "ingest_p50_ms": _median([run.ingest["measured_ms"]["p50"] for run in runs]),
        "ingest_p99_ms": _median([run.ingest["measured_ms"]["p99"] for run in runs]),
        "ingest_window_p50_ms": _median([run.ingest["burst_window_ms"]["p50"] for run in runs]),
        "ingest_window_p99_ms": _median([run.ingest["burst_window_ms"]["p99"] for run in runs]),
        "ingest_window_max_ms": _median([run.ingest["burst_window_ms"]["max"] for run in runs]),
        "serve_cpu_pct": _median([run.cpu["serve_pct"] for run in runs]),
    }
    commands = [run.commands for run in runs if run.commands is not None]
    if commands:
        figures |= {
            "ack_p50_ms": _median([c["ack_ms"]["p50"] for c in commands]),
            "ack_p99_ms": _median([c["ack_ms"]["p99"] for c in commands]),
            "ack_max_ms": _median([c["ack_ms"]["max"] for c in commands]),
            "acked_within_3s": sum(c["acked_within_3s"] for c in commands),
            "commands_sent": sum(c["sent"] for c in commands),
        }
        for kind_name in KINDS:
            figures[f"ack_p99_ms_{kind_name}"] = _median([c["ack_ms_by_kind"][kind_name]["p99"] for c in commands])
    return figures


def comparison(baseline: dict[str, float], burst: dict[str, float]) -> dict[str, float]:
    result = {}
    for key in ("ingest_window_p99_ms", "ingest_p99_ms", "ingest_window_p50_ms"):
        result[f"{key}_delta"] = round(burst[key] - baseline[key], 2)
        result[f"{key}_ratio"] = round(burst[key] / baseline[key], 2) if baseline[key] > 0 else math.nan
    return result


def _fmt(value: float, decimals: int = 1) -> str:
    return "-" if math.isnan(value) else f"{value:,.{decimals}f}"


def print_table(cfg: Config, table: dict[str, dict[str, float]], phases: Sequence[PhaseRun]) -> None:
    print(
        f"\nIngest at {cfg.rate:,} req/s ({cfg.seconds:g} s measured after {cfg.warmup_seconds:g} s warm-up), with"
        f" and without a burst of {cfg.commands} /incident commands ({'/'.join(cfg.mix)}, {cfg.burst_seconds:g} s from"
        f" {cfg.burst_threads} threads, {cfg.burst_delay:g} s into the measured window). SQLite, stand-in mode,"
        f" a fresh service per phase; medians of {cfg.runs} run(s), ms.\n"
    )
    header = ("phase", "ingest p50", "p99", "burst-window p50", "p99", "max", "ack p50", "p99", "max", "acked <3 s")
    print("{:<9} {:>10} {:>7} {:>17} {:>7} {:>7} {:>8} {:>7} {:>7} {:>11}".format(*header))
    for kind in PHASES:
        row = table[kind]
        acked = f"{row['acked_within_3s']:.0f}/{row['commands_sent']:.0f}" if "ack_p50_ms" in row else "-"
        print(
            f"{kind:<9} {_fmt(row['ingest_p50_ms']):>10} {_fmt(row['ingest_p99_ms']):>7}"
            f" {_fmt(row['ingest_window_p50_ms']):>17} {_fmt(row['ingest_window_p99_ms']):>7}"
            f" {_fmt(row['ingest_window_max_ms']):>7} {_fmt(row.get('ack_p50_ms', math.nan), 0):>8}"
            f" {_fmt(row.get('ack_p99_ms', math.nan), 0):>7} {_fmt(row.get('ack_max_ms', math.nan), 0):>7} {acked:>11}"
        )
    base, burst, change = table["baseline"], table["burst"], table["comparison"]
    print(
        f"\ningest p99 in the burst window: {_fmt(base['ingest_window_p99_ms'])} ms without the burst,"
        f" {_fmt(burst['ingest_window_p99_ms'])} ms with it ({change['ingest_window_p99_ms_delta']:+.1f} ms,"
        f" x{_fmt(change['ingest_window_p99_ms_ratio'], 2)}); over the whole {cfg.seconds:g} s:"
        f" {_fmt(base['ingest_p99_ms'])} -> {_fmt(burst['ingest_p99_ms'])} ms"
    )
    per_kind = ", ".join(f"{kind} {_fmt(burst.get(f'ack_p99_ms_{kind}', math.nan), 0)}" for kind in KINDS)
    print(f"ack p99 by command (ms): {per_kind}")
    for kind in PHASES:
        runs = [run for run in phases if run.kind == kind]
        window = ", ".join(_fmt(run.ingest["burst_window_ms"]["p99"]) for run in runs)
        serve = ", ".join(_fmt(run.cpu["serve_pct"], 0) for run in runs)
        worker = ", ".join(_fmt(run.cpu["worker_pct"], 0) for run in runs)
        print(f"  {kind} runs: burst-window p99 {window} ms; CPU % of a core: serve {serve}, worker {worker}")


def machine_info() -> dict[str, Any]:
    model = next(
        (
            line.partition(":")[2].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    versions = {name: metadata.version(name) for name in ("slack_bolt", "starlette", "uvicorn", "httpx")}
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": model,
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "sqlite_version": sqlite3.sqlite_version,
        **{f"{name}_version": version for name, version in versions.items()},
    } | ingest.code_version()


def write_json(
    cfg: Config,
    machine: dict[str, Any],
    table: dict[str, dict[str, float]],
    phases: Sequence[PhaseRun],
    broken: Sequence[str],
    wall: float,
) -> None:
    document = {
        "benchmark": "alert ingest latency during a burst of Slack slash commands",
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "wall_seconds": round(wall, 1),
        "machine": machine,
        "config": {key: value for key, value in asdict(cfg).items() if key not in ("incibot", "output", "keep")}
        | {
            "database": "sqlite (service defaults: WAL, synchronous=NORMAL)",
            "slack": "stand-in mode (no SLACK_* settings); commands over HTTP to POST /slack/events",
            "service_per_phase": "fresh (new state dir) for every phase; phase order alternates between runs",
            "ingest_tool": ingest.LATENCY_TOOL,
            "command_mix": f"{', '.join(cfg.mix)} in turn (show, ack: the seeded incidents); users Alice, Bob, Carol",
            "burst_window": "the scheduled burst interval, the same offsets in both phases",
        },
        "ok": not broken and all(run.ok for run in phases),
        "broken_phases": list(broken),
        "medians": table,
        "phases": [asdict(run) | {"ok": run.ok} for run in phases],
    }
    cfg.output.parent.mkdir(parents=True, exist_ok=True)
    cfg.output.write_text(json.dumps(ingest._without_nan(document), indent=2, allow_nan=False) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so that the service and the burst process are stopped on the way out.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(128 + signal.SIGTERM))
    started = time.monotonic()
    machine = machine_info()
    changed = len(machine["uncommitted_service_files"])
    print(
        f"{machine['cpu_count']} CPUs ({machine['cpu_model']}), Python {machine['python_version']}, "
        f"incibot at {machine['git_commit'][:12]} ({changed} service files changed since)",
        flush=True,
    )
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        try:
            burst_pid = pool.submit(os.getpid).result(timeout=60)  # start it (and its imports) before any load
        except Exception as exc:
            print(f"bench: the slash-command process did not start: {exc}", file=sys.stderr)
            return 2
        phases, broken = bench(cfg, pool, burst_pid)
    wall = time.monotonic() - started
    table = {kind: medians(phases, kind) for kind in PHASES}
    table["comparison"] = comparison(table["baseline"], table["burst"])
    print_table(cfg, table, phases)
    write_json(cfg, machine, table, phases, broken, wall)
    print(f"\nwall time {wall:.0f} s; results in {cfg.output}")
    if broken or not all(run.ok for run in phases):
        print("!!! CHECKS FAILED: see the lines marked !!! above", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
