"""The pair model as an artefact: the shipped default, its card, training, loading with fall-back, the CLI."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from bot.cli.main import main
from knowledge.correlation.correlator import Correlator
from knowledge.correlation.features import FEATURES
from knowledge.correlation.generator import generate, write_lines
from knowledge.correlation.model import (
    CARD_FILE,
    DEFAULT_DIR,
    KIND,
    MODEL_FILE,
    ModelError,
    PairModel,
    load_pair_model,
    read_card,
)
from knowledge.correlation.stream import read_stream
from knowledge.correlation.topology import Topology
from knowledge.correlation.training import (
    ExtraPairs,
    TrainingError,
    TrainingSet,
    labelled_pairs,
    train,
)
from knowledge.embeddings import Embedder


class _NoScorer:
    def probabilities(self, rows: np.ndarray) -> np.ndarray:
        return np.zeros(len(rows))


@pytest.fixture(scope="module")
def default() -> PairModel:
    return load_pair_model(None)


@pytest.fixture(scope="module")
def small_pairs(tmp_path_factory: pytest.TempPathFactory) -> TrainingSet:
    """A few thousand pairs of a short generated day, without text similarity (no embedder)."""
    folder = tmp_path_factory.mktemp("small")
    generated = generate(31, hours=8, clusters=1)
    write_lines(generated.lines, folder / "day.jsonl")
    lines = list(read_stream(folder / "day.jsonl"))
    pairs = labelled_pairs(lines, Correlator(_NoScorer(), None, Topology.from_document(generated.topology)))
    decisions = pairs.decisions
    pairs.decisions = 0  # the same decisions again, without topology: the same groups
    labelled_pairs(lines, Correlator(_NoScorer(), None), pairs)
    assert pairs.decisions == decisions
    return TrainingSet(pairs)


def test_the_shipped_default_is_a_documented_model(default: PairModel) -> None:
    card = default.card
    assert default.path == DEFAULT_DIR and tuple(card.features) == FEATURES
    assert card.pairs >= 10_000 and card.command.startswith("incibot models train correlate")
    streams = [part.removeprefix("--stream=") for part in card.command.split() if part.startswith("--stream=")]
    described = {source.description for source in card.sources}
    assert all(stream in described for stream in streams)  # every labelled stream it names, with its sha256
    assert any("generate(" in description for description in described)
    assert all(len(source.sha256) == 64 and source.lines and source.pairs for source in card.sources)
    assert sum(source.pairs for source in card.sources) == card.pairs
    held = card.held_out
    assert 0 < card.threshold < 1 and held.brier < 0.05 and held.ece < 0.05
    assert held.f1 > held.rule.f1 and held.accuracy > held.rule.accuracy
    assert (DEFAULT_DIR / MODEL_FILE).stat().st_size < 2_000_000
    choice = card.threshold_choice
    assert choice is not None and "free-running replays" in choice.method
    chosen_on = [source.description for source in choice.sources]
    assert sum("generate(" in d for d in chosen_on) == 2 and set(streams) <= set(chosen_on)  # and its labelled streams
    assert card.threshold == float(max(choice.scores, key=lambda t: choice.scores[t]))


def test_the_default_beats_its_best_single_feature_rule_on_an_unseen_world(
    default: PairModel, shared_embedder: Embedder, tmp_path: Path
) -> None:
    generated = generate(77, hours=3)  # seeds 1-8 trained the default
    write_lines(generated.lines, tmp_path / "day.jsonl")
    correlator = Correlator(_NoScorer(), shared_embedder, Topology.from_document(generated.topology))
    rows, labels, _ = labelled_pairs(read_stream(tmp_path / "day.jsonl"), correlator).arrays()
    rule = default.card.held_out.rule
    values = rows[:, FEATURES.index(rule.feature)]
    by_rule = values >= rule.threshold if rule.direction == ">=" else values <= rule.threshold
    probabilities = default.probabilities(rows)
    by_model = probabilities >= default.threshold

    def f1(predicted: np.ndarray) -> float:
        return float(2 * np.sum(predicted & (labels == 1)) / (predicted.sum() + labels.sum()))

    assert f1(by_model) > f1(by_rule) + 0.1
    assert np.mean((probabilities - labels) ** 2) < np.mean((by_rule - labels) ** 2)


def test_training_refuses_fewer_than_10000_pairs(small_pairs: TrainingSet) -> None:
    assert len(small_pairs.pairs) < 10_000
    with pytest.raises(TrainingError, match=r"\d+ labelled pairs: at least 10000 are needed"):
        train(small_pairs, "test")


def test_a_trained_model_with_corrections_saves_and_loads_the_same(small_pairs: TrainingSet, tmp_path: Path) -> None:
    rows, labels, _ = small_pairs.pairs.arrays()
    corrections = ExtraPairs(rows[:40], 1 - labels[:40], weight=3.0, description="40 corrections")
    model = train(small_pairs, "incibot models train correlate --test", extra=[corrections], min_pairs=1000)
    card = model.card
    assert card.pairs == len(labels) + 40 and card.sources[-1].description == "40 corrections"
    assert card.notes == ["extra pairs weighted 3: 40 corrections"]
    assert card.version.startswith("correlate-") and 0 < card.threshold < 1
    assert card.held_out.decisions > 40 and card.held_out.rule.feature in FEATURES
    assert card.threshold_choice is not None and "held-out decisions" in card.threshold_choice.method
    loaded = PairModel.load(model.save(tmp_path / card.version))
    assert loaded.card == card
    assert np.array_equal(loaded.probabilities(rows[:200]), model.probabilities(rows[:200]))
    probabilities = loaded.probabilities(rows)
    assert probabilities.min() >= 0 and probabilities.max() <= 1


def test_a_given_threshold_is_the_models_and_its_held_out_scores_are_read_at_it(small_pairs: TrainingSet) -> None:
    chosen = train(small_pairs, "test", min_pairs=1000)
    given = 0.45 if chosen.card.threshold != 0.45 else 0.35
    model = train(small_pairs, "test --threshold", min_pairs=1000, threshold=given)
    assert model.card.threshold == given and model.threshold == given
    assert model.card.threshold_choice is not None and model.card.threshold_choice.method == f"--threshold {given:.2f}"
    rows, _, _ = small_pairs.pairs.arrays()
    assert np.array_equal(model.probabilities(rows[:100]), chosen.probabilities(rows[:100]))  # the same fit
    assert model.card.held_out.rule == chosen.card.held_out.rule
    assert (model.card.held_out.join_precision, model.card.held_out.join_recall) != (
        chosen.card.held_out.join_precision,
        chosen.card.held_out.join_recall,
    )


def test_loading_takes_the_newest_valid_artefact_and_skips_bad_ones(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / KIND
    shutil.copytree(DEFAULT_DIR, root / "correlate-20250101-000000")
    corrupt = root / "correlate-20250301-000000"
    shutil.copytree(DEFAULT_DIR, corrupt)
    (corrupt / MODEL_FILE).write_bytes(b"not a pickle")
    renamed = root / "correlate-20250201-000000"
    shutil.copytree(DEFAULT_DIR, renamed)
    card = json.loads((renamed / CARD_FILE).read_text())
    card["features"] = [*card["features"][:-1], "something_else"]
    (renamed / CARD_FILE).write_text(json.dumps(card))
    with caplog.at_level(logging.WARNING):
        model = load_pair_model(tmp_path)
    assert model.path == root / "correlate-20250101-000000"
    assert "cannot load the estimator" in caplog.text
    assert f"missing ['{FEATURES[-1]}'], unknown ['something_else']" in caplog.text
    with pytest.raises(ModelError, match="other features"):
        read_card(renamed)
    assert load_pair_model(tmp_path / "empty").path == DEFAULT_DIR


def _run(argv: list[str], status: int) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        assert main(argv) == status
    return out.getvalue(), err.getvalue()


def test_train_command_rejects_bad_input_with_exit_2(tmp_path: Path) -> None:
    train_args = ["models", "train", "correlate", "--generated", "0"]
    _, err = _run([*train_args, "--stream", str(tmp_path / "none.jsonl")], 2)
    assert "no such file" in err and "none.jsonl" in err
    blind = tmp_path / "blind.jsonl"
    write_lines([{k: v for k, v in item.items() if k != "truth"} for item in generate(5, hours=0.5).lines], blind)
    _, err = _run([*train_args, "--stream", str(blind)], 2)
    assert "line 1: no truth.incident" in err
    _, err = _run(train_args, 2)
    assert "nothing to train on" in err
    for bad in ("0", "1.2", "half"):
        with pytest.raises(SystemExit) as exited, contextlib.redirect_stderr(io.StringIO()) as refused:
            main([*train_args, "--threshold", bad])
        assert exited.value.code == 2 and "--threshold" in refused.getvalue() and bad in refused.getvalue()


def test_list_marks_the_active_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INCIBOT_STATE_DIR", str(tmp_path))
    out, _ = _run(["models", "list"], 0)
    assert out.startswith("* shipped default: model correlate-") and "best single-feature rule" in out


def test_pairs_of_a_replay_keep_one_group_per_decision(small_pairs: TrainingSet) -> None:
    rows, labels, groups = small_pairs.pairs.arrays()
    assert rows.shape == (len(labels), len(FEATURES)) and len(groups) == len(labels)
    # each decision appears twice (with and without topology) under one group, with the same right incident or none
    per_decision = np.bincount(groups, weights=labels)
    assert set(np.unique(per_decision)) == {0, 2}
    assert len(np.unique(groups)) == small_pairs.pairs.decisions
