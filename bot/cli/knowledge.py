"""``incibot eval retrieval`` and ``incibot knowledge search|index``: runbook and incident search from a shell.

``eval retrieval`` and ``knowledge search`` (runbooks) need no database, server or network: the runbooks are
read from a folder and the embedding model from local files (``INCIBOT_EMBEDDING_MODEL``: the bundled
all-MiniLM-L6-v2 by default, or a model directory). ``--kind incidents`` and ``knowledge index`` read the
database, through the same service the bot uses.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bot.cli import classify_eval, correlation_eval, qa_eval
from bot.db import migrate
from bot.knowledge.service import SIMILAR_MIN_SCORE
from bot.knowledge.wiring import Knowledge, KnowledgeConfigurationError
from bot.runtime import open_database
from bot.settings import Settings
from knowledge.embeddings import EmbeddingModelError, load_embedder
from knowledge.evaluation import (
    evaluate_all,
    format_table,
    measure,
    read_queries,
    run_queries,
    write_predictions,
)
from knowledge.retrieval import DEFAULT_THRESHOLD, Ranker, RunbookIndex
from knowledge.runbooks import load_corpus
from knowledge.similarity_eval import format_rows, read_stream, similarity_table


def register(commands: Any) -> None:
    evaluate = commands.add_parser("eval", help="measure the ML parts on evaluation files")
    eval_commands = evaluate.add_subparsers(dest="eval_command", required=True, metavar="COMMAND")
    retrieval = eval_commands.add_parser("retrieval", help="alert → runbook retrieval on a query file")
    retrieval.add_argument("--corpus", required=True, type=Path, help="folder of Markdown runbooks")
    retrieval.add_argument("--queries", required=True, type=Path, help="runbook_queries.jsonl[.gz]")
    retrieval.add_argument("--without-alertname", action="store_true", help="drop the alertname label")
    retrieval.add_argument("--no-name-rule", action="store_true", help="no exact-name/runbook_url rule")
    retrieval.add_argument("--ranker", choices=[r.value for r in Ranker], default=Ranker.HYBRID.value)
    retrieval.add_argument("--predictions-out", type=Path, default=None, help="write one JSON line per query")
    retrieval.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD, help="abstention threshold")
    retrieval.add_argument("--model", default=None, help="embedding model (default: INCIBOT_EMBEDDING_MODEL)")
    retrieval.set_defaults(handler=eval_retrieval)
    similar = eval_commands.add_parser("similar", help="similar-incident threshold on an alert stream with truth")
    similar.add_argument("--stream", required=True, type=Path, help="storm.jsonl[.gz] (the storm format)")
    similar.add_argument("--model", default=None, help="embedding model (default: INCIBOT_EMBEDDING_MODEL)")
    similar.set_defaults(handler=eval_similar)
    correlation_eval.add_parser(eval_commands)
    classify_eval.add_parser(eval_commands)
    qa_eval.add_parser(eval_commands)

    knowledge = commands.add_parser("knowledge", help="search runbooks and past incidents; build the indexes")
    knowledge_commands = knowledge.add_subparsers(dest="knowledge_command", required=True, metavar="COMMAND")
    search = knowledge_commands.add_parser("search", help="runbooks (or past incidents) for a free-text query")
    search.add_argument("text", help="what to look for")
    search.add_argument("--kind", choices=["runbooks", "incidents"], default="runbooks")
    search.add_argument("--json", action="store_true", help="print JSON")
    search.add_argument(
        "--runbooks", type=Path, default=None, help="runbook folder (default: INCIBOT_RUNBOOKS_DIR, else the samples)"
    )
    search.add_argument("--limit", type=int, default=5)
    search.add_argument("--model", default=None, help="embedding model (default: INCIBOT_EMBEDDING_MODEL)")
    search.set_defaults(handler=knowledge_search)
    index = knowledge_commands.add_parser(
        "index", help="index the runbook folder and every incident not yet indexed, and save both indexes"
    )
    index.add_argument(
        "--runbooks", type=Path, default=None, help="runbook folder (default: INCIBOT_RUNBOOKS_DIR, else the samples)"
    )
    index.add_argument("--model", default=None, help="embedding model (default: INCIBOT_EMBEDDING_MODEL)")
    index.set_defaults(handler=knowledge_index)


def _model(settings: Settings, args: argparse.Namespace) -> str:
    return str(args.model or settings.embedding_model)


def eval_retrieval(settings: Settings, args: argparse.Namespace) -> int:
    try:
        queries = read_queries(args.queries)
        runbooks = load_corpus(args.corpus)
    except (OSError, ValueError) as exc:
        print(f"incibot: {exc}", file=sys.stderr)
        return 2
    started = time.monotonic()
    try:
        embedder = load_embedder(_model(settings, args), precision=settings.embedding_precision)
    except EmbeddingModelError as exc:
        print(f"incibot: {exc}", file=sys.stderr)
        return 1
    loaded = time.monotonic()
    index = RunbookIndex(runbooks, embedder)
    indexed = time.monotonic()
    answerable = sum(1 for q in queries if q.expected)
    print(
        f"corpus {args.corpus}: {len(runbooks)} runbooks, {index.unit_count} sections embedded; "
        f"queries {args.queries}: {len(queries)} ({answerable} answerable, {len(queries) - answerable} without)"
    )
    print(f"model {embedder.name}: loaded in {loaded - started:.1f}s, corpus indexed in {indexed - loaded:.1f}s")
    print(format_table(evaluate_all(index, queries)))
    ranker = Ranker(args.ranker)
    results = run_queries(
        index, queries, ranker=ranker, drop_alertname=args.without_alertname, name_rule=not args.no_name_rule
    )
    chosen = measure(queries, results)
    label = ("no name" if args.without_alertname else "name") + (", no rule" if args.no_name_rule else " + rule")
    abstained = sum(1 for r in results if r.confidence < args.threshold)
    print(
        f"selected: {ranker.value}, {label}: top1 {chosen.top1:.3f} MRR {chosen.mrr:.3f} AUROC {chosen.auroc:.3f}; "
        f"threshold {args.threshold:.3f} (cross-validated choice on this file: {chosen.threshold:.3f}) "
        f"abstains on {abstained}/{len(queries)}"
    )
    if args.predictions_out:
        write_predictions(args.predictions_out, queries, results, args.threshold)
        print(f"predictions written to {args.predictions_out}")
    return 0


def eval_similar(settings: Settings, args: argparse.Namespace) -> int:
    try:
        alerts = read_stream(args.stream)
        embedder = load_embedder(_model(settings, args), precision=settings.embedding_precision)
    except (OSError, ValueError, EmbeddingModelError) as exc:
        print(f"incibot: {exc}", file=sys.stderr)
        return 2 if not isinstance(exc, EmbeddingModelError) else 1
    print(f"stream {args.stream}: {len(alerts)} incidents (first firing alert of each)")
    print(format_rows(similarity_table(alerts, embedder)))
    print(f"the bot shows past incidents at or above {SIMILAR_MIN_SCORE:.2f}")
    return 0


def _knowledge(settings: Settings, args: argparse.Namespace) -> Knowledge | None:
    """The bot's knowledge parts over its database, with ``--runbooks``/``--model`` applied; None after
    printing why when the database is not migrated, the runbook folder is missing or the model does not load."""
    overrides: dict[str, Any] = {"embedding_model": _model(settings, args)}
    if args.runbooks is not None:
        overrides["runbooks_dir"] = args.runbooks
    settings = settings.model_copy(update=overrides)
    database = open_database(settings)
    if not migrate.is_at_head(database):
        database.dispose()
        print("incibot: the database is not migrated: run `incibot db upgrade` first", file=sys.stderr)
        return None
    try:
        return Knowledge.build(settings, database)
    except KnowledgeConfigurationError as exc:
        database.dispose()
        print(f"incibot: {exc}", file=sys.stderr)
        return None


def knowledge_index(settings: Settings, args: argparse.Namespace) -> int:
    knowledge = _knowledge(settings, args)
    if knowledge is None:
        return 1
    indexer = knowledge.indexer
    indexer.open()
    embedded = 0
    while done := indexer.run_once():
        embedded += done
    incidents = knowledge.service.incidents
    incidents.save(force=True)
    runbooks = knowledge.service.runbooks.index()
    print(f"runbooks: {len(runbooks)} from {knowledge.service.runbooks.folder} ({runbooks.unit_count} sections)")
    print(f"incidents: {embedded} embedded now, {incidents.count} in the index (watermark {incidents.watermark})")
    print(f"saved under {settings.effective_index_dir}")
    knowledge.service.database.dispose()
    return 0


def knowledge_search(settings: Settings, args: argparse.Namespace) -> int:
    if args.kind == "incidents":
        return _search_incidents(settings, args)
    folder = args.runbooks or settings.effective_runbooks_dir
    try:
        runbooks = load_corpus(folder)
        embedder = load_embedder(_model(settings, args), precision=settings.embedding_precision)
    except (OSError, EmbeddingModelError) as exc:
        print(f"incibot: {exc}", file=sys.stderr)
        return 1
    result = RunbookIndex(runbooks, embedder).search(args.text, limit=args.limit)
    if args.json:
        hits = [{"doc": h.doc, "score": h.score, "section": h.section} for h in result.hits]
        print(json.dumps({"results": hits, "abstain": result.abstain, "confidence": result.confidence}))
        return 0
    if result.abstain:
        print(f"no runbook fits (best confidence {result.confidence:.2f} < {DEFAULT_THRESHOLD:.2f}); closest:")
    for hit in result.hits:
        section = f" § {hit.section}" if hit.section else ""
        print(f"{hit.score:5.2f}  {hit.doc}{section}")
    return 0


def _search_incidents(settings: Settings, args: argparse.Namespace) -> int:
    knowledge = _knowledge(settings, args)
    if knowledge is None:
        return 1
    knowledge.service.incidents.open()
    found = knowledge.service.search_incidents(args.text, limit=args.limit)
    knowledge.service.database.dispose()
    if args.json:
        print(json.dumps({"results": [item.to_json() for item in found]}))
        return 0
    if not found:
        print("no similar past incidents")
    now = datetime.now(UTC)
    for item in found:
        age = format_age(now - item.opened_at)
        print(f"{item.score:5.2f}  #{item.id} [{item.status}, opened {age} ago] {item.title} — {item.resolution}")
    return 0


def format_age(elapsed: timedelta) -> str:
    minutes = max(0, int(elapsed.total_seconds() // 60))
    if minutes < 120:
        return f"{minutes} min"
    return f"{minutes // 60} h" if minutes < 48 * 60 else f"{minutes // 1440} d"
