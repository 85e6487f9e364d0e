"""``incibot models train correlate`` and ``incibot models list``: the pair model's artefacts.

Training needs no database, server or network: generated days (the repository's stream generator) and/or
labelled stream files, the local embedder. The artefact goes to ``<state dir>/models/correlate/<version>/``,
where the bot picks the newest valid one up at start; without one it uses the shipped default.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy.exc import SQLAlchemyError

from bot.correlation.wiring import LazyEmbedder, correlation_policy, models_dir
from bot.incidents.corrections import feedback_pairs
from bot.runtime import open_database
from bot.settings import Settings
from knowledge.correlation.topology import Topology
from knowledge.embeddings import EmbeddingModelError

if TYPE_CHECKING:
    from knowledge.correlation.training import ExtraPairs, LabelledStream

# scikit-learn takes most of a second to import: the model modules are imported by the commands that use them,
# not by every `incibot` invocation.

DEFAULT_GENERATED = 8  # generated days: about 150,000 pairs, well over the 10,000 a model needs
CORRECTIONS_WEIGHT = 20.0  # a person's correction counts as much as this many generated pairs


def register(commands: Any) -> None:
    models = commands.add_parser("models", help="train and list the learned models")
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
    correlate.add_argument("--out", type=Path, default=None, help="artefact directory (default: the state dir's)")
    correlate.add_argument(
        "--corrections-weight",
        type=float,
        default=CORRECTIONS_WEIGHT,
        metavar="W",
        help=f"weight of people's corrections stored in the database (merge, split, not related; default "
        f"{CORRECTIONS_WEIGHT:g}; 0: leave them out)",
    )
    correlate.set_defaults(handler=train_correlate_command)
    model_commands.add_parser("list", help="the pair models found, and which one is active").set_defaults(
        handler=list_models
    )


def train_correlate_command(settings: Settings, args: argparse.Namespace) -> int:
    from knowledge.correlation.model import KIND
    from knowledge.correlation.training import train_correlate

    if args.generated < 0:
        print("incibot: --generated must be 0 or more", file=sys.stderr)
        return 2
    try:
        streams = [_stream(value) for value in args.stream]
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
    extra = stored_corrections(settings, args.corrections_weight)
    embedder = LazyEmbedder(settings.embedding_model)  # loaded once a stream has been read: bad input fails fast
    try:
        model = train_correlate(
            streams, args.generated, args.seed, embedder, command, correlation_policy(settings), extra=extra
        )
    except EmbeddingModelError as exc:
        print(f"incibot: {exc}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:
        print(f"incibot: {exc}", file=sys.stderr)
        return 2
    directory = model.save(args.out or models_dir(settings) / KIND / model.card.version)
    print(model.card.summary())
    print(f"saved to {directory}")
    return 0


def list_models(settings: Settings, args: argparse.Namespace) -> int:
    from knowledge.correlation.model import DEFAULT_DIR, ModelError, PairModel, artefacts, load_pair_model

    root = models_dir(settings)
    try:
        active = load_pair_model(root).path
    except ModelError as exc:
        print(f"incibot: no usable pair model: {exc}", file=sys.stderr)
        active = None
    for directory in [*artefacts(root), DEFAULT_DIR]:
        mark = "* " if directory == active else "  "
        label = "shipped default" if directory == DEFAULT_DIR else str(directory)
        try:
            print(f"{mark}{label}: " + PairModel.load(directory).card.summary())
        except ModelError as exc:
            print(f"{mark}{label}: unusable: {exc}")
    return 0 if active is not None else 1


def stored_corrections(settings: Settings, weight: float) -> list[ExtraPairs]:
    from knowledge.correlation.training import ExtraPairs

    """People's corrections from the database as weighted training pairs (none without a database or a weight)."""
    if weight <= 0:
        return []
    database = open_database(settings)
    try:
        with database.read() as session:
            rows, labels = feedback_pairs(session)
    except SQLAlchemyError as exc:
        print(f"incibot: corrections left out (database unavailable: {str(exc).splitlines()[0]})", file=sys.stderr)
        return []
    finally:
        database.dispose()
    if not len(labels):
        return []
    print(f"adding {len(labels)} labelled pairs from people's corrections (weight {weight:g})")
    return [ExtraPairs(rows, labels.astype(np.int8), weight, f"corrections in the database ({len(labels)} pairs)")]


def _stream(value: str) -> LabelledStream:
    from knowledge.correlation.training import LabelledStream

    path, _, topology = value.partition(":")
    stream = Path(path)
    if not stream.is_file():
        raise ValueError(f"--stream {value}: no such file {stream}")
    return LabelledStream(stream, Topology.load(topology) if topology else None, value)
