"""``incibot eval dedup``: the correlator over a labelled alert stream in simulated time, scored beside baselines.

Needs no database, server or network: the pair model is the shipped default (or the newest under
``--models-dir``), at its own threshold unless ``--threshold`` says another, the embedder the local one, the
topology an optional file. Predictions are written as each line is applied; the scores are printed when the stream
says the truth.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import IO, Any

from bot.cli.arguments import probability
from bot.correlation.wiring import correlation_policy
from bot.settings import Settings
from knowledge.correlation.correlator import Correlator
from knowledge.correlation.graph import DependencyGraph
from knowledge.correlation.stream import read_stream
from knowledge.correlation.topology import Topology
from knowledge.embeddings import EmbeddingModelError, load_embedder
from knowledge.rootcause.ranker import RootCauseRanker
from knowledge.rootcause.replay import IncidentCauses


def add_parser(eval_commands: Any) -> None:
    dedup = eval_commands.add_parser("dedup", help="alert → incident correlation on a stream (storm format)")
    dedup.add_argument("--stream", required=True, type=Path, help="storm.jsonl[.gz]: {at, alert, truth?} per line")
    dedup.add_argument("--topology", type=Path, default=None, help="topology file (JSON or YAML), optional")
    dedup.add_argument("--predictions-out", type=Path, default=None, help="write one JSON line per stream line")
    dedup.add_argument(
        "--models-dir", type=Path, default=None, help="use the newest model under DIR/correlate/ (default: shipped)"
    )
    dedup.add_argument(
        "--threshold",
        type=probability,
        default=None,
        metavar="P",
        help="join when the pair model's probability reaches P (0 < P < 1; default: the model's own threshold)",
    )
    dedup.set_defaults(handler=eval_dedup)


def eval_dedup(settings: Settings, args: argparse.Namespace) -> int:
    # scikit-learn takes most of a second to import: only this command pays for it, not every `incibot`.
    from knowledge.correlation.evaluate import (
        BASELINES,
        earliest_service_baseline,
        format_root_cause,
        format_scores,
        has_truth,
        predict,
        root_cause_metrics,
        score,
    )
    from knowledge.correlation.model import ModelError, load_pair_model

    try:
        lines = list(read_stream(args.stream))
        topology = Topology.load(args.topology) if args.topology else None
    except (OSError, ValueError) as exc:
        print(f"incibot: {exc}", file=sys.stderr)
        return 2
    if not lines:
        print(f"incibot: {args.stream}: no stream lines", file=sys.stderr)
        return 2
    try:
        model = load_pair_model(args.models_dir)
        embedder = load_embedder(settings.embedding_model, precision=settings.embedding_precision)
    except (ModelError, EmbeddingModelError) as exc:
        print(f"incibot: {exc}", file=sys.stderr)
        return 1
    threshold = model.threshold if args.threshold is None else args.threshold
    correlator = Correlator(model, embedder, topology, correlation_policy(settings, threshold))
    graph = None if topology is not None else DependencyGraph()
    causes = IncidentCauses(RootCauseRanker(topology, graph), graph)
    print(
        f"stream {args.stream}: {len(lines)} lines; topology {args.topology or 'none'}; "
        f"model {model.card.version} (threshold {_threshold_said(threshold, model.threshold)}, {model.path})"
    )
    started = time.monotonic()
    predicted: dict[int, str] = {}
    roots: dict[int, dict[str, Any]] = {}
    out: Any = args.predictions_out.open("w", encoding="utf-8") if args.predictions_out else nullcontext()
    with out as handle:
        for prediction in predict(lines, correlator, causes):
            predicted[prediction["index"]] = prediction["incident"]
            roots[prediction["index"]] = prediction
            _write(handle, prediction)
    elapsed = time.monotonic() - started
    print(f"correlated in {elapsed:.1f}s ({len(lines) / max(elapsed, 1e-9):.0f} lines/s)")
    if args.predictions_out:
        print(f"predictions written to {args.predictions_out}")
    if not has_truth(lines):
        print("the stream carries no truth for every firing line: predictions only, no scores")
        return 0
    print(format_scores("incibot correlator", score(lines, predicted)))
    for name, baseline in BASELINES.items():
        print(format_scores(name, score(lines, baseline(lines))))
    print(format_root_cause("root cause, incibot ranking", root_cause_metrics(lines, roots)))
    baseline_roots = earliest_service_baseline(lines, predicted)
    print(format_root_cause("root cause, baseline earliest alert's service", root_cause_metrics(lines, baseline_roots)))
    return 0


def _threshold_said(threshold: float, own: float) -> str:
    return f"{threshold:.2f}" if threshold == own else f"{threshold:.2f} by --threshold, the model's own {own:.2f}"


def _write(handle: IO[str] | None, prediction: dict[str, Any]) -> None:
    if handle is not None:
        handle.write(json.dumps(prediction) + "\n")
        handle.flush()
