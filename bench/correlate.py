"""Benchmark of one learned correlation decision with 10,000 open incidents (target: p99 < 10 ms on SQLite).

The state: a fresh SQLite database (``incibot db upgrade``'s schema) holding ``--incidents`` open incidents built
from the dev storm (``--stream``): each replica of the storm (its clusters and fingerprints renamed ``-rN``)
gives one incident per ground-truth fault, with up to ``--alerts-per-incident`` of its distinct alerts recorded
through the production :class:`bot.correlation.store.ProfileStore` (profile JSON and the ``incident_keys``
index), last activity spread over the hour before the decisions. Many incidents share services, namespaces
and nodes across replicas, so each index key finds its full ``PER_KEY`` incidents.

The decisions: ``--decisions`` new alerts (storm alerts of random replicas under fresh fingerprints, so the
pair model scores every eligible candidate instead of the same-alert rule), each decided by the production
path, :meth:`bot.correlation.live.LearnedCorrelation.decide` in a database session (candidates from the key
index, the shipped pair model, the real embedder) with nothing prepared ahead: the cost the worker pays in its
write transaction when a prepared decision is stale. One untimed pass warms the embedder's cache, then
``--runs`` timed passes; p50/p99 are medians over runs, written to ``bench/results/correlate.json``.

Run: ``.venv/bin/python bench/correlate.py`` (about a minute to build the state on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from bot.cli.replay import StreamLine, read_stream
from bot.correlation.live import LearnedCorrelation
from bot.correlation.store import ProfileStore
from bot.correlation.wiring import build_correlator, correlation_policy
from bot.db import migrate
from bot.db.database import Database
from bot.incidents.models import Incident, IncidentStatus
from bot.ingest.models import Alert
from bot.settings import Settings
from knowledge.correlation.facts import alert_facts

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_STREAM = BENCH_DIR.parent.parent / "shared" / "data" / "storm" / "storm.jsonl.gz"
DEFAULT_OUTPUT = BENCH_DIR / "results" / "correlate.json"
TARGET_P99_MS = 10.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stream", type=Path, default=DEFAULT_STREAM, help="storm-format stream (the dev storm)")
    parser.add_argument("--incidents", type=int, default=10_000, help="open incidents in the state (10000)")
    parser.add_argument("--alerts-per-incident", type=int, default=4, help="distinct alerts recorded per incident")
    parser.add_argument("--decisions", type=int, default=500, help="decisions timed per run (500)")
    parser.add_argument("--runs", type=int, default=3, help="timed passes (3); medians")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON results file")
    args = parser.parse_args(argv)
    if not args.stream.is_file():
        print(f"{args.stream} not found (pass --stream)", file=sys.stderr)
        return 2
    faults = _faults(list(read_stream(args.stream)))
    with tempfile.TemporaryDirectory(prefix="bench-correlate-") as tmp:
        settings = Settings(state_dir=Path(tmp), database_url=f"sqlite:///{tmp}/incibot.db", knowledge=False)
        database = Database(settings.effective_database_url)
        migrate.upgrade(database)
        correlation = LearnedCorrelation(build_correlator(settings), ProfileStore(correlation_policy(settings).horizon))
        now = datetime.now(UTC)
        started = time.perf_counter()
        _build_state(database, correlation, faults, args.incidents, args.alerts_per_incident, now)
        build_s = time.perf_counter() - started
        rng = random.Random(args.seed)
        replicas = -(-args.incidents // len(faults))
        flat = [alert for alerts in faults for alert in alerts]
        new = [_alert(rng.choice(flat), rng.randrange(replicas), f"new{n}", now) for n in range(args.decisions)]
        _decide_all(database, correlation, new, now)  # warms the embedder's cache
        runs = [_decide_all(database, correlation, new, now) for _ in range(args.runs)]
        database.dispose()
    p50 = statistics.median(float(np.percentile(r["ms"], 50)) for r in runs)
    p99 = statistics.median(float(np.percentile(r["ms"], 99)) for r in runs)
    candidates = statistics.mean(runs[0]["candidates"])
    result: dict[str, Any] = {
        "incidents": args.incidents,
        "alerts_per_incident": args.alerts_per_incident,
        "decisions": args.decisions,
        "runs": args.runs,
        "state_build_s": round(build_s, 1),
        "candidates_mean": round(candidates, 1),
        "p50_ms": round(p50, 2),
        "p99_ms": round(p99, 2),
        "target_p99_ms": TARGET_P99_MS,
        "met": p99 < TARGET_P99_MS,
        "measured_at": now.isoformat(timespec="seconds"),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"{args.incidents:,} open incidents, {args.decisions} decisions x {args.runs} runs, "
        f"{candidates:.1f} candidates on average: p50 {p50:.2f} ms, p99 {p99:.2f} ms "
        f"(target p99 < {TARGET_P99_MS:g} ms: {'met' if result['met'] else 'MISSED'}); results in {args.output}"
    )
    return 0


def _faults(lines: list[StreamLine]) -> list[list[dict[str, Any]]]:
    """The storm's firing alerts by ground-truth fault (distinct fingerprints, in order)."""
    by_fault: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for line in lines:
        if line.truth is not None and line.alert.get("status") == "firing":
            by_fault[str(line.truth["incident"])].setdefault(line.alert["fingerprint"], line.alert)
    return [list(alerts.values()) for alerts in by_fault.values()]


def _alert(raw: dict[str, Any], replica: int, tag: str, at: datetime) -> Alert:
    """A transient alert row: ``raw`` in replica ``replica`` (cluster and fingerprint renamed)."""
    labels = dict(raw["labels"])
    labels["cluster"] = f"{labels.get('cluster', '')}-r{replica}"
    fingerprint = f"{raw['fingerprint']}-r{replica}-{tag}"
    return Alert(
        source="alertmanager",
        fingerprint=fingerprint,
        group_key=f"{{}}:{{alertname={labels.get('alertname', '')!r}, cluster={labels['cluster']!r}}}",
        alertname=labels.get("alertname", ""),
        status="firing",
        severity=labels.get("severity", "warning"),
        labels=labels,
        annotations=dict(raw.get("annotations", {})),
        starts_at=at,
        ends_at=None,
        generator_url=raw.get("generatorURL"),
        severity_hint=None,
    )


def _build_state(
    database: Database,
    correlation: LearnedCorrelation,
    faults: list[list[dict[str, Any]]],
    count: int,
    per_incident: int,
    now: datetime,
) -> None:
    store, correlator = correlation.store, correlation.correlator
    with database.write() as session:
        for n in range(count):
            replica, fault = divmod(n, len(faults))
            at = now - timedelta(seconds=3600 * (count - n) / count)
            alerts = [_alert(raw, replica, "old", at) for raw in faults[fault][:per_incident]]
            incident = Incident(
                status=IncidentStatus.TRIGGERED,
                title=alerts[0].alertname,
                severity="warning",
                source="alertmanager",
                group_key=alerts[0].group_key[:200],
                alert_count=len(alerts),
                opened_at=at,
                last_alert_at=at,
            )
            session.add(incident)
            session.flush()
            for alert in alerts:
                facts = alert_facts(alert.normalized(), alert.group_key)
                store.record(session, incident, facts, at, correlator.components(facts))


def _decide_all(
    database: Database, correlation: LearnedCorrelation, alerts: list[Alert], at: datetime
) -> dict[str, list[float]]:
    timings: list[float] = []
    candidates: list[float] = []
    with database.read() as session:
        for alert in alerts:
            started = time.perf_counter()
            decision = correlation.decide(session, alert, at)
            timings.append((time.perf_counter() - started) * 1000)
            candidates.append(len(decision.considered))
    return {"ms": timings, "candidates": candidates}


if __name__ == "__main__":
    sys.exit(main())
