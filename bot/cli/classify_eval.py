"""``incibot eval classify``: the product's classifier, cross-validated on a labelled alert file, beside baselines.

Needs no database, server or network: each training fold trains the very pipeline the worker uses
(:func:`~knowledge.classify.training.train_classifier`, with the shipped seed prior) and predicts the held-out fold.
Prediction line: ``{"id", "label", "confidence", "abstain"}``. Exit 0 once predictions are written, whatever the
scores; 2 on bad input; 1 when the embedding model cannot be loaded.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from bot.settings import Settings
from knowledge.embeddings import EmbeddingModelError, load_embedder


def add_parser(eval_commands: Any) -> None:
    classify = eval_commands.add_parser("classify", help="incident classification, cross-validated on a label field")
    classify.add_argument("--data", required=True, type=Path, help="JSONL[.gz]: {id, alert, <label fields>} per line")
    classify.add_argument("--label", required=True, help="the field to predict (e.g. group)")
    classify.add_argument("--folds", type=int, default=5, help="cross-validation folds (default 5)")
    classify.add_argument("--group-by", default=None, metavar="FIELD", help="keep each value of FIELD in one fold")
    classify.add_argument("--predictions-out", type=Path, default=None, help="write one JSON line per item")
    classify.add_argument("--seed", type=int, default=1, help="the classifier's training seed")
    classify.set_defaults(handler=eval_classify)


def eval_classify(settings: Settings, args: argparse.Namespace) -> int:
    # scikit-learn takes most of a second to import: only this command pays for it, not every `incibot`.
    from knowledge.classify.evaluate import BASELINES, cross_predict, format_scores, make_folds, read_items, score
    from knowledge.classify.model import Prediction
    from knowledge.classify.training import train_classifier

    try:
        items = read_items(args.data, args.label, args.group_by)
        folds = make_folds(items, args.folds, args.group_by is not None)
    except OSError as exc:
        print(f"incibot: {args.data}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"incibot: {exc}", file=sys.stderr)
        return 2
    labels = sorted({item.label for item in items})
    if len(labels) < 2:
        print(f"incibot: {args.data}: field {args.label!r} has a single value; nothing to classify", file=sys.stderr)
        return 2
    try:
        embedder = load_embedder(settings.embedding_model, precision=settings.embedding_precision)
    except EmbeddingModelError as exc:
        print(f"incibot: {exc}", file=sys.stderr)
        return 1
    split = f"grouped by {args.group_by}" if args.group_by else "stratified"
    print(f"{args.data}: {len(items)} items, {len(labels)} labels of {args.label!r}; {len(folds)} folds, {split}")

    thresholds: list[float] = []

    def product(texts: list[str], train_labels: list[str], tests: list[str]) -> list[Prediction]:
        model = train_classifier(texts, train_labels, embedder, seed=args.seed)
        thresholds.append(model.threshold)
        return model.predict(tests)

    started = time.monotonic()
    predictions = cross_predict(items, folds, product)
    elapsed = time.monotonic() - started
    if args.predictions_out:
        with args.predictions_out.open("w", encoding="utf-8") as handle:
            for item, prediction in zip(items, predictions, strict=True):
                line = {
                    "id": item.id,
                    "label": prediction.label,
                    "confidence": round(prediction.confidence, 6),
                    "abstain": prediction.abstain,
                }
                handle.write(json.dumps(line) + "\n")
        print(f"predictions written to {args.predictions_out}")
    shown = ", ".join(f"{t:.3f}" for t in thresholds)
    print(f"trained and predicted {len(folds)} folds in {elapsed:.1f}s; thresholds per fold: {shown}")
    print(format_scores("incibot classifier", score(items, predictions), abstains=True))
    for name, baseline in BASELINES.items():
        print(format_scores(name, score(items, cross_predict(items, folds, baseline)), abstains=False))
    return 0
