"""What the models decided, read from the database: /metrics' drift figures, ``incibot models drift`` against the
champion's evaluation, and people's corrections exported once each with their provenance."""

from __future__ import annotations

import contextlib
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.cli.main import main
from bot.db.database import Database
from bot.incidents.models import CategoryLabel, CorrelationFeedback, Incident, IncidentAlert
from bot.ingest.models import Alert
from bot.metrics import Metrics
from bot.registry.models import ModelVersion
from bot.registry.store import feature_version, library_versions, promote, register
from bot.settings import Settings
from knowledge.correlation.features import FEATURES
from tests.support import FakeClock

pytestmark = pytest.mark.db


def _incident(session: Session, at: datetime, n: int, **category: object) -> Incident:
    incident = Incident(
        title=f"incident {n}",
        severity="warning",
        source="alertmanager",
        group_key=f"g{n}",
        opened_at=at,
        last_alert_at=at,
        **category,
    )
    session.add(incident)
    session.flush()
    return incident


def _alert(session: Session, at: datetime, n: int) -> Alert:
    alert = Alert(
        source="alertmanager",
        occurrence_key=f"o{n}",
        fingerprint=f"f{n}",
        group_key="g",
        alertname="DiskFull",
        status="firing",
        severity="warning",
        labels={"alertname": "DiskFull", "service": "db"},
        annotations={"summary": "disk full"},
        received_at=at,
        last_seen_at=at,
        change_token="t",
    )
    session.add(alert)
    session.flush()
    return alert


def _decisions(database: Database, now: datetime) -> None:
    """40 scored correlation decisions (30 joined at 0.9, 10 new at 0.1), 4 classified incidents, 1 abstained,
    1 picked by a person after an abstention; corrections: a merge whose pair was stored three times, a split."""
    with database.write() as session:
        incident = _incident(session, now, 0, category="database", category_source="model", category_confidence=0.9)
        for n in range(40):
            alert = _alert(session, now, n)
            joined = n < 30
            decision, probability = ("learned", 0.9) if joined else ("new", 0.1)
            session.add(
                IncidentAlert(
                    incident_id=incident.id,
                    alert_id=alert.id,
                    linked_at=now,
                    decision=decision,
                    probability=probability,
                )
            )
        for n in range(1, 4):
            _incident(session, now, n, category="network", category_source="model", category_confidence=0.8)
        _incident(session, now, 4, category_confidence=0.3)
        picked = _incident(session, now, 5, category="storage", category_source="person")
        _incident(session, now - timedelta(days=30), 6)  # outside every window
        session.add(
            CategoryLabel(
                at=now,
                actor="alice",
                incident_id=picked.id,
                category="storage",
                previous=None,
                texts=["disk full on db"],
            )
        )
        session.add(
            CategoryLabel(
                at=now,
                actor="bob",
                incident_id=incident.id,
                category="storage",
                previous="database",
                model_confidence=0.9,
                texts=["disk full"],
            )
        )
        for related, at in ((True, now), (True, now), (False, now - timedelta(hours=1)), (True, now)):
            session.add(
                CorrelationFeedback(
                    at=at,
                    actor="carol",
                    kind="merge" if related else "split",
                    incident_id=incident.id,
                    alert_id=1 if at == now else 2,
                    related=related,
                    features=[0.5] * len(FEATURES),
                )
            )


def test_metrics_show_decisions_confidence_corrections_and_the_champion(database: Database, clock: FakeClock) -> None:
    _decisions(database, clock.now)
    text = Metrics(database, clock).render().decode()
    assert 'incibot_model_decisions{kind="correlate",outcome="joined"} 30.0' in text
    assert 'incibot_model_decisions{kind="correlate",outcome="new"} 10.0' in text
    assert 'incibot_model_decisions{kind="classify",outcome="classified"} 4.0' in text
    assert 'incibot_model_decisions{kind="classify",outcome="abstained"} 2.0' in text
    assert 'incibot_model_confidence_bucket{kind="correlate",le="0.1"} 10.0' in text
    assert 'incibot_model_confidence_bucket{kind="correlate",le="0.8"} 10.0' in text
    assert 'incibot_model_confidence_bucket{kind="correlate",le="0.9"} 40.0' in text
    assert 'incibot_model_confidence_count{kind="classify"} 5.0' in text
    assert 'incibot_model_corrections_total{kind="merge"} 1.0' in text  # two pairs of one correction
    assert 'incibot_model_corrections_total{kind="split"} 1.0' in text
    assert 'incibot_model_corrections_total{kind="category"} 2.0' in text
    assert 'incibot_model_champion{kind="correlate",version="0"} 1.0' in text


def _cli(argv: list[str]) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        assert main(argv) == 0
    return out.getvalue()


def test_drift_compares_the_week_with_the_champions_evaluation(
    database: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("INCIBOT_DATABASE_URL", settings.effective_database_url)
    now = datetime.now(UTC)
    _decisions(database, now - timedelta(hours=1))
    out = _cli(["models", "drift"])
    assert "correlate (champion 0): 40 decisions in the last 7 days: no evaluation of the champion" in out
    assert "classify (champion 0): 6 decisions in the last 7 days: too few to compare (at least 20)" in out
    folder = tmp_path / "correlate-1"
    folder.mkdir()
    card = {
        "kind": "correlate",
        "version": "correlate-1",
        "features": feature_version("correlate"),
        "libraries": library_versions(),
        "metrics": {"log_loss": 0.1, "confidence_mean": 0.7, "abstention": 0.26},
    }
    with database.write() as session:
        register(session, "correlate", folder, card, {}, now=now)
        promote(session, "correlate", "correlate-1", actor="test", now=now)
    out = _cli(["models", "drift", "--days", "2"])
    assert (
        "correlate (champion correlate-1): 40 decisions in the last 2 days; confidence mean 0.700 (evaluation 0.700); "
        "abstention 0.250 (evaluation 0.260): steady" in out
    )
    with database.write() as session:
        session.scalars(select(ModelVersion)).one().card = {
            **card,
            "metrics": {"confidence_mean": 0.9, "abstention": 0.1},
        }
    out = _cli(["models", "drift"])
    assert "MOVED: confidence mean, abstention" in out


def test_corrections_are_exported_once_each_with_provenance(
    database: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch, clock: FakeClock, tmp_path: Path
) -> None:
    monkeypatch.setenv("INCIBOT_DATABASE_URL", settings.effective_database_url)
    _decisions(database, clock.now)
    _cli(["models", "data", "export", "--out", str(tmp_path / "export.jsonl")])
    lines = [json.loads(line) for line in (tmp_path / "export.jsonl").read_text().splitlines()]
    categories = [line for line in lines if "category" in line]
    assert [(line["category"], line["previous"], line["actor"]) for line in categories] == [
        ("storage", None, "alice"),
        ("storage", "database", "bob"),
    ]
    assert categories[1]["alert"]["labels"] == {"alertname": "DiskFull", "service": "db"}
    assert categories[1]["texts"] == ["disk full"] and categories[0]["alert"] is None  # incident 5 has no alerts
    pairs = [line for line in lines if "related" in line]
    # alert 1 was corrected three times against incident 1: it is one example, with its latest label
    assert sorted((line["alert"]["fingerprint"], line["related"], line["kind"]) for line in pairs) == [
        ("f0", True, "merge"),
        ("f1", False, "split"),
    ]
    assert set(pairs[0]["features"]) == set(FEATURES) and pairs[0]["at"].startswith(str(clock.now.date()))
