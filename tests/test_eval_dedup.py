"""``incibot eval dedup``: predictions written per line without reading truth, and scores that agree with the
reference scorer's definitions (checked by hand on a tiny stream, by brute force on a generated one, and against
``/work/shared/tools/score_grouping.py`` itself where that checkout exists)."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from itertools import combinations
from pathlib import Path
from typing import Any

import pytest

from bot.cli.main import main
from knowledge.correlation.evaluate import alertmanager_baseline, cluster_metrics, score
from knowledge.correlation.generator import generate, write_lines
from knowledge.correlation.stream import read_stream

REFERENCE_SCORER = Path("/work/shared/tools/score_grouping.py")


def line(at: str, alertname: str, *, status: str = "firing", starts: str = "00:00", incident: str, kind: str) -> Any:
    return {
        "at": f"2025-01-01T{at}:00Z",
        "alert": {
            "status": status,
            "labels": {"alertname": alertname, "cluster": "c1", "namespace": "ns"},
            "startsAt": f"2025-01-01T{starts}:00Z",
            "fingerprint": alertname.lower(),
        },
        "truth": {"incident": incident, "kind": kind},
    }


def test_metrics_match_hand_computed_values() -> None:
    m = cluster_metrics(["A", "A", "A", "B", "B"], [1, 1, 2, 2, 2])
    # together pairs 2 of 4 true and 4 predicted; B-cubed (4/2 + 1/3 + 4/3) / 5 = 11/15 both ways;
    # ARI (2 - 4*4/10) / (4 - 1.6) = 1/6
    assert (m["pairwise_precision"], m["pairwise_recall"], m["pairwise_f1"]) == (0.5, 0.5, 0.5)
    assert (m["bcubed_precision"], m["bcubed_recall"], m["bcubed_f1"]) == (0.7333, 0.7333, 0.7333)
    assert m["ari"] == 0.1667 and m["noise_reduction"] == 0.6 and m["ideal_noise_reduction"] == 0.6
    assert (m["over_merged_pred_incidents"], m["over_merge_excess"]) == (1, 1)
    assert (m["under_merged_true_incidents"], m["under_merge_excess"], m["exact_incidents"]) == (1, 1, 0)
    assert cluster_metrics(["A", "B"], ["x", "y"])["exact_incident_rate"] == 1.0


def test_scopes_count_firing_lines_episodes_and_cascades(tmp_path: Path) -> None:
    stream = tmp_path / "tiny.jsonl"
    write_lines(
        [
            line("00:00", "Db", incident="F1", kind="cascade"),
            line("00:01", "Api", incident="F1", kind="cascade"),
            line("00:02", "Db", incident="F1", kind="cascade"),  # a re-send: an event, not an episode
            line("00:03", "Noise", incident="N1", kind="noise"),
            line("00:04", "Db", status="resolved", incident="F1", kind="cascade"),  # never scored
            line("00:10", "Db", starts="00:10", incident="F2", kind="cascade"),  # a new episode, a new fault
        ],
        stream,
    )
    lines = list(read_stream(stream))
    scores = score(lines, {0: "a", 1: "a", 2: "a", 3: "a", 4: "a"})  # line 5 unpredicted: its own incident
    assert [scores[s]["n"] for s in ("events", "episodes", "events_cascade_only", "episodes_cascade_only")] == [
        5,
        4,
        4,
        3,
    ]
    # events: {0,1,2,3} predicted together, 3 true pairs of 6 predicted; B-cubed precision (3*3/4 + 1/4 + 1) / 5
    assert scores["events"]["pairwise_precision"] == 0.5 and scores["events"]["bcubed_precision"] == 0.7
    assert scores["episodes_cascade_only"]["bcubed_f1"] == 1.0
    # Alertmanager's groups: Db's group emptied at 00:04, and 00:10 is past the group interval
    groups = alertmanager_baseline(lines)
    assert groups[0] == groups[2] == groups[4] != groups[5] and groups[1] != groups[0]


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated stream of a world the shipped model never saw, with its topology and a copy without truth."""
    folder = tmp_path_factory.mktemp("day")
    generated = generate(97, hours=1.5, clusters=1)
    generated.write(folder, compress=False)
    write_lines([{k: v for k, v in item.items() if k != "truth"} for item in generated.lines], folder / "blind.jsonl")
    return folder


@pytest.fixture(scope="module")
def evaluated(day: Path) -> tuple[str, list[dict[str, Any]]]:
    """``incibot eval dedup`` on the day with its topology: what it printed, and its prediction lines."""
    out = day / "predictions.jsonl"
    args = ["--stream", str(day / "storm.jsonl"), "--topology", str(day / "topology.json")]
    printed, _ = _run(["eval", "dedup", *args, "--predictions-out", str(out)])
    return printed, [json.loads(row) for row in out.read_text().splitlines()]


def _run(argv: list[str], status: int = 0) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        assert main(argv) == status
    return out.getvalue(), err.getvalue()


def _scope_lines(printed: str, block: str) -> list[str]:
    lines = printed.splitlines()
    start = lines.index(block) + 1
    return lines[start : start + 3]


def _brute_force(truth: list[str], predicted: list[str]) -> tuple[float, float, float, float]:
    """Pairwise and B-cubed precision/recall by enumerating pairs and items: no contingency table."""
    same_true = same_pred = both = 0
    for i, j in combinations(range(len(truth)), 2):
        t, p = truth[i] == truth[j], predicted[i] == predicted[j]
        same_true, same_pred, both = same_true + t, same_pred + p, both + (t and p)
    precision = recall = 0.0
    for i in range(len(truth)):
        mine = {j for j in range(len(truth)) if predicted[j] == predicted[i]}
        theirs = {j for j in range(len(truth)) if truth[j] == truth[i]}
        precision += len(mine & theirs) / len(mine) / len(truth)
        recall += len(mine & theirs) / len(theirs) / len(truth)
    return both / same_pred, both / same_true, precision, recall


def test_printed_scores_agree_with_a_brute_force_count(day: Path, evaluated: tuple[str, list[dict[str, Any]]]) -> None:
    printed, predictions = evaluated
    incident = {p["index"]: p["incident"] for p in predictions}
    stream = [json.loads(row) for row in (day / "storm.jsonl").read_text().splitlines()]
    firing = [i for i, item in enumerate(stream) if item["alert"]["status"] == "firing"]
    assert set(firing) <= set(incident)  # every firing line has its prediction
    expected = _brute_force([stream[i]["truth"]["incident"] for i in firing], [incident[i] for i in firing])
    events = _scope_lines(printed, "incibot correlator")[0]
    shown = events.split("pairwise P/R/F1 ")[1].split()[0].split("/")[:2]
    shown += events.split("B3 P/R/F1 ")[1].split()[0].split("/")[:2]
    assert [float(v) for v in shown] == pytest.approx(expected, abs=0.0011)
    assert "(b) Alertmanager group_by [alertname, cluster, namespace]" in printed
    assert "(a) one incident per fingerprint" in printed


def test_printed_scores_equal_the_reference_scorers_when_it_is_there(
    day: Path, evaluated: tuple[str, list[dict[str, Any]]]
) -> None:
    printed, _ = evaluated
    if not REFERENCE_SCORER.is_file():  # a clone without ../shared: the brute-force test above still runs
        return
    reference = subprocess.run(
        [sys.executable, str(REFERENCE_SCORER), str(day / "storm.jsonl"), str(day / "predictions.jsonl")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert _scope_lines(printed, "incibot correlator") == reference[1:4]
    root = next(row for row in reference if "[root" in row).split()
    shown = next(row for row in printed.splitlines() if row.startswith("root cause, incibot ranking"))
    top1, top3 = shown.split("cascade ")[1].split()[0].split("/")
    after = [float(root[i + 1]) for i, word in enumerate(root) if word == "cascade"]
    assert [float(top1), float(top3)] == pytest.approx(after, abs=0.0006)


def test_a_stream_without_truth_gets_the_same_predictions(
    day: Path, evaluated: tuple[str, list[dict[str, Any]]]
) -> None:
    _, with_truth = evaluated
    out = day / "blind-predictions.jsonl"
    args = ["--stream", str(day / "blind.jsonl"), "--topology", str(day / "topology.json")]
    printed, _ = _run(["eval", "dedup", *args, "--predictions-out", str(out)])
    assert [json.loads(row) for row in out.read_text().splitlines()] == with_truth
    assert "no truth" in printed and "incibot correlator" not in printed
    firing = [p for p in with_truth if p["root_service"] is not None]
    assert firing and all(p["root_candidates"][0] == p["root_service"] for p in firing)
    assert all("/" not in name and len(p["root_candidates"]) <= 3 for p in firing for name in p["root_candidates"])


def test_bad_input_exits_2_naming_it(tmp_path: Path, day: Path) -> None:
    _, err = _run(["eval", "dedup", "--stream", str(tmp_path / "missing.jsonl")], status=2)
    assert "missing.jsonl" in err
    broken = tmp_path / "broken.jsonl"
    broken.write_text((day / "storm.jsonl").read_text().splitlines()[0] + "\n{not json\n")
    _, err = _run(["eval", "dedup", "--stream", str(broken)], status=2)
    assert "line 2" in err
    topology = tmp_path / "topology.json"
    topology.write_text('{"clusters": "none"}')
    _, err = _run(["eval", "dedup", "--stream", str(day / "storm.jsonl"), "--topology", str(topology)], status=2)
    assert "topology.json" in err and "clusters" in err


def _incidents(predictions: Path) -> dict[int, str]:
    return {p["index"]: p["incident"] for p in map(json.loads, predictions.read_text().splitlines())}


def test_a_threshold_override_replays_the_same_correlator_at_another_threshold(
    day: Path, evaluated: tuple[str, list[dict[str, Any]]]
) -> None:
    printed, with_own = evaluated
    own = float(printed.split("(threshold ")[1].split(",")[0])
    args = ["eval", "dedup", "--stream", str(day / "storm.jsonl"), "--topology", str(day / "topology.json")]
    _run([*args, "--threshold", str(own), "--predictions-out", str(day / "same.jsonl")])
    assert _incidents(day / "same.jsonl") == {p["index"]: p["incident"] for p in with_own}
    strict, _ = _run([*args, "--threshold", "0.999", "--predictions-out", str(day / "strict.jsonl")])
    assert f"threshold 1.00 by --threshold, the model's own {own:.2f}" in strict
    # Almost no learned join reaches 0.999: the same lines fall into many more incidents.
    loose, tight = _incidents(day / "same.jsonl"), _incidents(day / "strict.jsonl")
    assert tight.keys() == loose.keys()
    assert len(set(tight.values())) > 1.5 * len(set(loose.values()))


def test_a_threshold_outside_0_to_1_is_refused_naming_the_option(day: Path) -> None:
    for bad in ("0", "1", "1.5", "-0.2", "often"):
        with pytest.raises(SystemExit) as exited, contextlib.redirect_stderr(io.StringIO()) as err:
            main(["eval", "dedup", "--stream", str(day / "storm.jsonl"), "--threshold", bad])
        assert exited.value.code == 2
        assert "--threshold" in err.getvalue() and bad in err.getvalue()
