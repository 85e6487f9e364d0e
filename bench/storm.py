"""Benchmark of the whole pipeline under an alert storm: ingest -> processing/correlation -> knowledge -> Slack.

Per database, rate and run, against a service of its own (fresh SQLite state dir or an emptied PostgreSQL
database, ``incibot db upgrade``, ``incibot serve`` with its defaults: the worker, search, the built-in Slack
stand-in), once the worker has started:

1. The dev storm (``--stream``, storm format) is replayed by ``incibot replay``'s code (bot/cli/replay.py):
   ``--rate`` alerts/s whatever the recorded gaps, delivered as Alertmanager would (webhooks per group
   [alertname, cluster, namespace] and flush), timestamps moved to now, ground truth never sent. Then the
   worker is given ``--drain-timeout`` seconds to apply what was accepted.
2. Reported: alerts fully processed per second (alerts of deliveries ``done`` / time from the first delivery's
   ``received_at`` to the last ``processed_at``), processing lag p50/p99 (``processed_at - received_at`` per
   delivery), deliveries left pending, the stand-in's Slack Web API calls (its call log), incidents opened and
   posted to Slack, and what the replay achieved (alerts/s sent, webhooks, HTTP errors). Where the CPU went: the
   service's CPU seconds by process and thread name (incibot names its threads: ``bot/threads.py``), while the
   replay sent and after it until everything was applied (``thread_cpu`` in the results).

In the same run, single-alert ingest throughput of incibot's webhook (bench/ingest.py's wrk phase) and of Debian's
``prometheus-alertmanager`` on its ``POST /api/v2/alerts`` (same wrk settings, same alerts; a route to a receiver
with no notifier) are measured, and their ratio reported. Medians over ``--runs`` runs are printed beside the
target (>= 1,000 alerts/s processed with lag p99 < 5 s on SQLite) and written to ``bench/results/storm.json``.

Run: ``make bench-storm`` (``.venv/bin/python bench/storm.py``; ``--db postgres|both``, ``--rates``, ``--runs``,
``--lines N`` for the first N lines only). Exit status: 0 ran (targets may be missed: see the table), 1 a replay
had HTTP errors or a service failed, 2 the benchmark could not run.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import ingest  # bench/ingest.py (a script's directory is on sys.path): services, databases, wrk, CPU figures
from sqlalchemy import text

from bot.cli.replay import StreamLine, read_stream, replay
from bot.state_files import read_json

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_STREAM = BENCH_DIR.parent.parent / "shared" / "data" / "storm" / "storm.jsonl.gz"
DEFAULT_OUTPUT = BENCH_DIR / "results" / "storm.json"
RATES = (250, 500, 1000, 2000)
TARGET_PROCESSED_PER_SECOND = 1000.0
TARGET_LAG_P99_SECONDS = 5.0
ALERTMANAGER_BINARIES = ("prometheus-alertmanager", "alertmanager")
ALERTMANAGER_CONFIG = """\
route:
  receiver: "null"
  group_by: [alertname, cluster, namespace]
receivers:
  - name: "null"
"""


@dataclass(frozen=True)
class Options:
    stream: Path
    rates: tuple[int, ...]
    lines: int | None
    connections: int
    drain_timeout: float
    alertmanager: str
    output: Path
    ingest: ingest.Config  # databases, runs, wrk settings, service binary, --keep


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--stream", type=Path, default=DEFAULT_STREAM, help="storm-format stream (the dev storm)")
    parser.add_argument("--rates", default=",".join(map(str, RATES)), help="alerts/s to replay at, comma-separated")
    parser.add_argument("--lines", type=int, default=None, help="replay only the first N lines")
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="sqlite")
    parser.add_argument("--runs", type=int, default=3, help="runs per database and rate (default 3); medians")
    parser.add_argument("--connections", type=int, default=8, help="the replay's connections (8)")
    parser.add_argument("--drain-timeout", type=float, default=60.0, help="seconds to let the worker catch up (60)")
    parser.add_argument("--requests", type=int, default=20_000, help="webhooks per wrk ingest run (20000)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    parser.add_argument("--wrk-connections", type=int, default=16, help="wrk connections (16)")
    parser.add_argument("--pg-url", default=ingest.DEFAULT_PG_URL, help="PostgreSQL database to use (it is wiped)")
    parser.add_argument("--incibot", type=Path, default=Path(sys.executable).parent / "incibot")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON results file")
    parser.add_argument("--keep", action="store_true", help="keep each service's state dir and logs")
    args = parser.parse_args(argv)
    try:
        rates = tuple(int(rate) for rate in args.rates.split(","))
    except ValueError:
        parser.error("--rates takes comma-separated integers")
    if not rates or min(rates) < 1 or args.runs < 1 or (args.lines is not None and args.lines < 1):
        parser.error("need rates >= 1, --runs >= 1, --lines >= 1")
    if not args.stream.is_file():
        parser.error(f"{args.stream} not found (the dev storm is in /work/shared/data/storm/); pass --stream")
    binary = next((found for name in ALERTMANAGER_BINARIES if (found := shutil.which(name))), None)
    if binary is None:
        parser.error("prometheus-alertmanager is not installed (apt-get install prometheus-alertmanager)")
    wrk_args = ["--db", args.db, "--runs", str(args.runs), "--requests", str(args.requests), "--phases", "throughput"]
    wrk_args += ["--threads", str(args.threads), "--connections", str(args.wrk_connections)]
    wrk_args += ["--pg-url", args.pg_url, "--incibot", str(args.incibot), *(["--keep"] if args.keep else [])]
    return Options(
        stream=args.stream,
        rates=rates,
        lines=args.lines,
        connections=args.connections,
        drain_timeout=args.drain_timeout,
        alertmanager=binary,
        output=args.output,
        ingest=ingest.parse_args(wrk_args),
    )


# --- one storm replay --------------------------------------------------------------------------------------------


@dataclass
class StormRun:
    rate: int
    lines: int
    webhooks: int
    replay_alerts_per_second: float  # what the replay achieved sending (202 answers awaited)
    http_errors: int
    processed_alerts: int  # alerts of deliveries done
    processed_per_second: float
    lag_seconds: dict[str, float]  # processed_at - received_at per delivery
    deliveries: int
    deliveries_pending: int  # not processed when the drain timeout ended
    incidents: int
    incidents_posted: int  # with a Slack message
    slack_calls: dict[str, int]  # the stand-in's call log, by method
    slack_outbox_pending: int
    cpu: dict[str, float]
    # CPU seconds by process/thread name of the service, while the replay sent and after it until all was applied
    thread_cpu: dict[str, dict[str, float]] = field(default_factory=dict)
    service: dict[str, float] = field(default_factory=dict)

    @property
    def slack_call_count(self) -> int:
        return sum(self.slack_calls.values())


def storm_run(opts: Options, backend: ingest.Backend, lines: Sequence[StreamLine], rate: int) -> StormRun:
    cfg = opts.ingest
    stats: dict[str, float] = {}
    with ingest.phase_dir(cfg, f"storm-{backend.name}-{rate}") as state_dir:
        url = backend.url(state_dir)
        with ingest.running_service(cfg, backend, state_dir, stats) as service:
            ingest._wait_for_log(state_dir / "server.log", "incibot started (worker", timeout=300)
            before, threads_before = ingest.sample_cpu(service.pid), ingest.thread_cpu(service.pid)
            sent = replay(
                lines, f"http://127.0.0.1:{service.port}", ingest.TOKEN, rate=rate, connections=opts.connections
            )
            threads_sent = ingest.thread_cpu(service.pid)
            _drain(url, opts.drain_timeout)
            cpu = ingest.cpu_usage(before, ingest.sample_cpu(service.pid), "generator")
            thread_cpu = {
                "replay": ingest.thread_cpu_used(threads_before, threads_sent),
                "after_replay": ingest.thread_cpu_used(threads_sent, ingest.thread_cpu(service.pid)),
            }
            slack_calls = _slack_calls(state_dir)
        figures = _processing_figures(url)
    return StormRun(
        rate=rate,
        lines=sent.lines,
        webhooks=sent.webhooks,
        replay_alerts_per_second=round(sent.rate, 1),
        http_errors=sent.errors,
        slack_calls=slack_calls,
        cpu=cpu,
        thread_cpu=thread_cpu,
        service=stats,
        **figures,
    )


def _drain(url: str, timeout: float) -> None:
    """Wait until the worker has applied every accepted delivery, or ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with ingest.connect(url) as connection:
            if not connection.scalar(text("SELECT count(*) FROM deliveries WHERE status = 'pending'")):
                return
        time.sleep(0.25)


def _slack_calls(state_dir: Path) -> dict[str, int]:
    """Web API calls in the stand-in's call log, by method (the stand-in runs inside the service)."""
    standin = read_json(state_dir / "runtime.json").get("standin_url")
    if not isinstance(standin, str):
        raise ingest.BenchError("runtime.json names no stand-in: is the service on real Slack?")
    answer = httpx.get(standin.rstrip("/") + "/_standin/calls", timeout=30)
    answer.raise_for_status()
    return dict(Counter(str(call["method"]) for call in answer.json()["calls"]))


def _as_datetime(value: datetime | str) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)  # SQLite gives text


def _processing_figures(url: str) -> dict[str, Any]:
    with ingest.connect(url) as connection:
        rows = connection.execute(
            text("SELECT received_at, processed_at, alert_count FROM deliveries WHERE status = 'done'")
        ).all()
        deliveries = connection.scalar(text("SELECT count(*) FROM deliveries")) or 0
        pending = connection.scalar(text("SELECT count(*) FROM deliveries WHERE status = 'pending'")) or 0
        incidents = connection.scalar(text("SELECT count(*) FROM incidents")) or 0
        posted = connection.scalar(text("SELECT count(*) FROM incidents WHERE slack_ts IS NOT NULL")) or 0
        outbox = connection.scalar(text("SELECT count(*) FROM slack_outbox WHERE status = 'pending'")) or 0
    received = [_as_datetime(row.received_at) for row in rows]
    processed = [_as_datetime(row.processed_at) for row in rows]
    lags = sorted((done - got).total_seconds() for got, done in zip(received, processed, strict=True))
    alerts = sum(int(row.alert_count) for row in rows)
    span = (max(processed) - min(received)).total_seconds() if rows else 0.0
    return {
        "processed_alerts": alerts,
        "processed_per_second": round(alerts / span, 1) if span > 0 else math.nan,
        "lag_seconds": {
            name: round(ingest.percentile(lags, pct), 3) for name, pct in (("p50", 50), ("p99", 99), ("max", 100))
        },
        "deliveries": deliveries,
        "deliveries_pending": pending,
        "incidents": incidents,
        "incidents_posted": posted,
        "slack_outbox_pending": outbox,
    }


# --- Alertmanager's own ingest, for comparison -------------------------------------------------------------------


@dataclass
class IngestComparison:
    incibot_rps: float  # 202 answers/s of incibot's webhook (bench/ingest.py throughput phase)
    alertmanager_rps: float  # 200 answers/s of Alertmanager's POST /api/v2/alerts
    alertmanager_statuses: dict[str, int]

    @property
    def ratio(self) -> float:
        return round(self.incibot_rps / self.alertmanager_rps, 2) if self.alertmanager_rps > 0 else math.nan


@contextmanager
def running_alertmanager(binary: str, state_dir: Path) -> Iterator[int]:
    """Alertmanager on a free loopback port (no cluster), routing everything to a receiver that notifies nobody."""
    config = state_dir / "alertmanager.yml"
    config.write_text(ALERTMANAGER_CONFIG)
    (state_dir / "alertmanager-data").mkdir()
    port = ingest._free_port()
    log = state_dir / "alertmanager.log"
    command = [binary, f"--config.file={config}", f"--storage.path={state_dir / 'alertmanager-data'}"]
    command += [f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="]
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not _ready(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise ingest.BenchError(f"Alertmanager did not get ready:\n{ingest._tail(log)}")
            time.sleep(0.1)
        yield port
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _ready(port: int) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        connection.request("GET", "/-/ready")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def ingest_comparison(opts: Options, backend: ingest.Backend) -> IngestComparison:
    cfg = opts.ingest
    incibot = ingest.throughput_run(cfg, backend, f"storm-{backend.name}-wrk")
    with (
        ingest.phase_dir(cfg, "storm-alertmanager") as state_dir,
        running_alertmanager(opts.alertmanager, state_dir) as port,
    ):
        result = ingest.run_wrk(cfg, port, "api")
    statuses = {str(status): int(count) for status, count in result["statuses"].items()}
    seconds = float(result["seconds"])
    return IngestComparison(
        incibot_rps=incibot.accepted_rps,
        alertmanager_rps=round(statuses.get("200", 0) / seconds, 1) if seconds > 0 else 0.0,
        alertmanager_statuses=statuses,
    )


# --- runs, medians, report ---------------------------------------------------------------------------------------


@dataclass
class DatabaseResult:
    name: str
    storms: dict[int, list[StormRun]] = field(default_factory=dict)
    ingest: list[IngestComparison] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def median(self, rate: int, figure: str) -> float:
        values = [_figure(run, figure) for run in self.storms.get(rate, [])]
        return round(statistics.median(values), 3) if values else math.nan

    def meets(self, rate: int) -> bool:
        return (
            self.median(rate, "processed_per_second") >= TARGET_PROCESSED_PER_SECOND
            and self.median(rate, "lag_p99") < TARGET_LAG_P99_SECONDS
            and self.median(rate, "deliveries_pending") == 0
        )


def _figure(run: StormRun, figure: str) -> float:
    if figure.startswith("lag_"):
        return run.lag_seconds[figure.removeprefix("lag_")]
    if figure == "slack_calls":
        return run.slack_call_count
    return float(getattr(run, figure))


def bench_database(opts: Options, backend: ingest.Backend, lines: Sequence[StreamLine]) -> DatabaseResult:
    result = DatabaseResult(backend.name)
    runs = opts.ingest.runs
    for number in range(1, runs + 1):
        for rate in opts.rates:
            label = f"{backend.name} run {number}/{runs} at {rate:,} alerts/s"
            try:
                run = storm_run(opts, backend, lines, rate)
            except ingest.BenchError as exc:
                result.failures.append(f"{label}: {ingest._first_line(exc)}")
                print(f"!!! {label}: {exc}", file=sys.stderr, flush=True)
                continue
            result.storms.setdefault(rate, []).append(run)
            if run.http_errors:
                result.failures.append(f"{label}: {run.http_errors} HTTP errors")
            print(f"  {label}: {_describe(run)}", flush=True)
            print(f"    {_describe_threads(run)}", flush=True)
            if run.cpu["other_pct"] > ingest.NOISY_OTHER_PCT:
                print(f"!!! {label}: other processes used {run.cpu['other_pct']:.0f}% of a core", file=sys.stderr)
        label = f"{backend.name} run {number}/{runs} single-alert ingest"
        try:
            comparison = ingest_comparison(opts, backend)
        except (ingest.BenchError, ingest.PhaseFailed) as exc:
            result.failures.append(f"{label}: {ingest._first_line(exc)}")
            print(f"!!! {label}: {exc}", file=sys.stderr, flush=True)
            continue
        result.ingest.append(comparison)
        print(
            f"  {label}: incibot {comparison.incibot_rps:,.0f} req/s, Alertmanager {comparison.alertmanager_rps:,.0f}"
            f" req/s ({comparison.alertmanager_statuses}): ratio {comparison.ratio}",
            flush=True,
        )
    return result


def _describe(run: StormRun) -> str:
    lag = run.lag_seconds
    errors = f", {run.http_errors} HTTP ERRORS" if run.http_errors else ""
    return (
        f"sent {run.lines:,} alerts in {run.webhooks:,} webhooks at {run.replay_alerts_per_second:,.0f}/s{errors};"
        f" processed {run.processed_alerts:,} at {run.processed_per_second:,.0f}/s, lag p50 {lag['p50']:.2f} s"
        f" p99 {lag['p99']:.2f} s, {run.deliveries_pending:,} pending; {run.incidents:,} incidents"
        f" ({run.incidents_posted:,} posted), {run.slack_call_count:,} Slack calls"
        f" ({run.slack_outbox_pending:,} in the outbox); CPU "
        + ", ".join(f"{key.removesuffix('_pct')} {value:.0f}%" for key, value in run.cpu.items())
    )


def _describe_threads(run: StormRun, shown: int = 8) -> str:
    during, after = run.thread_cpu.get("replay", {}), run.thread_cpu.get("after_replay", {})
    busiest = sorted(during.keys() | after.keys(), key=lambda name: -(during.get(name, 0.0) + after.get(name, 0.0)))
    return "CPU s by thread, during the replay + after it: " + ", ".join(
        f"{name} {during.get(name, 0.0):.1f} + {after.get(name, 0.0):.1f}" for name in busiest[:shown]
    )


def print_table(opts: Options, results: Sequence[DatabaseResult], lines: int) -> None:
    print(
        f"\nAlert storm: {lines:,} lines of {opts.stream.name} replayed as Alertmanager webhooks, "
        f"{opts.ingest.runs} run(s), medians. Target: >= {TARGET_PROCESSED_PER_SECOND:,.0f} alerts/s processed"
        f" with lag p99 < {TARGET_LAG_P99_SECONDS:g} s on SQLite.\n"
    )
    header = ("database", "rate", "sent/s", "processed/s", "lag p50", "lag p99", "pending", "incidents", "posted")
    print("{:<9} {:>6} {:>8} {:>12} {:>8} {:>8} {:>8} {:>10} {:>7} {:>12}  {}".format(*header, "Slack calls", "target"))
    for result in results:
        for rate in opts.rates:
            m = result.median
            verdict = ("ok" if result.meets(rate) else "MISSED") if result.name == "sqlite" else "-"
            print(
                f"{result.name:<9} {rate:>6,} {_fmt(m(rate, 'replay_alerts_per_second')):>8}"
                f" {_fmt(m(rate, 'processed_per_second')):>12} {_fmt(m(rate, 'lag_p50'), 2):>7}s"
                f" {_fmt(m(rate, 'lag_p99'), 2):>7}s {_fmt(m(rate, 'deliveries_pending')):>8}"
                f" {_fmt(m(rate, 'incidents')):>10} {_fmt(m(rate, 'incidents_posted')):>7}"
                f" {_fmt(m(rate, 'slack_calls')):>12}  {verdict}"
            )
    print(f"\nSingle-alert ingest, wrk -t{opts.ingest.threads} -c{opts.ingest.connections} (medians):")
    for result in results:
        incibot = _median([c.incibot_rps for c in result.ingest])
        alertmanager = _median([c.alertmanager_rps for c in result.ingest])
        ratio = round(incibot / alertmanager, 2) if alertmanager > 0 else math.nan
        print(
            f"{result.name:<9} incibot webhook {_fmt(incibot)} req/s, Alertmanager /api/v2/alerts"
            f" {_fmt(alertmanager)} req/s: incibot/Alertmanager = {_fmt(ratio, 2)}"
        )


def _median(values: Sequence[float]) -> float:
    return round(statistics.median(values), 1) if values else math.nan


def _fmt(value: float, decimals: int = 0) -> str:
    return "-" if math.isnan(value) else f"{value:,.{decimals}f}"


def write_json(opts: Options, results: Sequence[DatabaseResult], lines: int, wall: float) -> None:
    figures = ["replay_alerts_per_second", "processed_per_second", "lag_p50", "lag_p99", "deliveries_pending"]
    figures += ["incidents", "incidents_posted", "slack_calls"]
    document = {
        "benchmark": "alert storm through ingest, processing, knowledge and Slack (stand-in)",
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "wall_seconds": round(wall, 1),
        "machine": ingest.machine_info([]),
        "config": {
            "stream": opts.stream.name,
            "lines": lines,
            "rates": list(opts.rates),
            "runs": opts.ingest.runs,
            "replay_connections": opts.connections,
            "drain_timeout_seconds": opts.drain_timeout,
            "wrk": f"-t{opts.ingest.threads} -c{opts.ingest.connections}",
            "wrk_requests": opts.ingest.requests,
        },
        "targets": {
            "sqlite_processed_per_second": TARGET_PROCESSED_PER_SECOND,
            "sqlite_lag_p99_seconds": TARGET_LAG_P99_SECONDS,
        },
        "databases": {
            result.name: {
                "rates": {
                    str(rate): {
                        "medians": {figure: result.median(rate, figure) for figure in figures},
                        "meets_target": result.meets(rate) if result.name == "sqlite" else None,
                        "runs": [asdict(run) for run in result.storms.get(rate, [])],
                    }
                    for rate in opts.rates
                },
                "ingest_vs_alertmanager": {
                    "median_incibot_rps": _median([c.incibot_rps for c in result.ingest]),
                    "median_alertmanager_rps": _median([c.alertmanager_rps for c in result.ingest]),
                    "runs": [{**asdict(c), "ratio": c.ratio} for c in result.ingest],
                },
                "failures": result.failures,
            }
            for result in results
        },
    }
    opts.output.parent.mkdir(parents=True, exist_ok=True)
    opts.output.write_text(json.dumps(ingest._without_nan(document), indent=2, allow_nan=False) + "\n")
    print(f"\nwall time {wall:.0f} s; results in {opts.output}")


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(128 + signal.SIGTERM))
    started = time.monotonic()
    try:
        lines = list(read_stream(opts.stream))[: opts.lines]
        backends: list[ingest.Backend] = [
            ingest.SqliteBackend() if name == "sqlite" else ingest.PostgresBackend(opts.ingest.pg_url)
            for name in opts.ingest.databases
        ]
    except (OSError, ValueError, ingest.BenchError) as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    results = [bench_database(opts, backend, lines) for backend in backends]
    wall = time.monotonic() - started
    print_table(opts, results, len(lines))
    write_json(opts, results, len(lines), wall)
    failed = [failure for result in results for failure in result.failures]
    if failed:
        print("!!! " + "\n!!! ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
