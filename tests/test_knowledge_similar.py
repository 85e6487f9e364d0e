"""``incibot eval similar``: same-alert incidents are told apart from unrelated ones (real model)."""

from __future__ import annotations

import json
from pathlib import Path

from knowledge.embeddings import Embedder
from knowledge.similarity_eval import first_alerts, similarity_table
from tests.processes import incibot_env, run_incibot


def _line(incident: str, name: str, summary: str, status: str = "firing", **labels: str) -> str:
    alert = {"status": status, "labels": {"alertname": name, **labels}, "annotations": {"summary": summary}}
    return json.dumps({"at": "2025-03-10T00:00:00Z", "alert": alert, "truth": {"incident": incident}})


STREAM = [
    _line("A", "NodeFilesystemAlmostFull", "Filesystem on db-1 has 3% space left", instance="db-1:9100"),
    _line("A", "NodeFilesystemAlmostFull", "Filesystem on db-1 has 2% space left", instance="db-1:9100"),
    _line("B", "CertificateExpiresSoon", "TLS certificate for api.example.com expires in 5 days"),
    _line("C", "NodeFilesystemAlmostFull", "Filesystem on web-4 has 4% space left", instance="web-4:9100"),
    _line("D", "CertificateExpiresSoon", "TLS certificate for shop.example.com expires in 2 days"),
    _line("E", "PostgresReplicationLag", "Replica pg-2 is 40 s behind the primary", status="resolved"),
    _line("E", "PostgresReplicationLag", "Replica pg-2 is 45 s behind the primary"),
]


def test_first_firing_alert_of_each_incident() -> None:
    alerts = first_alerts(STREAM)
    assert [a["labels"]["alertname"] for a in alerts] == [
        "NodeFilesystemAlmostFull",
        "CertificateExpiresSoon",
        "NodeFilesystemAlmostFull",
        "CertificateExpiresSoon",
        "PostgresReplicationLag",
    ]
    assert alerts[4]["annotations"]["summary"].endswith("45 s behind the primary")  # the resolved one is skipped


def test_same_alert_pairs_score_above_unrelated_ones(shared_embedder: Embedder) -> None:
    rows = {row.threshold: row for row in similarity_table(first_alerts(STREAM), shared_embedder, (0.0, 0.75, 1.01))}
    assert rows[0.0].similar_kept == 1.0 and rows[0.0].unrelated_passed == 1.0
    assert rows[0.75].similar_kept == 1.0 and rows[0.75].unrelated_passed == 0.0
    assert rows[0.75].top3_precision == 1.0
    assert rows[1.01].shown_per_incident == 0.0


def test_eval_similar_rejects_a_stream_without_truth(tmp_path: Path) -> None:
    stream = tmp_path / "stream.jsonl"
    stream.write_text(json.dumps({"at": "x", "alert": {"labels": {}}}) + "\n")
    result = run_incibot("eval", "similar", "--stream", str(stream), env=incibot_env(tmp_path / "var"), timeout=60)
    assert result.returncode == 2 and "line 1: not a stream line with truth" in result.stderr
