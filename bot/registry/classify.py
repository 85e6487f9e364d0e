"""The classifier in the registry: loading a version through its card, the held-out split, its score, its challenger.

The held-out split is fixed: every seed rule (with all its technologies) and every labelled incident whose name's
sha256 falls in one bucket of :data:`BUCKETS` is held out, and no challenger trains on it, so registered versions
are compared on examples neither has seen. A champion trained otherwise (the packaged default learned the whole
seed set) is compared on people's held-out labels only, and not at all with fewer than :data:`MIN_COMPARED` of them.

The primary metric is the macro-F1 of the best class (abstention aside, as ``incibot eval classify`` scores it);
accuracy, coverage, accuracy on covered items, the mean confidence and the abstention share are kept beside it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from bot.db.database import Database
from bot.registry.data import Provenance, category_corrections, category_line, first_alert, provenance
from bot.registry.lifecycle import Challenger, Score, Verdict, challenge
from bot.registry.store import RegistryError, check_card, read_card

if TYPE_CHECKING:
    from knowledge.classify.model import DataSource, TextClassifier
    from knowledge.correlation.correlator import TextEmbedder

KIND = "classify"
BUCKETS = 5  # one rule or labelled incident in this many is held out
SPLIT = f"sha256(seed rule or labelled incident) mod {BUCKETS} == 0"  # in the card: versions trained on it
MIN_COMPARED = 10  # held-out examples a champion trained otherwise must have left to be compared on
SEED, PEOPLE = "seed set", "people's labels"  # Example.source


@dataclass(frozen=True, slots=True)
class Example:
    """One labelled classifier input: its text, category, group (what is held out together) and source."""

    text: str
    label: str
    group: str  # a seed rule ("database/2/0") or a labelled incident ("incident/12")
    source: str  # SEED or PEOPLE
    line: Mapping[str, Any] = field(default_factory=dict)  # a person's label: its export line (provenance)

    @property
    def held_out(self) -> bool:
        return int(hashlib.sha256(self.group.encode()).hexdigest(), 16) % BUCKETS == 0


def seed_set() -> list[Example]:
    """The seed set's alerts, grouped by rule."""
    from knowledge.classify.seed import seed_examples, seed_groups

    return [
        Example(text, label, group, SEED) for (text, label), group in zip(seed_examples(), seed_groups(), strict=True)
    ]


def people_labels(session: Session) -> list[Example]:
    """People's category picks and corrections, one per incident, each with its export line."""
    from knowledge.classify.inputs import incident_text

    out = []
    for row in category_corrections(session):
        text = incident_text(row.texts or [])
        if text:
            group = f"incident/{row.incident_id}" if row.incident_id is not None else f"label/{row.id}"
            line = category_line(row, first_alert(session, row.incident_id))
            out.append(Example(text, row.category, group, PEOPLE, line))
    return out


def split(examples: Sequence[Example]) -> tuple[list[Example], list[Example]]:
    """``(training, held out)``."""
    return [e for e in examples if not e.held_out], [e for e in examples if e.held_out]


def comparable(held: Sequence[Example], champion_card: Mapping[str, Any] | None) -> list[Example]:
    """The held-out examples the champion (its registry card; ``None``: the packaged default) has not trained on:
    all of them for a version trained on :data:`SPLIT`, else only people's labels."""
    if champion_card is not None and champion_card.get("split") == SPLIT:
        return list(held)
    return [e for e in held if e.source == PEOPLE]


def describe(examples: Sequence[Example]) -> str:
    """The held-out data in a line: how many of each source, and their digest."""
    digest = hashlib.sha256()
    for e in examples:
        digest.update(f"{e.text.replace(chr(10), chr(92) + 'n')}\t{e.label}\n".encode())
    seed = sum(e.source == SEED for e in examples)
    return (
        f"held-out split ({SPLIT}): {seed} seed alerts, {len(examples) - seed} people's labels "
        f"(sha256 {digest.hexdigest()})"
    )


def sources(examples: Sequence[Example]) -> list[Provenance]:
    """The examples' provenance by source: the seed alerts' digest, the digest of people's labels' export lines."""
    from knowledge.classify.seed import CATALOGUE
    from knowledge.classify.training import data_source

    seed = [e for e in examples if e.source == SEED]
    people = [e for e in examples if e.source == PEOPLE]
    out = []
    if seed:
        found = data_source("", [e.text for e in seed], [e.label for e in seed])
        out.append(Provenance(SEED, f"seed set {CATALOGUE.name}", found.sha256, found.examples))
    if people:
        last = max(int(str(e.line["id"]).rsplit("-", 1)[-1]) for e in people)
        description = f"people's category labels (category_labels ids up to {last})"
        out.append(provenance(description, [dict(e.line) for e in people]))
    return out


def same_training(champion_card: Mapping[str, Any] | None, data: Sequence[Provenance], command: str) -> bool:
    """Whether the champion (its registry card) was trained by ``command`` on exactly ``data`` with this code: a
    challenger would be the same model again."""
    if champion_card is None or champion_card.get("command") != command:
        return False
    if champion_card.get("data") != [p.to_json() for p in data]:
        return False
    try:
        check_card(champion_card, KIND)
    except RegistryError:
        return False
    return True


def data_sources(found: Sequence[Provenance]) -> list[DataSource]:
    """The same provenance as the artefact's own card gives it."""
    from knowledge.classify.model import DataSource

    return [DataSource(p.description, p.sha256, p.size) for p in found]


def load(directory: Path | None, embedder: TextEmbedder | None = None) -> TextClassifier:
    """A registered version (its registry card checked first), or with ``None`` the packaged default."""
    from knowledge.classify.model import DEFAULT_DIR, TextClassifier

    if directory is None:
        return TextClassifier.load(DEFAULT_DIR, embedder)
    check_card(read_card(directory), KIND)
    return TextClassifier.load(directory, embedder)


def score(model: TextClassifier, held: Sequence[Example]) -> Score:
    """Macro-F1 of the best class (primary); accuracy, coverage, accuracy on covered, mean confidence, abstention."""
    from sklearn.metrics import f1_score  # type: ignore[import-untyped]

    if not held:
        raise ValueError("no held-out examples to score on")
    predictions = model.predict([e.text for e in held])
    truth = [e.label for e in held]
    right = [p.label == t for p, t in zip(predictions, truth, strict=True)]
    covered = [r for r, p in zip(right, predictions, strict=True) if not p.abstain]
    details = {
        "accuracy": round(sum(right) / len(held), 5),
        "coverage": round(len(covered) / len(held), 5),
        "covered_accuracy": round(sum(covered) / len(covered), 5) if covered else 0.0,
        "confidence_mean": round(sum(p.confidence for p in predictions) / len(held), 5),
        "abstention": round(1 - len(covered) / len(held), 5),
        "items": float(len(held)),
    }
    macro_f1 = float(f1_score(truth, [p.label for p in predictions], average="macro", zero_division=0))
    return Score("macro_f1", round(macro_f1, 5), True, details)


def challenger(model: TextClassifier, data: Sequence[Provenance]) -> Challenger:
    """The registry's view of a trained, saved classifier (trained on the examples ``data`` describes, outside the
    held-out split)."""
    card = model.card
    if model.path is None:
        raise ValueError("save the classifier before registering it")
    return Challenger(
        KIND,
        card.version,
        model.path,
        card.created_at,
        card.command,
        data,
        tuple(model.labels),
        {"split": SPLIT, "threshold": card.threshold, "estimator": card.estimator},
    )


def contest(
    database: Database,
    model: TextClassifier,
    data: Sequence[Provenance],
    held: Sequence[Example],
    *,
    actor: str,
    now: datetime,
    embedder: TextEmbedder | None = None,
) -> Verdict:
    """Score the saved ``model`` (trained on ``data``) and the champion on ``held``; register the model, and promote
    it when its macro-F1 is not lower."""
    return challenge(
        database,
        challenger(model, data),
        model,
        partial(load, embedder=embedder),
        lambda candidate: score(candidate, held),
        describe(held),
        actor=actor,
        now=now,
    )
