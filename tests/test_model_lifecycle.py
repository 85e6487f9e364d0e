"""The model lifecycle of both kinds: a challenger is scored beside the champion on the same held-out data (the pair
model: held-out pairs; the classifier: the held-out split) and promoted only when it is not worse; promote, roll
back and list from the CLI; a card that does not match this code is refused; the worker loads the champion; the
nightly training runs once across two workers; people's category labels are trained on once, with provenance."""

from __future__ import annotations

import contextlib
import hashlib
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
from sqlalchemy.orm import Session
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from bot.classification.wiring import load_champion
from bot.cli.main import main
from bot.correlation.wiring import champion_pair_model
from bot.db.database import Database
from bot.incidents.models import CategoryLabel, Incident
from bot.registry import classify, correlate
from bot.registry.data import Provenance
from bot.registry.lifecycle import Score, challenge
from bot.registry.store import CARD_FILE, champion_dir, register, versions
from bot.scheduling.nightly import NightlyTraining
from bot.settings import Settings
from knowledge.classify.model import DEFAULT_DIR as CLASSIFY_DEFAULT_DIR
from knowledge.classify.model import TextClassifier
from knowledge.classify.training import train_classifier
from knowledge.correlation.correlator import CorrelationPolicy
from knowledge.correlation.generator import generate, write_lines
from knowledge.correlation.model import DEFAULT_DIR, PairModel
from knowledge.correlation.topology import Topology
from knowledge.correlation.training import LabelledStream, TrainingSet, collect, train
from knowledge.embeddings import Embedder
from tests.support import FakeClock

pytestmark = pytest.mark.db

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _stream(seed: int, hours: int, folder: Path) -> LabelledStream:
    generated = generate(seed, hours=hours, clusters=1)
    write_lines(generated.lines, folder / f"day-{seed}.jsonl")
    return LabelledStream(folder / f"day-{seed}.jsonl", Topology.from_document(generated.topology), f"world {seed}")


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[TrainingSet, correlate.HeldOutPairs]:
    """Pairs of short generated days to train on and of one of them to score on, without text similarity: a model
    that has seen the scored world surely beats the shipped default there, whatever the default's quality."""
    folder = tmp_path_factory.mktemp("lifecycle")
    scored = _stream(32, 3, folder)
    data = collect([_stream(31, 8, folder), scored], None, progress=lambda _: None)
    return data, correlate.held_out_pairs(scored, None, CorrelationPolicy())


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


# The classifier: tiny training sets (a fit takes a fraction of a second), held-out items as people's labels.

_CLASSIFY_TRAIN = {
    "database": [
        "PostgresqlReplicationLag: replica {s}-db lags the primary by 40 s",
        "MysqlTooManyConnections: {s}-db uses 95% of max_connections",
        "PostgresqlDeadlocks: deadlocks detected on {s}-db",
        "MongodbReplicaSetUnhealthy: {s}-mongo replica set member down",
    ],
    "network": [
        "HighPacketLoss: packet loss above 5% between {s} and the gateway",
        "DnsResolutionFailures: DNS lookups for {s} fail",
        "LoadBalancerBackendDown: load balancer has no healthy backend for {s}",
        "InterfaceErrors: network interface errors on the {s} switch port",
    ],
    "storage": [
        "DiskAlmostFull: volume /data on {s} is 95% full",
        "PersistentVolumeFillingUp: the volume claim of {s} will be full in 4 hours",
        "S3BucketErrors: the object storage bucket of {s} returns 5xx",
        "FilesystemReadOnly: the filesystem on {s} was remounted read-only",
    ],
}
SERVICES = ("orders", "payments", "search", "billing")
_CLASSIFY_HELD = {
    "database": [
        "PostgresqlReplicationLag: replica {s}-db lags the primary by 90 s",
        "MysqlSlowQueries: slow queries on {s}-db",
    ],
    "network": [
        "HighPacketLoss: packet loss above 10% between {s} and the gateway",
        "DnsResolutionFailures: {s} DNS timeouts",
    ],
    "storage": [
        "DiskAlmostFull: volume /var on {s} is 97% full",
        "FilesystemReadOnly: the filesystem on {s} is read-only",
    ],
}


_TINY_DATA = [Provenance(classify.SEED, "written for this test", "0" * 64, 48)]


def _tiny_classifier(embedder: Embedder, version: str, *, wrong: bool = False) -> TextClassifier:
    """Trained on 48 written alerts; ``wrong``: every category swapped for the next one (worse than any real one)."""
    keys = sorted(_CLASSIFY_TRAIN)
    swap = {key: keys[(i + 1) % len(keys)] if wrong else key for i, key in enumerate(keys)}
    examples = [(text.format(s=s), k) for k, texts in _CLASSIFY_TRAIN.items() for text in texts for s in SERVICES]
    with threadpool_limits(1):
        model = train_classifier(
            [text for text, _ in examples],
            [swap[label] for _, label in examples],
            embedder,
            command="incibot models train classify --test",
        )
    return TextClassifier(model.features, model.estimator, model.temperature, replace(model.card, version=version))


def _held_out() -> list[classify.Example]:
    return [
        classify.Example(text.format(s=s), k, f"incident/{k}-{i}-{s}", classify.PEOPLE)
        for k, texts in _CLASSIFY_HELD.items()
        for i, text in enumerate(texts)
        for s in ("catalog", "auth")
    ]


def _classify_contest(
    settings: Settings, database: Database, model: TextClassifier, embedder: Embedder, now: datetime
) -> tuple[bool, str]:
    model.save(settings.state_dir / "models" / "classify" / model.card.version)
    verdict = classify.contest(database, model, _TINY_DATA, _held_out(), actor="test", now=now, embedder=embedder)
    return verdict.promoted, verdict.reason


@pytest.mark.usefixtures("cli_env")
def test_a_worse_classifier_is_refused_a_better_one_promoted_and_rolled_back(
    settings: Settings, database: Database, shared_embedder: Embedder
) -> None:
    good = _tiny_classifier(shared_embedder, "classify-good")
    promoted, reason = _classify_contest(
        settings, database, _tiny_classifier(shared_embedder, "classify-bad-1", wrong=True), shared_embedder, NOW
    )
    assert not promoted and reason.startswith("the challenger is worse: macro f1 0.0000 for the challenger")
    assert "for the champion 0 (higher is better)" in reason
    promoted, reason = _classify_contest(settings, database, good, shared_embedder, NOW + timedelta(hours=1))
    assert promoted, reason
    assert reason.startswith("macro f1 1.0000 for the challenger classify-good")
    bad = _tiny_classifier(shared_embedder, "classify-bad-2", wrong=True)
    promoted, reason = _classify_contest(settings, database, bad, shared_embedder, NOW + timedelta(hours=2))
    assert not promoted and "1.0000 for the champion classify-good" in reason
    directory = settings.state_dir / "models" / "classify" / "classify-good"
    with database.read() as session:
        assert champion_dir(session, "classify") == directory
        rows = {row.version: row for row in versions(session, "classify")}
    assert set(rows) == {"classify-bad-1", "classify-good", "classify-bad-2"}
    card = rows["classify-good"].card
    assert (card["kind"], card["primary_metric"], card["split"]) == ("classify", "macro_f1", classify.SPLIT)
    assert card["labels"] == ["database", "network", "storage"] and card["metrics"]["items"] == 12
    assert card["held_out"].startswith("held-out split (") and "0 seed alerts, 12 people's labels" in card["held_out"]
    assert rows["classify-bad-2"].metrics["champion"] == {"version": "classify-good", **card["metrics"]}
    # the same data and command again would train the same model: the nightly training keeps the champion
    assert classify.same_training(card, _TINY_DATA, "incibot models train classify --test")
    assert not classify.same_training(card, [*_TINY_DATA, _TINY_DATA[0]], "incibot models train classify --test")
    # the worker loads the champion through the registry; a rollback gives back the packaged default
    assert load_champion(settings, database, shared_embedder).path == directory
    out, _ = _cli(["models", "rollback", "classify"], 0)
    assert "rolled back classify-good; the champion is 0 (the packaged default)" in out
    assert load_champion(settings, database, shared_embedder).path == CLASSIFY_DEFAULT_DIR
    _cli(["models", "promote", "classify", "classify-bad-1"], 0)  # a person may still promote any version
    assert load_champion(settings, database, shared_embedder).path == directory.with_name("classify-bad-1")


def _label(session: Session, n: int, category: str) -> CategoryLabel:
    incident = Incident(
        title=f"incident {n}",
        severity="warning",
        source="alertmanager",
        group_key=f"g{n}",
        opened_at=NOW,
        last_alert_at=NOW,
    )
    session.add(incident)
    session.flush()
    text = f"DiskAlmostFull{n}: volume /data on host-{n} is 95% full"
    label = CategoryLabel(
        at=NOW, actor="alice", incident_id=incident.id, category=category, previous=None, texts=[text, text]
    )
    session.add(label)
    return label


@pytest.mark.usefixtures("cli_env")
def test_people_labels_are_trained_on_once_with_their_provenance(
    settings: Settings, database: Database, tmp_path: Path
) -> None:
    with database.write() as session:
        for n in range(20):
            _label(session, n, "storage")
    with database.read() as session:
        people = classify.people_labels(session)
    assert len(people) == 20 and people[0].text == "DiskAlmostFull0: volume /data on host-0 is 95% full"
    training, held = classify.split(people)
    assert {e.group for e in held} == {e.group for e in people if e.held_out} and 0 < len(held) < len(training)
    assert not {e.text for e in held} & {e.text for e in training}  # each label is used once: here or there
    # held out against the packaged default: people's labels only; against a version trained on the split: all
    seed_training, seed_held = classify.split(classify.seed_set())
    assert classify.comparable(seed_held + held, None) == held
    assert classify.comparable(seed_held + held, {"split": classify.SPLIT}) == seed_held + held
    assert 0.1 < len(seed_held) / (len(seed_held) + len(seed_training)) < 0.35  # whole rules, about one in five
    # the card's provenance of people's labels is the digest of their lines as `models data export` writes them
    [seed, labels] = classify.sources(seed_training + training)
    assert (seed.source, seed.size, labels.source, labels.size) == (
        classify.SEED,
        len(seed_training),
        classify.PEOPLE,
        len(training),
    )
    _cli(["models", "data", "export", "--out", str(tmp_path / "export.jsonl")], 0)
    exported = {json.loads(line)["id"]: line + "\n" for line in (tmp_path / "export.jsonl").read_text().splitlines()}
    lines = "".join(exported[str(e.line["id"])] for e in training)
    assert labels.sha256 == hashlib.sha256(lines.encode()).hexdigest()


@pytest.mark.usefixtures("cli_env")
def test_training_a_classifier_waits_for_held_out_labels_against_the_packaged_default(database: Database) -> None:
    out, _ = _cli(["models", "train", "classify"], 0)
    assert out.startswith("classify: kept the champion 0: it was not trained on the held-out split")
    assert "0 of 0 are held out (at least 10 needed); nothing trained" in out
    with database.read() as session:
        assert versions(session, "classify") == []
