"""``incibot models train``: train a challenger and let the registry decide (the registry's other commands are in
:mod:`bot.cli.registry`).

Training needs no server or network: generated days (the repository's stream generator) and/or labelled stream
files, the local embedder, and people's corrections from the database when it is there. The artefact goes to
``<state dir>/models/<kind>/<version>/``, is registered, scored beside the champion on the same held-out data and
promoted only when it is not worse (bot.registry.lifecycle); the workers load the champion when they start.
"""

from __future__ import annotations

import argparse
import getpass
import shlex
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy.exc import SQLAlchemyError

from bot.cli import registry
from bot.cli.arguments import probability
from bot.correlation.wiring import LazyEmbedder, correlation_policy, models_dir
from bot.registry.data import Provenance, pair_corrections, pair_line, provenance
from bot.registry.lifecycle import challenge
from bot.registry.models import ModelVersion
from bot.registry.store import DEFAULT_VERSION, champion
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
        "--threshold",
        type=probability,
        default=None,
        metavar="P",
        help="the join threshold, instead of the one the validation replays score best (their scores still go "
        "on the model card)",
    )
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
    registry.register(model_commands)


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
            *([f"--threshold={args.threshold:g}"] if args.threshold is not None else []),
        ]
    )
    extra, people = people_corrections(settings, args.corrections_weight)
    # Loaded once a stream has been read: bad input fails fast.
    embedder = LazyEmbedder(settings.embedding_model, precision=settings.embedding_precision)
    policy = correlation_policy(settings)
    try:
        model = train_correlate(
            streams, args.generated, args.seed, embedder, command, policy, extra=extra, threshold=args.threshold
        )
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
        embedder = load_embedder(settings.embedding_model, precision=settings.embedding_precision)
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


def _stream(value: str) -> LabelledStream:
    from knowledge.correlation.training import LabelledStream

    path, _, topology = value.partition(":")
    stream = Path(path)
    if not stream.is_file():
        raise ValueError(f"--stream {value}: no such file {stream}")
    return LabelledStream(stream, Topology.load(topology) if topology else None, value)
