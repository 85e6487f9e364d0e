"""``incibot models``: train a challenger, list the registry, promote, roll back, watch drift, export the data.

Training needs no server or network: generated days (the repository's stream generator) and/or labelled stream
files, the local embedder, and people's corrections from the database when it is there. The artefact goes to
``<state dir>/models/<kind>/<version>/``, is registered, scored beside the champion on the same held-out data and
promoted only when it is not worse (bot.registry.lifecycle); the workers load the champion when they start.
"""

from __future__ import annotations

import argparse
import getpass
import json
import shlex
import sys
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy.exc import SQLAlchemyError

from bot.correlation.wiring import LazyEmbedder, correlation_policy, models_dir
from bot.registry import drift
from bot.registry.data import Provenance, export_lines, json_line, pair_corrections, pair_line, provenance
from bot.registry.lifecycle import challenge
from bot.registry.models import ModelVersion
from bot.registry.store import DEFAULT_VERSION, KINDS, RegistryError, champion, promote, rollback, versions
from bot.runtime import open_database, utc_now
from bot.settings import Settings
from knowledge.correlation.features import FEATURES
from knowledge.correlation.topology import Topology
from knowledge.embeddings import EmbeddingModelError, load_embedder

if TYPE_CHECKING:
    from bot.registry.classify import Example
    from knowledge.correlation.training import ExtraPairs, LabelledStream

# scikit-learn takes most of a second to import: the model modules are imported by the commands that use them,
# not by every `incibot` invocation.

DEFAULT_GENERATED = 8  # generated days: about 150,000 pairs, well over the 10,000 a model needs
CORRECTIONS_WEIGHT = 20.0  # a person's correction counts as much as this many generated pairs


def register(commands: Any) -> None:
    models = commands.add_parser("models", help="train, list, promote and roll back the learned models")
    model_commands = models.add_subparsers(dest="models_command", required=True, metavar="COMMAND")
    train = model_commands.add_parser("train", help="train a model")
    kinds = train.add_subparsers(dest="kind", required=True, metavar="MODEL")
    correlate = kinds.add_parser(
        "correlate", help="the correlator's pair model (does this alert belong to that incident)"
    )
    correlate.add_argument(
        "--stream",
        action="append",
        default=[],
        metavar="FILE[:TOPOLOGY]",
        help="a labelled stream (storm format, with truth), replayed with its topology file when given and without",
    )
    correlate.add_argument(
        "--generated", type=int, default=DEFAULT_GENERATED, metavar="N", help="generated 24 h streams (default 8)"
    )
    correlate.add_argument("--seed", type=int, default=1, help="first generator seed, and the split's seed")
    correlate.add_argument(
        "--out",
        type=Path,
        default=None,
        help="write the artefact there and register nothing (default: the registry, as a challenger)",
    )
    correlate.add_argument(
        "--held-out",
        default=None,
        metavar="FILE[:TOPOLOGY]",
        help="a labelled stream the champion and the challenger are scored on (default: generated world "
        "1000, 24 h, which no training run uses)",
    )
    correlate.add_argument(
        "--corrections-weight",
        type=float,
        default=CORRECTIONS_WEIGHT,
        metavar="W",
        help=f"weight of people's corrections stored in the database (merge, split, not related; default "
        f"{CORRECTIONS_WEIGHT:g}; 0: leave them out)",
    )
    correlate.set_defaults(handler=train_correlate_command)
    classify = kinds.add_parser("classify", help="the incident classifier (seed set plus people's category picks)")
    classify.add_argument("--seed", type=int, default=1, help="the folds' and the estimator's seed")
    classify.add_argument(
        "--out",
        type=Path,
        default=None,
        help="train on every example, write the artefact there and register nothing (default: the registry, as a "
        "challenger trained outside the held-out split)",
    )
    classify.add_argument("--no-labels", action="store_true", help="leave out people's labels in the database")
    classify.add_argument(
        "--refit-prior", action="store_true", help="fit the seed prior again instead of the shipped one's"
    )
    classify.set_defaults(handler=train_classify_command)
    register_registry_commands(model_commands)


def register_registry_commands(model_commands: Any) -> None:
    listing = model_commands.add_parser("list", help="registered versions, their metrics, and each kind's champion")
    listing.add_argument("--json", action="store_true", help="one JSON document instead of lines for people")
    listing.set_defaults(handler=list_models)
    promoting = model_commands.add_parser("promote", help="make a registered version its kind's champion")
    promoting.add_argument("kind", choices=KINDS)
    promoting.add_argument("version", help=f"a registered version, or {DEFAULT_VERSION} for the packaged default")
    promoting.add_argument("--by", default=getpass.getuser(), help="who promotes it (default: this user)")
    promoting.set_defaults(handler=promote_command)
    rolling = model_commands.add_parser("rollback", help="retire the champion: the previous one serves again")
    rolling.add_argument("kind", choices=KINDS)
    rolling.set_defaults(handler=rollback_command)
    drifting = model_commands.add_parser(
        "drift", help="this period's confidence and abstention beside the champion's evaluation"
    )
    drifting.add_argument("--days", type=float, default=7.0, help="the period, in days back from now (default 7)")
    drifting.set_defaults(handler=drift_command)
    data = model_commands.add_parser("data", help="the training data people made")
    data_commands = data.add_subparsers(dest="data_command", required=True, metavar="COMMAND")
    export = data_commands.add_parser("export", help="people's corrections as JSON Lines (FORMATS.md shapes)")
    export.add_argument("--out", type=Path, default=None, help="file to write (default: standard output)")
    export.set_defaults(handler=export_command)


def train_correlate_command(settings: Settings, args: argparse.Namespace) -> int:
    from knowledge.correlation.model import KIND
    from knowledge.correlation.training import train_correlate

    if args.generated < 0:
        print("incibot: --generated must be 0 or more", file=sys.stderr)
        return 2
    try:
        streams = [_stream(value) for value in args.stream]
        held_out = _stream(args.held_out) if args.held_out else None
    except (OSError, ValueError) as exc:
        print(f"incibot: {exc}", file=sys.stderr)
        return 2
    if not streams and not args.generated:
        print("incibot: nothing to train on: give --stream or --generated N > 0", file=sys.stderr)
        return 2
    command = shlex.join(
        [
            "incibot",
            "models",
            "train",
            KIND,
            *(f"--stream={value}" for value in args.stream),
            f"--generated={args.generated}",
            f"--seed={args.seed}",
        ]
    )
    extra, people = people_corrections(settings, args.corrections_weight)
    embedder = LazyEmbedder(settings.embedding_model)  # loaded once a stream has been read: bad input fails fast
    policy = correlation_policy(settings)
    try:
        model = train_correlate(streams, args.generated, args.seed, embedder, command, policy, extra=extra)
        directory = model.save(args.out or models_dir(settings) / KIND / model.card.version)
        print(model.card.summary())
        print(f"saved to {directory}")
        if args.out is not None:
            return 0
        return _challenge_correlate(settings, model, people, held_out, embedder)
    except EmbeddingModelError as exc:
        print(f"incibot: {exc}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:
        print(f"incibot: {exc}", file=sys.stderr)
        return 2


def _challenge_correlate(
    settings: Settings,
    model: Any,
    people: dict[str, Provenance],
    held_out: LabelledStream | None,
    embedder: LazyEmbedder,
) -> int:
    """Score the trained model and the champion on the held-out stream; register it, promote it if not worse."""
    from bot.registry import correlate
    from knowledge.correlation.training import generated_streams

    with tempfile.TemporaryDirectory(prefix="incibot-held-out-") as folder:
        stream = held_out or generated_streams(1, correlate.EVAL_SEED, Path(folder))[0]
        print(f"scoring the champion and the challenger on {stream.description}")
        held = correlate.held_out_pairs(stream, embedder, correlation_policy(settings))
    database = open_database(settings)
    try:
        verdict = challenge(
            database,
            correlate.challenger(model, people),
            model,
            correlate.load,
            lambda candidate: correlate.score(candidate, held),
            held.description,
            actor=f"incibot models train ({getpass.getuser()})",
            now=utc_now(),
        )
    finally:
        database.dispose()
    print(verdict.summary())
    return 0


def stored_corrections(settings: Settings, weight: float) -> list[ExtraPairs]:
    """People's corrections from the database as weighted training pairs (see :func:`people_corrections`)."""
    return people_corrections(settings, weight)[0]


def people_corrections(settings: Settings, weight: float) -> tuple[list[ExtraPairs], dict[str, Provenance]]:
    """People's corrections from the database as weighted training pairs, each once (none without a database
    or a weight), and their provenance by the description the model card gives them."""
    from knowledge.correlation.training import ExtraPairs

    if weight <= 0:
        return [], {}
    database = open_database(settings)
    try:
        with database.read() as session:
            pairs = pair_corrections(session, len(FEATURES))
            lines = [pair_line(pair, None, FEATURES) for pair in pairs]
    except SQLAlchemyError as exc:
        print(f"incibot: corrections left out (database unavailable: {str(exc).splitlines()[0]})", file=sys.stderr)
        return [], {}
    finally:
        database.dispose()
    if not pairs:
        return [], {}
    print(f"adding {len(pairs)} labelled pairs from people's corrections (weight {weight:g})")
    rows = np.array([pair.features for pair in pairs], dtype=np.float64)
    labels = np.array([int(pair.related) for pair in pairs], dtype=np.int8)
    last = max(pair.id for pair in pairs)
    description = f"corrections in the database ({len(pairs)} pairs, correlation_feedback ids up to {last})"
    return [ExtraPairs(rows, labels, weight, description)], {description: provenance(description, lines)}


def train_classify_command(settings: Settings, args: argparse.Namespace) -> int:
    from bot.registry import classify
    from knowledge.classify.features import fit_seed_prior
    from knowledge.classify.model import KIND
    from knowledge.classify.training import train_classifier

    try:
        people, current = _classify_state(settings, labels=not args.no_labels)
    except SQLAlchemyError as exc:
        print(f"incibot: database unavailable: {str(exc).splitlines()[0]}", file=sys.stderr)
        if args.out is None:
            return 1
        people, current = [], None
    if people:
        print(f"{len(people)} category labels people picked")
    examples = classify.seed_set() + people
    held: list[classify.Example] = []
    if args.out is None:
        examples, held_out = classify.split(examples)
        held = classify.comparable(held_out, current.card if current is not None else None)
        if len(held) < classify.MIN_COMPARED:
            version = current.version if current is not None else DEFAULT_VERSION
            print(
                f"{KIND}: kept the champion {version}: it was not trained on the held-out split, so it is compared "
                f"on people's held-out labels only, and {len(held)} of {len(people)} are held out (at least "
                f"{classify.MIN_COMPARED} needed); nothing trained"
            )
            return 0
    command = shlex.join(
        ["incibot", "models", "train", KIND, f"--seed={args.seed}"]
        + (["--no-labels"] if args.no_labels else [])
        + (["--refit-prior"] if args.refit_prior else [])
    )
    found = classify.sources(examples)
    if current is not None and args.out is None and classify.same_training(current.card, found, command):
        print(f"{KIND}: kept the champion {current.version}: it was trained on the same data by the same command")
        return 0
    try:
        embedder = load_embedder(settings.embedding_model)
        prior = fit_seed_prior(embedder, args.seed) if args.refit_prior else None
        model = train_classifier(
            [e.text for e in examples],
            [e.label for e in examples],
            embedder,
            seed=args.seed,
            prior=prior,
            groups=[e.group for e in examples],
            command=command,
            sources=classify.data_sources(found),
            embedding_model=embedder.name,
        )
    except EmbeddingModelError as exc:
        print(f"incibot: {exc}", file=sys.stderr)
        return 1
    directory = model.save(args.out or models_dir(settings) / KIND / model.card.version)
    print(model.card.summary())
    print(f"saved to {directory}")
    if args.out is not None:
        return 0
    print(f"scoring the champion and the challenger on the {classify.describe(held)}")
    database = open_database(settings)
    try:
        actor = f"incibot models train ({getpass.getuser()})"
        verdict = classify.contest(database, model, found, held, actor=actor, now=utc_now(), embedder=embedder)
    finally:
        database.dispose()
    print(verdict.summary())
    return 0


def _classify_state(settings: Settings, *, labels: bool) -> tuple[list[Example], ModelVersion | None]:
    """People's category labels (none with ``labels`` false) and the classify champion's row (``None``: the
    packaged default)."""
    from bot.registry import classify

    database = open_database(settings)
    try:
        with database.read() as session:
            people = classify.people_labels(session) if labels else []
            current = champion(session, classify.KIND)
            session.expunge_all()
    finally:
        database.dispose()
    return people, current


def list_models(settings: Settings, args: argparse.Namespace) -> int:
    rows, champions = _registered(settings)
    listing = [_entry(kind, rows, champions) for kind in KINDS]
    if args.json:
        print(json.dumps([item for entries in listing for item in entries], indent=1))
        return 0
    for entries in listing:
        for item in entries:
            mark = "* " if item["champion"] else "  "
            label = "shipped default" if item["version"] == DEFAULT_VERSION else item["version"]
            print(f"{mark}{label}: {item['summary']}")
    return 0


def promote_command(settings: Settings, args: argparse.Namespace) -> int:
    database = open_database(settings)
    try:
        with database.write() as session:
            if args.version == DEFAULT_VERSION:
                while champion(session, args.kind) is not None:
                    rollback(session, args.kind, now=utc_now())
            else:
                promote(session, args.kind, args.version, actor=args.by, now=utc_now(), note=f"promoted by {args.by}")
    except RegistryError as exc:
        print(f"incibot: {exc}", file=sys.stderr)
        return 1
    finally:
        database.dispose()
    print(f"{args.kind}: {args.version} is the champion; workers load it when they start")
    return 0


def rollback_command(settings: Settings, args: argparse.Namespace) -> int:
    database = open_database(settings)
    try:
        with database.write() as session:
            retired, now_serving = rollback(session, args.kind, now=utc_now())
            serving = now_serving.version if now_serving is not None else f"{DEFAULT_VERSION} (the packaged default)"
    except RegistryError as exc:
        print(f"incibot: {exc}", file=sys.stderr)
        return 1
    finally:
        database.dispose()
    print(f"{args.kind}: rolled back {retired.version}; the champion is {serving}; workers load it when they start")
    return 0


def drift_command(settings: Settings, args: argparse.Namespace) -> int:
    if args.days <= 0:
        print("incibot: --days must be more than 0", file=sys.stderr)
        return 2
    database = open_database(settings)
    try:
        with database.read() as session:
            since = utc_now() - timedelta(days=args.days)
            champions = drift.champions(session)
            for kind in KINDS:
                observed = drift.observe(session, kind, since)
                print(drift.compare(kind, champions[kind], observed, drift.baseline(session, kind), args.days))
    finally:
        database.dispose()
    return 0


def export_command(settings: Settings, args: argparse.Namespace) -> int:
    database = open_database(settings)
    try:
        with database.read() as session:
            lines = list(export_lines(session, FEATURES))
    finally:
        database.dispose()
    text = "".join(json_line(line) for line in lines)
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.write_text(text, encoding="utf-8")
    print(f"{len(lines)} corrections exported", file=sys.stderr)
    return 0


def _registered(settings: Settings) -> tuple[list[ModelVersion], set[int]]:
    """Every registered version and the ids of the champions (none, with a note, where the registry cannot be
    read)."""
    database = open_database(settings)
    try:
        with database.read() as session:
            rows = versions(session)
            champions = {row.id for kind in KINDS if (row := champion(session, kind)) is not None}
            session.expunge_all()
    except SQLAlchemyError as exc:
        print(f"incibot: registry unavailable ({str(exc).splitlines()[0]}): packaged defaults only", file=sys.stderr)
        return [], set()
    finally:
        database.dispose()
    return rows, champions


def _entry(kind: str, rows: list[ModelVersion], champions: set[int]) -> list[dict[str, Any]]:
    """A kind's versions for ``list``, newest first, then its packaged default (version 0)."""
    entries = [
        {
            "kind": kind,
            "version": row.version,
            "champion": row.id in champions,
            "path": row.path,
            "created_at": row.created_at.isoformat(),
            "promoted_at": row.promoted_at.isoformat() if row.promoted_at else None,
            "promoted_by": row.promoted_by,
            "rolled_back_at": row.rolled_back_at.isoformat() if row.rolled_back_at else None,
            "metrics": row.metrics,
            "note": row.note,
            "summary": _summary(row),
        }
        for row in reversed(rows)
        if row.kind == kind
    ]
    default = {
        "kind": kind,
        "version": DEFAULT_VERSION,
        "champion": not any(entry["champion"] for entry in entries),
        "path": None,
        "summary": _default_summary(kind),
    }
    return [*entries, default]


def _summary(row: ModelVersion) -> str:
    scores = row.metrics.get("challenger") or {}
    shown = ", ".join(f"{name} {value:g}" for name, value in scores.items() if isinstance(value, float | int))
    state = "rolled back" if row.rolled_back_at else "promoted" if row.promoted_at else "not promoted"
    return f"{row.kind} {row.version} ({state}; created {row.created_at:%Y-%m-%d %H:%M}): {shown}; {row.note}"


def _default_summary(kind: str) -> str:
    """The packaged default's own summary (its card's), or why it cannot be read."""
    try:
        if kind == "correlate":
            from bot.registry import correlate

            return str(correlate.load(None).card.summary())
        from knowledge.classify.model import load_classifier

        return f"model {load_classifier(None, None).card.version}"
    except (ImportError, ValueError) as exc:
        return f"unusable: {exc}"


def _stream(value: str) -> LabelledStream:
    from knowledge.correlation.training import LabelledStream

    path, _, topology = value.partition(":")
    stream = Path(path)
    if not stream.is_file():
        raise ValueError(f"--stream {value}: no such file {stream}")
    return LabelledStream(stream, Topology.load(topology) if topology else None, value)
