"""Training data and fitting for the pair model.

Pairs come from labelled streams (the storm format's ``truth.incident``) replayed with the true incidents as
the state (teacher forcing): at each new occurrence that the same-alert rule does not decide, every candidate
the live index would offer becomes a pair, labelled 1 when it is the alert's true incident. Each stream is
replayed with its topology and without, so that the model works both ways. The model is a gradient-boosted
classifier calibrated by isotonic regression; a held-out split of whole decisions gives the card's scores.

It stays one module: collecting the pairs, fitting, scoring the held-out split and choosing the threshold by
replays are the steps of one pipeline (:func:`train_correlate`) over the same :class:`Pairs` and
:class:`LabelledStream`; the registry's challenge reuses its collection and generated streams, not a part of its own.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt
import sklearn  # type: ignore[import-untyped]
from sklearn.calibration import CalibratedClassifierCV  # type: ignore[import-untyped]
from sklearn.ensemble import HistGradientBoostingClassifier  # type: ignore[import-untyped]
from sklearn.model_selection import GroupKFold, GroupShuffleSplit  # type: ignore[import-untyped]

from knowledge.alerts import AlertStatus
from knowledge.correlation.correlator import CorrelationPolicy, Correlator, PairScorer, TextEmbedder
from knowledge.correlation.evaluate import predict, score
from knowledge.correlation.facts import alert_facts
from knowledge.correlation.features import FEATURES
from knowledge.correlation.generator import generate, write_lines
from knowledge.correlation.model import (
    DataSource,
    HeldOut,
    ModelCard,
    PairModel,
    RuleScores,
    ThresholdChoice,
    new_version,
)
from knowledge.correlation.state import CorrelationState
from knowledge.correlation.stream import StreamLine, group_key, occurrence_of, read_stream
from knowledge.correlation.topology import Topology
from knowledge.embeddings import file_sha256

MIN_PAIRS = 10_000
HELD_OUT = 0.2  # the share of decisions held out for the card's scores
GENERATED_HOURS = 24  # an int: the generator seeds its schedule with the text of ``hours`` ("24" != "24.0")
ECE_BINS = 10
THRESHOLDS: tuple[float, ...] = (0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5)
VALIDATION_DAYS = 2  # generated days after the training ones, replayed to choose the threshold

Rows = npt.NDArray[np.float64]
Labels = npt.NDArray[np.int8]


class TrainingError(ValueError):
    """Training data that cannot make a model (too few pairs, a stream without truth)."""


class _NoScorer:
    """The correlator only extracts features while pairs are collected."""

    def probabilities(self, rows: Rows) -> Rows:
        return np.zeros(len(rows))


@dataclass(slots=True)
class Pairs:
    """Feature rows, labels, and the decision each row belongs to (whole decisions stay in one split)."""

    rows: list[Rows] = field(default_factory=list)
    labels: list[Labels] = field(default_factory=list)
    groups: list[npt.NDArray[np.int64]] = field(default_factory=list)
    decisions: int = 0

    def arrays(self) -> tuple[Rows, Labels, npt.NDArray[np.int64]]:
        if not self.rows:
            return np.zeros((0, len(FEATURES))), np.zeros(0, dtype=np.int8), np.zeros(0, dtype=np.int64)
        return np.vstack(self.rows), np.concatenate(self.labels), np.concatenate(self.groups)

    def __len__(self) -> int:
        return sum(len(labels) for labels in self.labels)


def labelled_pairs(lines: Iterable[StreamLine], correlator: Correlator, pairs: Pairs | None = None) -> Pairs:
    """Add the pairs of one labelled stream to ``pairs``; decision ``k`` of the stream is group
    ``pairs.decisions + k`` (replaying the stream again from the same start numbers its decisions the same)."""
    pairs = pairs if pairs is not None else Pairs()
    first = pairs.decisions
    decision = 0
    state = CorrelationState(correlator)
    true_ids: dict[str, int] = {}
    for n, line in enumerate(lines):
        if line.truth is None or "incident" not in line.truth:
            raise TrainingError(f"line {line.index + 1}: no truth.incident to learn from")
        if n % 500 == 0:
            state.forget_old(line.at)
        occurrence = occurrence_of(line.alert)
        if line.alert.status == AlertStatus.RESOLVED:
            state.resolve(occurrence, line.at)
            continue
        if occurrence in state.occurrences:
            continue
        facts = alert_facts(line.alert, group_key(line.alert.labels))
        known = true_ids.get(str(line.truth["incident"]))
        candidates = state.candidates(facts, line.at)
        eligible = [c for c in candidates if correlator._reopenable(c, line.at)]
        if correlator.same_alert(facts, line.at, candidates) is None and eligible:
            rows, _ = correlator.score_rows(facts, line.at, eligible)
            pairs.rows.append(rows)
            pairs.labels.append(np.array([c.id == known for c in eligible], dtype=np.int8))
            pairs.groups.append(np.full(len(eligible), first + decision, dtype=np.int64))
            decision += 1
        incident = state.apply(facts, line.at, occurrence, known if known in state.profiles else None)
        true_ids[str(line.truth["incident"])] = incident
    pairs.decisions = max(pairs.decisions, first + decision)
    return pairs


@dataclass(frozen=True, slots=True)
class LabelledStream:
    """A stream file with truth, and the topology to replay it with (besides without)."""

    path: Path
    topology: Topology | None
    description: str


@dataclass(frozen=True, slots=True)
class ExtraPairs:
    """Labelled pairs from elsewhere (people's corrections), weighted against the streams' pairs."""

    rows: Rows
    labels: Labels
    weight: float
    description: str


@dataclass(slots=True)
class TrainingSet:
    pairs: Pairs = field(default_factory=Pairs)
    sources: list[DataSource] = field(default_factory=list)


def collect(
    streams: Iterable[LabelledStream],
    embedder: TextEmbedder | None,
    policy: CorrelationPolicy | None = None,
    progress: Callable[[str], None] = print,
) -> TrainingSet:
    """The pairs of every stream, replayed with its topology (when it has one) and without; ``policy`` says
    which resolved incidents are still candidates (its reopen window), as in the correlator that will use them."""
    found = TrainingSet()
    for stream in streams:
        lines = list(read_stream(stream.path))
        start, before = found.pairs.decisions, len(found.pairs)
        for topology in [stream.topology, None] if stream.topology is not None else [None]:
            found.pairs.decisions = start  # the same decisions again: the same groups
            try:
                labelled_pairs(lines, Correlator(_NoScorer(), embedder, topology, policy), found.pairs)
            except TrainingError as exc:
                raise TrainingError(f"{stream.path}: {exc}") from exc
        pairs = len(found.pairs) - before
        found.sources.append(DataSource(stream.description, file_sha256(stream.path), len(lines), pairs))
        progress(f"{stream.description}: {len(lines)} lines, {pairs} pairs")
    return found


def generated_streams(count: int, seed: int, directory: Path, hours: float = GENERATED_HOURS) -> list[LabelledStream]:
    """``count`` generated days (seeds ``seed`` .. ``seed + count - 1``, each its own world), written to
    ``directory`` as plain JSON Lines."""
    streams = []
    for world in range(seed, seed + count):
        generated = generate(world, hours=hours)
        path = directory / f"generated-{world}.jsonl"
        write_lines(generated.lines, path)
        topology = Topology.from_document(generated.topology, f"generated world {world}")
        description = f"knowledge.correlation.generator.generate({world}, hours={hours!r})"
        streams.append(LabelledStream(path, topology, description))
    return streams


def estimator(seed: int, cv: Sequence[tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]]) -> CalibratedClassifierCV:
    boosted = HistGradientBoostingClassifier(
        max_iter=100,
        learning_rate=0.2,
        max_leaf_nodes=15,
        l2_regularization=1.0,
        early_stopping=False,
        random_state=seed,
    )
    return CalibratedClassifierCV(boosted, method="isotonic", cv=list(cv))


def train(
    data: TrainingSet,
    command: str,
    *,
    extra: Sequence[ExtraPairs] = (),
    validation: Sequence[LabelledStream] = (),
    embedder: TextEmbedder | None = None,
    policy: CorrelationPolicy | None = None,
    seed: int = 0,
    min_pairs: int = MIN_PAIRS,
    created_at: datetime | None = None,
    threshold: float | None = None,
) -> PairModel:
    """Fit on the training split of ``data`` (plus ``extra``, weighted, training only) and score on the held-out
    decisions. The threshold is ``threshold`` when given, else the one whose free-running replays of the
    ``validation`` streams score best (:func:`choose_threshold`; their scores go on the card either way); without
    validation streams, the one with the best join F1 on the held-out split."""
    rows, labels, groups = data.pairs.arrays()
    total = len(labels) + sum(len(e.labels) for e in extra)
    if total < min_pairs:
        raise TrainingError(f"{total} labelled pairs: at least {min_pairs} are needed to train the pair model")
    if labels.min(initial=1) == labels.max(initial=0):
        raise TrainingError("the pairs are all of one label: nothing to learn")
    split = GroupShuffleSplit(1, test_size=HELD_OUT, random_state=seed)
    fit_index, test_index = next(split.split(rows, labels, groups))
    x = np.vstack([rows[fit_index], *(e.rows for e in extra)])
    y = np.concatenate([labels[fit_index], *(e.labels for e in extra)])
    weights = np.concatenate([np.ones(len(fit_index)), *(np.full(len(e.labels), e.weight) for e in extra)])
    fold_groups = np.concatenate([groups[fit_index], *(np.full(len(e.labels), -1 - i) for i, e in enumerate(extra))])
    folds = list(GroupKFold(3).split(x, y, fold_groups))
    fitted = estimator(seed, folds).fit(x, y, sample_weight=weights)
    held = probabilities_of(fitted, rows[test_index]), labels[test_index], groups[test_index]
    rule = best_rule(x, y, rows[test_index], labels[test_index])
    on_pairs = best_join_threshold(*held)
    created = created_at or datetime.now(UTC)
    card = ModelCard(
        version=new_version(created),
        created_at=created.isoformat(timespec="seconds"),
        command=command,
        features=list(FEATURES),
        sklearn_version=sklearn.__version__,
        estimator="CalibratedClassifierCV(HistGradientBoostingClassifier, isotonic, 3 folds grouped by decision)",
        threshold=on_pairs,
        pairs=total,
        sources=[
            *data.sources,
            *(DataSource(e.description, arrays_sha256(e.rows, e.labels), 0, len(e.labels)) for e in extra),
        ],
        held_out=held_out_scores(*held, rule, on_pairs),
        threshold_choice=ThresholdChoice("the best join F1 on the held-out decisions", [], {}),
        notes=[f"extra pairs weighted {e.weight:g}: {e.description}" for e in extra],
    )
    model = PairModel(fitted, card)
    choice = card.threshold_choice
    if validation:
        replayed = choose_threshold(model, validation, embedder, policy or CorrelationPolicy())
        best = float(max(replayed.scores, key=lambda t: replayed.scores[t]))
        choice = replayed
        if threshold is None:
            threshold = best
        elif threshold != best:
            choice = replace(replayed, method=f"--threshold {threshold:.2f} (over {best:.2f}, {replayed.method})")
    elif threshold is not None:
        choice = ThresholdChoice(f"--threshold {threshold:.2f}", [], {})
    if threshold is not None:
        model.card = replace(
            card, threshold=threshold, held_out=held_out_scores(*held, rule, threshold), threshold_choice=choice
        )
    return model


def choose_threshold(
    model: PairScorer, streams: Sequence[LabelledStream], embedder: TextEmbedder | None, policy: CorrelationPolicy
) -> ThresholdChoice:
    """Score each of :data:`THRESHOLDS` by replaying ``streams`` free-running, as ``eval dedup`` does (each with
    its topology and without): the mean B-cubed F1 over events, the first quality target. Teacher-forced pairs
    always offer the whole true incident; a live correlator's own misses leave fragments that score lower, so
    the best threshold end to end is lower than the best one on pairs."""
    loaded = [(stream, list(read_stream(stream.path))) for stream in streams]
    replays = [(lines, t) for stream, lines in loaded for t in ([stream.topology, None] if stream.topology else [None])]
    scores: dict[str, float] = {}
    for threshold in THRESHOLDS:
        values = []
        for lines, topology in replays:
            correlator = Correlator(model, embedder, topology, replace(policy, threshold=threshold))
            scored = score(lines, {p["index"]: p["incident"] for p in predict(lines, correlator)})
            values.append(scored["events"]["bcubed_f1"])
        scores[f"{threshold:.2f}"] = round(float(np.mean(values)), 4)
    sources = [DataSource(stream.description, file_sha256(stream.path), len(lines), 0) for stream, lines in loaded]
    method = "the best mean B-cubed F1 (events) of free-running replays, with and without topology"
    return ThresholdChoice(method, sources, scores)


def probabilities_of(fitted: CalibratedClassifierCV, rows: Rows) -> Rows:
    return np.asarray(fitted.predict_proba(rows)[:, 1], dtype=np.float64)


def arrays_sha256(rows: Rows, labels: Labels) -> str:
    return hashlib.sha256(np.ascontiguousarray(rows).tobytes() + np.ascontiguousarray(labels).tobytes()).hexdigest()


def best_join_threshold(probabilities: Rows, labels: Labels, groups: npt.NDArray[np.int64]) -> float:
    """The threshold of :data:`THRESHOLDS` with the best join F1 on these decisions."""
    return max(THRESHOLDS, key=lambda t: _f1(*join_scores(probabilities, labels, groups, t)))


def held_out_scores(
    probabilities: Rows, labels: Labels, groups: npt.NDArray[np.int64], rule: RuleScores, threshold: float
) -> HeldOut:
    precision, recall = join_scores(probabilities, labels, groups, threshold)
    predicted = probabilities >= threshold
    return HeldOut(
        pairs=len(labels),
        decisions=len(np.unique(groups)),
        brier=round(float(np.mean((probabilities - labels) ** 2)), 5),
        ece=round(expected_calibration_error(probabilities, labels), 5),
        accuracy=round(float(np.mean(predicted == labels)), 5),
        f1=round(_pair_f1(predicted, labels), 5),
        join_precision=round(precision, 5),
        join_recall=round(recall, 5),
        rule=rule,
    )


def join_scores(
    probabilities: Rows, labels: Labels, groups: npt.NDArray[np.int64], threshold: float
) -> tuple[float, float]:
    """Precision and recall of the correlator's join: per decision, the most probable candidate at or above
    the threshold."""
    order = np.lexsort((-probabilities, groups))
    starts = np.flatnonzero(np.append(True, groups[order][1:] != groups[order][:-1]))
    top = order[starts]
    joined = probabilities[top] >= threshold
    right = joined & (labels[top] == 1)
    joinable = np.maximum.reduceat(labels[order], starts) == 1
    precision = float(right.sum() / joined.sum()) if joined.any() else 1.0
    recall = float(right.sum() / joinable.sum()) if joinable.any() else 1.0
    return precision, recall


def expected_calibration_error(probabilities: Rows, labels: Labels, bins: int = ECE_BINS) -> float:
    """The sum over equal-width bins of: share of pairs in the bin * |mean probability - share of positives|."""
    which = np.minimum((probabilities * bins).astype(int), bins - 1)
    error = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            error += float(mask.mean()) * abs(float(probabilities[mask].mean()) - float(labels[mask].mean()))
    return error


def best_rule(fit_rows: Rows, fit_labels: Labels, test_rows: Rows, test_labels: Labels) -> RuleScores:
    """The single-feature threshold rule with the best F1 on the training split, scored on the held-out one."""
    best: tuple[float, int, str, float] = (-1.0, 0, ">=", 0.0)
    positives = int(fit_labels.sum())
    for column in range(fit_rows.shape[1]):
        values = fit_rows[:, column]
        order = np.argsort(-values, kind="stable")
        ranked, hits = values[order], np.cumsum(fit_labels[order])
        ends = np.flatnonzero(np.append(ranked[1:] != ranked[:-1], True))  # last row of each distinct value
        for direction in (">=", "<="):
            if direction == ">=":
                taken, true_pos, cuts = ends + 1, hits[ends], ranked[ends]
            else:  # predict positive below a value: the complement of "> value"
                taken = len(values) - (ends + 1)
                true_pos = positives - hits[ends]
                cuts = ranked[ends][1:]
                taken, true_pos = taken[:-1], true_pos[:-1]
            if len(taken) == 0:
                continue
            f1 = 2 * true_pos / np.maximum(1, taken + positives)
            i = int(np.argmax(f1))
            if f1[i] > best[0]:
                best = (float(f1[i]), column, direction, float(cuts[i]))
    _, column, direction, cut = best
    values = test_rows[:, column]
    predicted = values >= cut if direction == ">=" else values <= cut
    return RuleScores(
        feature=FEATURES[column],
        direction=direction,
        threshold=round(cut, 6),
        accuracy=round(float(np.mean(predicted == test_labels)), 5),
        f1=round(_pair_f1(predicted, test_labels), 5),
    )


def train_correlate(
    streams: Sequence[LabelledStream],
    generated: int,
    seed: int,
    embedder: TextEmbedder | None,
    command: str,
    policy: CorrelationPolicy | None = None,
    progress: Callable[[str], None] = print,
    extra: Sequence[ExtraPairs] = (),
    threshold: float | None = None,
) -> PairModel:
    """Everything ``incibot models train correlate`` does but saving: collect the pairs of the given streams and
    of ``generated`` generated days (seeds from ``seed``), add ``extra`` (people's corrections), fit, and choose
    the threshold on the next :data:`VALIDATION_DAYS` generated days and the given labelled streams replayed
    free-running (a generated world only imitates a real stream's kind: a threshold chosen on generated days alone
    fits the generator), unless ``threshold`` is given."""
    with tempfile.TemporaryDirectory(prefix="incibot-train-") as folder:
        days = generated_streams(generated + VALIDATION_DAYS, seed, Path(folder))
        data = collect([*streams, *days[:generated]], embedder, policy, progress)
        validation = [*days[generated:], *streams]
        progress(f"choosing the threshold on {VALIDATION_DAYS} more generated days and {len(streams)} labelled streams")
        return train(
            data,
            command,
            extra=extra,
            validation=validation,
            embedder=embedder,
            policy=policy,
            seed=seed,
            threshold=threshold,
        )


def _pair_f1(predicted: npt.NDArray[np.bool_], labels: Labels) -> float:
    true_pos = float(np.sum(predicted & (labels == 1)))
    return 2 * true_pos / max(1.0, float(predicted.sum() + labels.sum()))


def _f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0
