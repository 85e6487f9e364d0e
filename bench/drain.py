"""Benchmark of the processing worker alone: how fast it applies a storm that ingest has already accepted.

``bench/storm.py`` measures the whole pipeline, where the worker shares the SQLite write lock and the cores with
ingest (and yields the lock while deliveries pour in). This one isolates the worker's own cost:

1. Once: ``incibot serve`` with ``INCIBOT_PROCESS_DELIVERIES=false`` on a fresh SQLite state dir accepts the dev
   storm (``--stream``) replayed by ``incibot replay``'s code at ``--rate`` alerts/s, then stops: every delivery
   is stored, none applied.
2. Per run, on a fresh copy of that state: the worker built by the composition root (``Runtime.build`` with the
   service's defaults: learned correlation, classification, root cause, the Slack notifier's outbox, the search
   documents) calls ``ProcessingWorker.step`` (its thread's round) until no delivery is pending, in this process,
   beside the embedding prefetch that the worker process runs with it, and nothing else (no outbox sender, no
   suggestions, no ingest).

``--history N`` also drains, in each run, a copy of the same accepted state that has N incidents resolved a year
ago, each with the Slack writes an incident leaves in the outbox (sent, kept: a post, updates, thread replies), as
a service that has run for a while has: a query of the worker that scans a table growing with history shows up as
the difference between the two drains (``medians`` and ``medians_with_history``).

Reported per run: seconds to drain, events applied (new occurrences, resolves), events/s, worker rounds (one
prepare outside the write lock plus one write transaction each), texts the embedder had to encode, how many
incidents the storm became, and per event the milliseconds the worker's transactions held SQLite's write lock (the
one ingest needs too: at 1,000 alerts/s the storm's events arrive in 16 s) and the SQL statements run. Medians
over ``--runs`` are printed and written to ``bench/results/drain.json``. At the replay's compressed time the whole
day is minutes apart, so the incidents say nothing of correlation quality (``incibot eval dedup`` measures that).

Run: ``.venv/bin/python bench/drain.py`` (``--runs 3``; a few minutes). Exit status: 0 ran, 2 could not run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import ingest  # bench/ingest.py (a script's directory is on sys.path): service start/stop, the token
from sqlalchemy import create_engine, insert, text

from bot.cli.replay import read_stream, replay
from bot.incidents.models import Incident, IncidentStatus
from bot.slack.models import OutboxItem, OutboxKind, OutboxStatus

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_STREAM = BENCH_DIR.parent.parent / "shared" / "data" / "storm" / "storm.jsonl.gz"
DEFAULT_OUTPUT = BENCH_DIR / "results" / "drain.json"
HISTORY_ITEMS = (  # the outbox items one past incident left (posted, edited, a few thread replies)
    [OutboxKind.POST_INCIDENT]
    + [OutboxKind.UPDATE_INCIDENT] * 4
    + [OutboxKind.ALERTS_JOINED] * 2
    + [OutboxKind.STATUS_CHANGES] * 2
    + [OutboxKind.THREAD_REPLY]
)


@dataclass
class DrainRun:
    seconds: float
    events: int
    events_per_second: float
    rounds: int
    texts_embedded: int
    incidents: int
    lock_ms_per_event: float  # the worker's write transactions (SQLite's one write lock, shared with ingest)
    statements_per_event: float  # SQL statements the drain ran (the worker and its prefetch)


class _AcceptOnly(ingest.SqliteBackend):
    """The service's SQLite defaults, with the worker off: deliveries are stored, not applied."""

    def prepare(self, state_dir: Path) -> dict[str, str]:
        return {**super().prepare(state_dir), "INCIBOT_PROCESS_DELIVERIES": "false"}


def accept_storm(cfg: ingest.Config, stream: Path, rate: int, state_dir: Path) -> dict[str, Any]:
    """The storm stored by ``incibot serve`` (worker off) in ``state_dir``; returns what the replay achieved."""
    stats: dict[str, float] = {}
    with ingest.running_service(cfg, _AcceptOnly(), state_dir, stats) as service:
        sent = replay(list(read_stream(stream)), f"http://127.0.0.1:{service.port}", ingest.TOKEN, rate=rate)
    if sent.errors:
        raise ingest.BenchError(f"the replay had {sent.errors} HTTP errors")
    return {"lines": sent.lines, "webhooks": sent.webhooks, "alerts_per_second": round(sent.rate, 1)}


def add_history(state_dir: Path, incidents: int) -> None:
    """Give the stored state ``incidents`` incidents resolved a year ago, with their sent Slack writes."""
    year_ago = datetime.now(UTC) - timedelta(days=365)
    engine = create_engine(f"sqlite:///{state_dir / 'incibot.db'}")
    with engine.begin() as connection:
        first = connection.scalar(text("SELECT coalesce(max(id), 0) FROM incidents")) + 1_000_000
        ids = range(first, first + incidents)
        connection.execute(
            insert(Incident),
            [
                {
                    "id": i,
                    "status": IncidentStatus.RESOLVED,
                    "title": f"past incident {i}",
                    "severity": "warning",
                    "source": "alertmanager",
                    "group_key": f"past/{i}",
                    "opened_at": year_ago,
                    "last_alert_at": year_ago,
                    "resolved_at": year_ago,
                }
                for i in ids
            ],
        )
        for start in range(0, incidents, 1_000):
            connection.execute(
                insert(OutboxItem),
                [
                    {
                        "kind": kind,
                        "incident_id": i,
                        "channel": "C0HISTORY1",
                        "payload": {},
                        "status": OutboxStatus.DONE,
                        "not_before": year_ago,
                        "created_at": year_ago,
                        "sent_at": year_ago,
                    }
                    for i in ids[start : start + 1_000]
                    for kind in HISTORY_ITEMS
                ],
            )
    engine.dispose()


def drain(state_dir: Path) -> DrainRun:
    """Apply every pending delivery of ``state_dir`` with the service's worker, in this process (started by
    :func:`_in_child` with the service's environment)."""
    from bot.runtime import Runtime  # the model libraries load only in the child that drains
    from bot.settings import Settings

    runtime = Runtime.build(Settings(state_dir=state_dir))
    if runtime.classification is not None:
        runtime.classification.load()  # what the worker does at start-up, not timed
    embedder = runtime.knowledge.embedder if runtime.knowledge is not None else None
    misses = getattr(embedder, "misses", 0)
    with runtime.database.read() as session:
        events = session.scalar(
            text("SELECT coalesce(sum(json_array_length(events)), 0) FROM deliveries WHERE status = 'pending'")
        )
    statements = _count_statements(runtime.database.engine)
    rounds, started = 0, time.perf_counter()
    if runtime.prefetch is not None:
        runtime.prefetch.start()
    while True:
        done = runtime.worker.step()  # the worker thread's round: its SQLite budget follows the arrival rate (0 here)
        rounds += 1
        if not done and not _pending(runtime):
            break
    seconds = time.perf_counter() - started
    if runtime.prefetch is not None:
        runtime.prefetch.stop()
    with runtime.database.read() as session:
        incidents = session.scalar(text("SELECT count(*) FROM incidents")) or 0
    runtime.database.dispose()
    return DrainRun(
        seconds=round(seconds, 2),
        events=int(events or 0),
        events_per_second=round((events or 0) / seconds, 1),
        rounds=rounds,
        texts_embedded=getattr(embedder, "misses", 0) - misses,
        incidents=incidents,
        lock_ms_per_event=round(1000 * runtime.worker.held_total / max(events or 0, 1), 2),
        statements_per_event=round(statements[0] / max(events or 0, 1), 1),
    )


def _count_statements(engine: Any) -> list[int]:
    """A counter (one item) of the statements ``engine`` executes from now on."""
    from sqlalchemy import event

    counted = [0]

    @event.listens_for(engine, "after_cursor_execute")
    def _count(*_args: Any) -> None:
        counted[0] += 1

    return counted


def _pending(runtime: Any) -> bool:
    with runtime.database.read() as session:
        return bool(session.scalar(text("SELECT count(*) FROM deliveries WHERE status = 'pending'")))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--stream", type=Path, default=DEFAULT_STREAM, help="storm-format stream (the dev storm)")
    parser.add_argument("--rate", type=int, default=1000, help="alerts/s of the replay that fills the queue (1000)")
    parser.add_argument("--runs", type=int, default=3, help="drains of the same accepted storm (3); medians")
    parser.add_argument("--incibot", type=Path, default=Path(sys.executable).parent / "incibot")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON results file")
    parser.add_argument(
        "--history", type=int, default=0, help=f"past incidents (each with {len(HISTORY_ITEMS)} sent Slack writes) (0)"
    )
    args = parser.parse_args(argv)
    if not args.stream.is_file():
        parser.error(f"{args.stream} not found (the dev storm is in /work/shared/data/storm/); pass --stream")
    if args.runs < 1 or args.rate < 1 or args.history < 0:
        parser.error("need --runs >= 1, --rate >= 1 and --history >= 0")
    cfg = ingest.parse_args(["--db", "sqlite", "--incibot", str(args.incibot)])
    started = time.monotonic()
    variants = ["fresh"] + (["with_history"] if args.history else [])
    runs: dict[str, list[DrainRun]] = {variant: [] for variant in variants}
    try:
        with ingest.phase_dir(cfg, "drain") as accepted, ingest.phase_dir(cfg, "drain-history") as with_history:
            replayed = accept_storm(cfg, args.stream, args.rate, accepted)
            if args.history:  # the same accepted storm, after a year of incidents
                shutil.rmtree(with_history)
                shutil.copytree(accepted, with_history)
                add_history(with_history, args.history)
            for number in range(1, args.runs + 1):
                for variant in variants:
                    with ingest.phase_dir(cfg, f"drain-run{number}") as state_dir:
                        shutil.rmtree(state_dir)
                        shutil.copytree(accepted if variant == "fresh" else with_history, state_dir)
                        runs[variant].append(_in_child(state_dir))
                    print(f"  run {number}/{args.runs} ({variant}): {_describe(runs[variant][-1])}", flush=True)
    except ingest.BenchError as exc:
        print(f"drain benchmark could not run: {exc}", file=sys.stderr)
        return 2
    medians = {variant: _medians(done) for variant, done in runs.items()}
    for variant, values in medians.items():
        print(f"medians of {args.runs} runs ({variant}): {_describe(DrainRun(**values))}")
    _write(args, replayed, runs, medians, time.monotonic() - started)
    print(f"results in {args.output}")
    return 0


def _medians(runs: list[DrainRun]) -> dict[str, float]:
    return {name: statistics.median(getattr(run, name) for run in runs) for name in asdict(runs[0])}


def _in_child(state_dir: Path) -> DrainRun:
    """One drain in a fresh interpreter (nothing cached from an earlier run: the embedder, parsed profiles)."""
    env = {**ingest._service_env(state_dir, {}), "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, __file__, "--drain-one", str(state_dir)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ingest.BenchError(f"the drain failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return DrainRun(**json.loads(done.stdout.strip().splitlines()[-1]))


def _describe(run: DrainRun) -> str:
    return (
        f"{run.events:,.0f} events in {run.seconds:.1f} s ({run.events_per_second:.1f}/s), {run.rounds:,.0f} rounds, "
        f"{run.texts_embedded:,.0f} texts embedded, {run.incidents:,.0f} incidents; per event "
        f"{run.lock_ms_per_event:.2f} ms of the write lock, {run.statements_per_event:.1f} SQL statements"
    )


def _write(
    args: argparse.Namespace,
    replayed: dict[str, Any],
    runs: dict[str, list[DrainRun]],
    medians: dict[str, dict[str, float]],
    wall: float,
) -> None:
    git = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False, cwd=BENCH_DIR)
    document = {
        "benchmark": "processing worker alone, applying an accepted storm (SQLite)",
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python bench/drain.py " + " ".join(sys.argv[1:]),
        "wall_seconds": round(wall, 1),
        "machine": {
            "cpu_count": os.cpu_count(),
            "python_version": platform.python_version(),
            "git_commit": git.stdout.strip(),
        },
        "config": {
            "stream": args.stream.name,
            "rate": args.rate,
            "runs": args.runs,
            "history_incidents": args.history,
            "history_outbox_items": args.history * len(HISTORY_ITEMS),
            "replay": replayed,
        },
        "medians": medians["fresh"],
        "runs": [asdict(run) for run in runs["fresh"]],
        **(
            {
                "medians_with_history": medians["with_history"],
                "runs_with_history": [asdict(r) for r in runs["with_history"]],
            }
            if "with_history" in runs
            else {}
        ),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--drain-one":
        print(json.dumps(asdict(drain(Path(sys.argv[2])))))
        sys.exit(0)
    sys.exit(main())
