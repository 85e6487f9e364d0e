"""``incibot eval qa``: question → knowledge-base documents, through the virtual agent's retrieval and abstention.

Needs no database, server or network. Answers as for a responder: every document under ``--kb`` is eligible
whatever its audience; ids are paths relative to ``--kb`` without ``.md``. Each ``--extra-kb`` folder (distractors)
is added with ids prefixed ``extra/`` (the first), ``extra2/``, ``extra3/``… so they never collide with ``--kb``'s
(a clash is an error). ``--questions-from-alerts FILE`` reads an alert query file instead (runbook_queries.jsonl):
each alert's summary is the question, never its name. Prediction lines are the retrieval format of FORMATS.md.
Exit 0 once the predictions are written, whatever the scores; 2 on bad input; 1 when the model cannot be loaded.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from bot.settings import Settings
from knowledge.embeddings import EmbeddingModelError, load_embedder
from knowledge.evaluation import abstention_at, measure, write_predictions
from knowledge.qa.documents import KbSource, load_kb
from knowledge.qa.evaluation import answer_all, questions_from_alerts, read_questions
from knowledge.qa.search import DEFAULT_QA_THRESHOLD, QaIndex


def add_parser(eval_commands: Any) -> None:
    qa = eval_commands.add_parser("qa", help="people's questions → knowledge-base documents, with abstention")
    qa.add_argument("--kb", required=True, type=Path, help="knowledge folder (Markdown; ids relative to it)")
    source = qa.add_mutually_exclusive_group(required=True)
    source.add_argument("--questions", type=Path, help='JSONL[.gz]: {"id", "question", "expected"} per line')
    source.add_argument(
        "--questions-from-alerts", type=Path, metavar="FILE", help="runbook_queries.jsonl: each alert's summary"
    )
    qa.add_argument(
        "--extra-kb", type=Path, action="append", default=[], help="distractor folder, ids prefixed extra/ (repeatable)"
    )
    qa.add_argument("--threshold", type=float, default=DEFAULT_QA_THRESHOLD, help="abstention threshold")
    qa.add_argument("--predictions-out", type=Path, default=None, help="write one JSON line per question")
    qa.add_argument("--model", default=None, help="embedding model (default: INCIBOT_EMBEDDING_MODEL)")
    qa.set_defaults(handler=eval_qa)


def extra_prefix(number: int) -> str:
    """The id prefix of the ``number``-th (from 1) ``--extra-kb`` folder."""
    return "extra/" if number == 1 else f"extra{number}/"


def eval_qa(settings: Settings, args: argparse.Namespace) -> int:
    try:
        if args.questions is not None:
            questions = read_questions(args.questions)
        else:
            questions = questions_from_alerts(args.questions_from_alerts)
        extras = [KbSource(path, prefix=extra_prefix(n)) for n, path in enumerate(args.extra_kb, 1)]
        documents = load_kb(args.kb, *extras)
    except (OSError, ValueError) as exc:
        print(f"incibot: {exc}", file=sys.stderr)
        return 2
    known = {d.doc_id for d in documents}
    unknown = sorted({doc for q in questions for doc in q.expected if doc not in known})
    if unknown:
        print(f"incibot: expected documents not in the knowledge base: {', '.join(unknown[:5])}", file=sys.stderr)
        return 2
    started = time.monotonic()
    try:
        embedder = load_embedder(args.model or settings.embedding_model, precision=settings.embedding_precision)
    except EmbeddingModelError as exc:
        print(f"incibot: {exc}", file=sys.stderr)
        return 1
    index = QaIndex(documents, embedder, threshold=args.threshold)
    indexed = time.monotonic()
    results = answer_all(index, questions)
    answered = time.monotonic()
    answerable = sum(1 for q in questions if q.expected)
    print(
        f"knowledge base {args.kb}{''.join(f' + {p}' for p in args.extra_kb)}: {len(documents)} documents; "
        f"{len(questions)} questions ({answerable} answerable, {len(questions) - answerable} without)"
    )
    print(
        f"model {embedder.name}: loaded and indexed in {indexed - started:.1f}s; "
        f"{1000 * (answered - indexed) / max(len(questions), 1):.0f} ms per question"
    )
    metrics = measure(questions, results)
    precision, recall, false_abstention = abstention_at(questions, results, args.threshold)
    print(
        f"recall@1 {metrics.top1:.3f}  recall@3 {metrics.recall3:.3f}  MRR {metrics.mrr:.3f}  AUROC {metrics.auroc:.3f}"
    )
    print(
        f"threshold {args.threshold:.3f}: abstention precision {precision:.3f} recall {recall:.3f}, "
        f"false abstention {false_abstention:.3f} (best threshold on this file: {metrics.threshold:.3f})"
    )
    if args.predictions_out:
        write_predictions(args.predictions_out, questions, results, args.threshold)
        print(f"predictions written to {args.predictions_out}")
    return 0
