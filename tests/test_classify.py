"""The classification library: the seed set, the shipped default at cold start, artefacts and their cards, and
``incibot eval classify`` (figures checked by hand on a tiny file, bad input refused naming the field)."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bot.cli.main import main
from knowledge.classify.categories import CATEGORY_KEYS
from knowledge.classify.evaluate import Item, cross_predict, majority_class, make_folds, score
from knowledge.classify.experts import combine
from knowledge.classify.features import by_name, known_words, name_similarities, novelty, technology_words
from knowledge.classify.inputs import incident_text
from knowledge.classify.model import DEFAULT_DIR, ClassifierError, TextClassifier, load_classifier
from knowledge.classify.seed import seed_examples
from knowledge.classify.training import train_classifier
from knowledge.embeddings import Embedder
from knowledge.text import alert_from_mapping, alert_text


def alert(name: str, summary: str, description: str = "", **labels: str) -> dict[str, Any]:
    return {
        "labels": {"alertname": name, "severity": "critical", **labels},
        "annotations": {"summary": summary, "description": description},
    }


def text(data: dict[str, Any]) -> str:
    return alert_text(alert_from_mapping(data))


# Written for this test (not seed lines): what a fresh install sees first, one per category.
SAMPLES = {
    "kubernetes": alert(
        "KubePodCrashLooping",
        "Pod is crash looping.",
        'Pod checkout/checkout-api-7d9f8b6c5d-2xk4p (api) is in waiting state (reason: "CrashLoopBackOff").',
        namespace="checkout",
        container="api",
    ),
    "database": alert(
        "PostgresReplicaLagging", "Replica is 12 minutes behind", "WAL replay on the standby is behind the primary."
    ),
    "security": alert("CertificateExpiresIn3Days", "TLS certificate for api.example.com expires in 3 days"),
    "messaging": alert("KafkaConsumerGroupLag", "Consumer group billing-events is 120000 messages behind"),
    "compute": alert("NodeFilesystemSpaceFillingUp", "Filesystem /var on node-7 will be full within 4 hours"),
    "cicd": alert("ArgoCDApplicationOutOfSync", "Application payments has been OutOfSync for 1 hour"),
    "application": alert("CheckoutHigh5xxRate", "12% of checkout requests fail with HTTP 500"),
    "observability": alert("PrometheusRemoteWriteBehind", "Prometheus remote write is 15 minutes behind"),
    "network": alert("CoreDNSErrorsHigh", "CoreDNS is returning SERVFAIL for 8% of requests"),
    "storage": alert("CephOSDDown", "2 Ceph OSDs are down; placement groups degraded"),
}


def test_seed_set_covers_every_category() -> None:
    examples = seed_examples()
    assert len(examples) >= 300
    counts = {key: sum(1 for _, label in examples if label == key) for key in CATEGORY_KEYS}
    assert min(counts.values()) >= 50, counts
    assert len({t for t, _ in examples}) == len(examples)  # no two seed alerts read the same


def test_cold_start_classifies_sample_alerts(tmp_path: Path, shared_embedder: Embedder) -> None:
    model = load_classifier(tmp_path / "models", shared_embedder)  # a fresh state dir: the shipped default
    assert model.path == DEFAULT_DIR and model.labels == tuple(sorted(CATEGORY_KEYS))
    inputs = [incident_text([text(data)]) for data in SAMPLES.values()]
    predictions = model.predict(inputs)
    assert {key: p.label for key, p in zip(SAMPLES, predictions, strict=True)} == {key: key for key in SAMPLES}
    assert all(p.abstain == (p.confidence < model.threshold) for p in predictions)
    started = time.perf_counter()
    for item in inputs:
        model.predict([item])  # the alert texts are embedded already, as the correlator leaves them
    assert (time.perf_counter() - started) / len(inputs) < 0.05


def test_an_incident_is_read_from_all_its_alerts(shared_embedder: Embedder) -> None:
    texts = [text(SAMPLES["database"]), text(SAMPLES["database"]), text(SAMPLES["kubernetes"])]
    assert incident_text(texts) == f"{texts[0]}\n\n{texts[2]}"
    model = load_classifier(None, shared_embedder)
    both = model.probabilities([incident_text(texts)])[0]
    alone = model.probabilities([texts[0]])[0]
    kubernetes = model.labels.index("kubernetes")
    assert both[kubernetes] > alone[kubernetes]


def copy_default(tmp_path: Path, **card: Any) -> Path:
    directory = tmp_path / "models" / "classify" / "classify-29990101-000000"
    shutil.copytree(DEFAULT_DIR, directory)
    data = json.loads((directory / "card.json").read_text())
    (directory / "card.json").write_text(json.dumps({**data, **card}))
    return directory


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ({"sklearn_version": "0.24.2"}, "trained with scikit-learn 0.24.2"),
        ({"feature_version": 999}, "made for classifier features v999"),
        ({"kind": "correlate"}, "a 'correlate' model, not a 'classify' one"),
    ],
)
def test_a_card_that_does_not_match_is_refused_in_one_line(
    tmp_path: Path, shared_embedder: Embedder, change: dict[str, Any], said: str
) -> None:
    directory = copy_default(tmp_path, **change)
    with pytest.raises(ClassifierError) as refused:
        TextClassifier.load(directory)
    assert said in str(refused.value) and "\n" not in str(refused.value)
    assert load_classifier(tmp_path / "models", shared_embedder).path == DEFAULT_DIR  # skipped, default used


def test_a_retrained_classifier_round_trips(tmp_path: Path, shared_embedder: Embedder) -> None:
    texts = [text(SAMPLES[key]) for key in ("database", "cicd")] * 4 + [
        text(alert("MysqlDown", "MySQL is down")),
        text(alert("JenkinsJobFailed", "Jenkins build job failed")),
    ]
    labels = ["database", "cicd"] * 4 + ["database", "cicd"]
    model = train_classifier(texts, labels, shared_embedder, seed=3, command="test")
    assert model.labels == ("cicd", "database") and model.card.examples == 10
    directory = model.save(tmp_path / "classify" / model.card.version)
    loaded = load_classifier(tmp_path, shared_embedder)
    assert loaded.path == directory and loaded.card == model.card
    query = [text(alert("RedisDown", "Redis is down"))]
    assert loaded.predict(query) == model.predict(query)


def test_novelty_is_the_share_of_alerts_of_technologies_never_trained_on() -> None:
    ceph = text(SAMPLES["storage"])
    assert technology_words(ceph) == {"ceph"}  # the name's and the summary's first words; label lines not read
    assert technology_words(text(alert("HostOutOfMemory", "Node memory is filling up", namespace="web"))) == {
        "host",
        "node",
    }
    known = known_words([text(SAMPLES["database"]), text(alert("CephMonDown", "Monitor down"))])
    unseen = text(SAMPLES["messaging"])
    assert novelty([ceph, unseen, incident_text([ceph, unseen])], known).tolist() == [0.0, 1.0, 0.5]


def test_a_technology_is_placed_by_the_seed_technologies_its_name_is_nearest_to() -> None:
    seed = np.eye(3, dtype=np.float32)  # three seed technology words: one of family 0, two of family 1
    members = np.asarray([[True, False], [False, True], [False, True]])
    near_first = np.asarray([0.8, 0.6, 0.0], dtype=np.float32)  # unit vectors of the inputs' technology words
    near_third = np.asarray([0.0, 0.28, 0.96], dtype=np.float32)
    inputs = [
        text(alert("MysqldDown", "Mysqld is down")),
        text(alert("QueueBacklog", "Queue is backing up")),
        incident_text([text(alert("QueueBacklog", "Queue is backing up")), text(alert("MysqldDown", "Mysqld down"))]),
        text(alert("N", "42")),  # no technology word
    ]
    similarities = name_similarities(inputs, {"mysqld": near_first, "queue": near_third}, seed, members)
    assert np.allclose(similarities, [[0.8, 0.6], [0.0, 0.96], [0.8, 0.96], [0.0, 0.0]])
    probabilities = by_name(similarities)
    assert probabilities[:3].argmax(axis=1).tolist() == [0, 1, 1] and np.allclose(probabilities.sum(axis=1), 1.0)
    assert probabilities[0, 0] > 0.7 and np.allclose(probabilities[3], 0.5)  # nearer by 0.2: e times likelier


def test_a_novel_input_takes_the_generalising_experts_view() -> None:
    memorised = np.asarray([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4]])
    general = np.asarray([[0.2, 0.8], [0.2, 0.8], [0.45, 0.55]])
    shares = np.asarray([0.0, 1.0, 1.0])
    alone = np.exp(combine(memorised, general, shares, 0.0))
    assert np.allclose(alone, [[0.9, 0.1], [0.2, 0.8], [0.45, 0.55]])
    tempered = np.exp(combine(memorised, general, shares, 0.5))  # memorisation still counts, at a lower weight
    assert tempered[1].argmax() == 1 and tempered[2].argmax() == 0 and np.allclose(tempered.sum(axis=1), 1.0)


def items(*rows: tuple[str, str, str]) -> list[Item]:
    return [Item(f"i{n}", body, label, group) for n, (body, label, group) in enumerate(rows)]


def test_grouped_folds_and_the_majority_baseline_by_hand() -> None:
    data = items(
        ("a", "X", "g1"), ("b", "X", "g1"), ("c", "X", "g1"), ("d", "Y", "g1"), ("e", "X", "g2"), ("f", "Y", "g2")
    )
    folds = make_folds(data, 2, grouped=True)
    assert sorted(sorted({data[i].group for i in test}) for _, test in folds) == [["g1"], ["g2"]]
    scores = score(data, cross_predict(data, folds, majority_class))
    # g1 is predicted from g2 (X:1, Y:1, a tie: X), g2 from g1 (X:3): all X. Right: a, b, c, e = 4/6.
    # F1(X) = 2*4/(2*4+2) = 0.8, F1(Y) = 0 (never predicted): macro 0.4. Nothing abstains.
    assert (round(scores.accuracy, 4), scores.macro_f1, scores.coverage) == (0.6667, 0.4, 1.0)


def write_file(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def tiny_file(tmp_path: Path) -> Path:
    rows = []
    for n, db in enumerate(["Postgres", "MySQL", "MongoDB", "Redis"]):
        rows.append({"id": f"db{n}", "alert": alert(f"{db}Down", f"{db} is down"), "team": "data", "svc": db})
        rows.append(
            {"id": f"dbl{n}", "alert": alert(f"{db}SlowQueries", f"{db} slow queries"), "team": "data", "svc": db}
        )
    for n, ci in enumerate(["Jenkins", "GitlabRunner", "ArgoCD", "Tekton"]):
        rows.append(
            {"id": f"ci{n}", "alert": alert(f"{ci}BuildFailed", f"{ci} pipeline failed"), "team": "dx", "svc": ci}
        )
        rows.append(
            {"id": f"cil{n}", "alert": alert(f"{ci}QueueLong", f"{ci} jobs wait in queue"), "team": "dx", "svc": ci}
        )
    return write_file(tmp_path / "tiny.jsonl", rows)


def test_eval_classify_prints_what_a_hand_computation_of_its_predictions_gives(tmp_path: Path) -> None:
    data = tiny_file(tmp_path)
    predictions = tmp_path / "predictions.jsonl"
    code, out, _ = run(
        "eval", "classify", "--data", str(data), "--label", "team", "--folds", "4", "--group-by", "svc",
        "--predictions-out", str(predictions),
    )  # fmt: skip
    assert code == 0, out
    truth = {row["id"]: row["team"] for row in map(json.loads, data.read_text().splitlines())}
    lines = [json.loads(line) for line in predictions.read_text().splitlines()]
    assert [line["id"] for line in lines] == list(truth) and all(
        set(line) == {"id", "label", "confidence", "abstain"} for line in lines
    )
    right = [line["label"] == truth[line["id"]] for line in lines]
    covered = [not line["abstain"] for line in lines]
    f1 = []
    for label in ("data", "dx"):
        tp = sum(1 for line in lines if line["label"] == label == truth[line["id"]])
        predicted = sum(1 for line in lines if line["label"] == label)
        actual = sum(1 for value in truth.values() if value == label)
        f1.append(2 * tp / (predicted + actual))
    expected = (
        f"accuracy {sum(right) / 16:.4f}  macro-F1 {sum(f1) / 2:.4f}  coverage {sum(covered) / 16:.4f}  "
        f"accuracy on covered {sum(r for r, c in zip(right, covered, strict=True) if c) / max(sum(covered), 1):.4f}"
    )
    assert f"incibot classifier               {expected}" in out
    assert sum(right) >= 14  # database versus CI alerts of services never seen in training
    # majority class: each held-out fold is one database and one CI service (GroupKFold balances the folds), so
    # each training fold holds 6 of each team, a tie: "data" (first in sorted order) for all 16. Right 8/16;
    # F1(data) = 2*8/(16+8) = 2/3, F1(dx) = 0: macro 1/3.
    assert "majority class                   accuracy 0.5000  macro-F1 0.3333" in out


@pytest.mark.parametrize(
    ("row", "args", "said"),
    [
        ({"id": "x", "alert": alert("A", "a")}, ["--label", "team"], "field 'team' is missing"),
        ({"id": "x", "alert": alert("A", "a"), "team": "t"}, ["--label", "team", "--group-by", "svc"], "field 'svc'"),
        ({"id": "x", "alert": "text", "team": "t"}, ["--label", "team"], "field 'alert' is not an alert object"),
        ({"alert": alert("A", "a"), "team": "t"}, ["--label", "team"], "field 'id' is missing"),
    ],
)
def test_eval_classify_refuses_bad_input_naming_the_field(
    tmp_path: Path, row: dict[str, Any], args: list[str], said: str
) -> None:
    good = {"id": "g", "alert": alert("B", "b"), "team": "u", "svc": "s"}
    data = write_file(tmp_path / "bad.jsonl", [good, row])
    code, _, err = run("eval", "classify", "--data", str(data), *args)
    assert code == 2 and said in err and "bad.jsonl:2" in err
