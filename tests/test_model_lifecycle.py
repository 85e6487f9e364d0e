"""The model lifecycle of the pair model: a challenger is scored beside the champion on the same held-out pairs and
promoted only when it is not worse; promote, roll back and list from the CLI; a card that does not match this code
is refused; the worker loads the champion; the nightly training runs once across two workers."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import shutil
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import pytest
from sklearn.dummy import DummyClassifier  # type: ignore[import-untyped]
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from bot.cli.main import main
from bot.correlation.wiring import champion_pair_model
from bot.db.database import Database
from bot.registry import correlate
from bot.registry.lifecycle import Score, challenge
from bot.registry.store import CARD_FILE, champion_dir, register, versions
from bot.scheduling.nightly import NightlyTraining
from bot.settings import Settings
from knowledge.correlation.correlator import CorrelationPolicy
from knowledge.correlation.generator import generate, write_lines
from knowledge.correlation.model import DEFAULT_DIR, PairModel
from knowledge.correlation.topology import Topology
from knowledge.correlation.training import LabelledStream, TrainingSet, collect, train
from tests.support import FakeClock

pytestmark = pytest.mark.db

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _stream(seed: int, hours: int, folder: Path) -> LabelledStream:
    generated = generate(seed, hours=hours, clusters=1)
    write_lines(generated.lines, folder / f"day-{seed}.jsonl")
    return LabelledStream(folder / f"day-{seed}.jsonl", Topology.from_document(generated.topology), f"world {seed}")


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[TrainingSet, correlate.HeldOutPairs]:
    """Pairs of a short generated day to train on and of another world to score on, without text similarity."""
    folder = tmp_path_factory.mktemp("lifecycle")
    data = collect([_stream(31, 8, folder)], None, progress=lambda _: None)
    return data, correlate.held_out_pairs(_stream(32, 3, folder), None, CorrelationPolicy())


@pytest.fixture(scope="module")
def good(small: tuple[TrainingSet, correlate.HeldOutPairs]) -> PairModel:
    with threadpool_limits(1):  # OpenMP threads waiting for busy cores make this small fit ten times slower
        return train(small[0], "incibot models train correlate --test", min_pairs=1000, created_at=NOW)


def _bad(small: tuple[TrainingSet, correlate.HeldOutPairs], good: PairModel, version: str) -> PairModel:
    """A model that says the base rate whatever the pair: worse than any real one."""
    rows, labels, _ = small[0].pairs.arrays()
    return PairModel(DummyClassifier(strategy="prior").fit(rows, labels), replace(good.card, version=version))


def _contest(
    database: Database, settings: Settings, model: PairModel, held: correlate.HeldOutPairs, now: datetime
) -> tuple[bool, str]:
    copy = PairModel(model.estimator, model.card)
    copy.save(settings.state_dir / "models" / "correlate" / model.card.version)
    verdict = challenge(
        database,
        correlate.challenger(copy, {}),
        copy,
        correlate.load,
        lambda candidate: correlate.score(candidate, held),
        held.description,
        actor="test",
        now=now,
    )
    return verdict.promoted, verdict.reason


def test_a_worse_challenger_is_refused_and_a_better_one_promoted(
    small: tuple[TrainingSet, correlate.HeldOutPairs], good: PairModel, database: Database, settings: Settings
) -> None:
    held = small[1]
    promoted, reason = _contest(database, settings, _bad(small, good, "correlate-bad-1"), held, NOW)
    assert not promoted and reason.startswith("the challenger is worse: log loss")
    assert "for the champion 0 (lower is better)" in reason
    promoted, reason = _contest(database, settings, good, held, NOW + timedelta(hours=1))
    assert promoted, reason
    promoted, reason = _contest(
        database, settings, _bad(small, good, "correlate-bad-2"), held, NOW + timedelta(hours=2)
    )
    assert not promoted and f"for the champion {good.card.version}" in reason
    with database.read() as session:
        assert champion_dir(session, "correlate") == settings.state_dir / "models" / "correlate" / good.card.version
        rows = {row.version: row for row in versions(session, "correlate")}
    assert set(rows) == {"correlate-bad-1", good.card.version, "correlate-bad-2"}
    card = rows[good.card.version].card
    assert card["kind"] == "correlate" and card["primary_metric"] == "log_loss"
    assert card["metrics"]["log_loss"] < rows["correlate-bad-2"].card["metrics"]["log_loss"]
    assert card["labels"] == ["related", "unrelated"] and card["command"].startswith("incibot models train")
    assert card["data"][0]["source"] == "labelled stream" and len(card["data"][0]["sha256"]) == 64
    assert card["libraries"]["scikit-learn"] and card["held_out"].startswith("world 32")
    assert rows["correlate-bad-2"].metrics["champion"]["version"] == good.card.version
    # the worker's correlator loads the champion through the registry
    assert champion_pair_model(settings).path == Path(rows[good.card.version].path)


def _registered(settings: Settings, database: Database, version: str, *, card: dict[str, object] | None = None) -> Path:
    """A registered copy of the packaged default under ``version`` (not promoted)."""
    directory = settings.state_dir / "models" / "correlate" / version
    shutil.copytree(DEFAULT_DIR, directory)
    model = PairModel.load(directory)
    challenger = replace(correlate.challenger(model, {}), version=version)
    with database.write() as session:
        written = challenger.card("none", Score("log_loss", 0.1, False)) | (card or {})
        register(session, "correlate", directory, written, {"challenger": {"log_loss": 0.1}}, now=NOW)
    return directory


def _cli(argv: list[str], status: int) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        assert main(argv) == status, err.getvalue()
    return out.getvalue(), err.getvalue()


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INCIBOT_DATABASE_URL", settings.effective_database_url)
    monkeypatch.setenv("INCIBOT_STATE_DIR", str(settings.state_dir))


@pytest.mark.usefixtures("cli_env")
def test_promote_rollback_and_list_from_the_cli(settings: Settings, database: Database) -> None:
    first = _registered(settings, database, "correlate-1")
    _registered(settings, database, "correlate-2")
    _cli(["models", "promote", "correlate", "correlate-1"], 0)
    out, _ = _cli(["models", "promote", "correlate", "correlate-2", "--by", "alice"], 0)
    assert out.startswith("correlate: correlate-2 is the champion")
    listed = json.loads(_cli(["models", "list", "--json"], 0)[0])
    correlate_entries = [(e["version"], e["champion"]) for e in listed if e["kind"] == "correlate"]
    assert correlate_entries == [("correlate-2", True), ("correlate-1", False), ("0", False)]
    assert next(e for e in listed if e["version"] == "correlate-2")["promoted_by"] == "alice"
    assert [e["version"] for e in listed if e["kind"] == "classify" and e["champion"]] == ["0"]
    out, _ = _cli(["models", "rollback", "correlate"], 0)
    assert "rolled back correlate-2; the champion is correlate-1" in out
    with database.read() as session:
        assert champion_dir(session, "correlate") == first
    text = _cli(["models", "list"], 0)[0]
    assert "* correlate-1: correlate correlate-1 (promoted" in text and "  correlate-2: " in text
    out, _ = _cli(["models", "rollback", "correlate"], 0)
    assert "the champion is 0 (the packaged default)" in out
    _, err = _cli(["models", "rollback", "correlate"], 1)
    assert err == "incibot: the correlate champion is the packaged default (version 0): nothing to roll back\n"
    _, err = _cli(["models", "promote", "correlate", "correlate-9"], 1)
    assert "no correlate version correlate-9 in the registry" in err
    _cli(["models", "promote", "correlate", "correlate-2"], 0)
    _cli(["models", "promote", "correlate", "0"], 0)  # back to the packaged default
    assert champion_pair_model(settings).path == DEFAULT_DIR


@pytest.mark.usefixtures("cli_env")
def test_a_card_that_does_not_match_is_refused(
    settings: Settings, database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    _registered(settings, database, "correlate-old", card={"libraries": {"python": "3.11", "scikit-learn": "0.24.2"}})
    _, err = _cli(["models", "promote", "correlate", "correlate-old"], 1)
    assert err.count("\n") == 1 and "model correlate-old was trained with numpy None" in err
    _registered(settings, database, "correlate-other", card={"kind": "classify"})
    _, err = _cli(["models", "promote", "correlate", "correlate-other"], 1)
    assert err == "incibot: model correlate-other is a 'classify' model, not 'correlate'\n"
    # a champion whose card no longer matches (the libraries were upgraded after it was promoted) is refused at load
    directory = _registered(settings, database, "correlate-new")
    _cli(["models", "promote", "correlate", "correlate-new"], 0)
    card = json.loads((directory / CARD_FILE).read_text())
    card["libraries"]["scikit-learn"] = "0.24.2"
    (directory / CARD_FILE).write_text(json.dumps(card))
    with caplog.at_level(logging.ERROR):
        assert champion_pair_model(settings).path == DEFAULT_DIR
    [line] = caplog.messages
    assert line.startswith("correlate champion refused: model correlate-new was trained with scikit-learn 0.24.2")


def test_the_nightly_training_runs_once_across_two_workers(database: Database) -> None:
    clock = FakeClock(datetime(2026, 3, 1, 2, 50, tzinfo=UTC))
    trained: list[str] = []
    workers = [
        NightlyTraining(database, clock, partial(trained.append, name), holder=name)
        for name in ("worker-a", "worker-b")
    ]
    assert not any(worker.run_once() for worker in workers)  # before 03:00
    clock.advance(minutes=15)
    assert [worker.run_once() for worker in workers] == [True, False]
    assert not any(worker.run_once() for worker in workers)  # the same night: done
    late = NightlyTraining(database, clock, lambda: trained.append("late"), holder="worker-c")
    clock.advance(hours=5)
    assert not late.run_once()  # started after the slot: not its to run
    clock.advance(days=1)
    assert sorted(worker.run_once() for worker in [*workers, late]) == [False, False, True]
    assert trained[0] == "worker-a" and len(trained) == 2
