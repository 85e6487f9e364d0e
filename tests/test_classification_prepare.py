"""The worker's classification prepare: an incident is predicted again only when what the classifier reads of it
changed (a storm's alerts repeat their texts; each round used to predict every waiting incident anew)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, cast

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.classification.live import MODEL, PERSON, LiveClassification
from bot.classification.texts import ALERTS_READ
from bot.incidents.models import Incident, TimelineEntry
from bot.ingest.models import Alert
from bot.runtime import Runtime
from knowledge.classify.model import Prediction, TextClassifier, incident_text
from knowledge.text import alert_text
from tests.conftest import auth
from tests.support import am_alert, am_group


@dataclass
class _CountingModel:
    """Says "database" for every input and remembers what it was asked."""

    asked: list[str] = field(default_factory=list)
    card: Any = field(default_factory=lambda: SimpleNamespace(version="counting-1"))

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        self.asked.extend(texts)
        return [Prediction("database", 0.9, False) for _ in texts]


def _send_and_apply(runtime: Runtime, http: httpx.Client, alerts: list[dict[str, Any]]) -> None:
    assert http.post("/alerts/alertmanager", json=am_group(alerts), headers=auth()).status_code == 202
    while runtime.worker.run_once():
        pass


def _incident(runtime: Runtime) -> Incident:
    with runtime.database.read() as session:
        [incident] = session.scalars(select(Incident))
        return incident


def _wait_for_the_model(runtime: Runtime) -> None:
    """What an alert joining does to a model's category (the classification listener is off in these settings)."""
    with runtime.database.write() as session:
        session.scalars(select(Incident)).one().category_source = None


def test_an_incident_is_predicted_again_only_when_its_classifier_input_changed(
    stored_service: tuple[Runtime, httpx.Client],
) -> None:
    runtime, http = stored_service
    _send_and_apply(runtime, http, [am_alert(pod="a"), am_alert(pod="b")])
    model = _CountingModel()
    live = LiveClassification(lambda: cast(TextClassifier, model))
    live.prepare(runtime.database)
    assert len(model.asked) == 1  # two pods of one workload: one alert text
    first = _incident(runtime)
    assert (first.category, first.category_source, first.category_model) == ("database", MODEL, "counting-1")

    _send_and_apply(runtime, http, [am_alert(pod="a"), am_alert(pod="b"), am_alert(pod="c")])
    _wait_for_the_model(runtime)
    live.prepare(runtime.database)
    assert len(model.asked) == 1  # the third pod's alert reads the same: the prediction is reused
    assert _incident(runtime).category_source == MODEL

    other = am_alert(pod="d")
    other["annotations"]["summary"] = "Checkout returns 503 from its payment client"
    _send_and_apply(runtime, http, [am_alert(pod="a"), am_alert(pod="b"), am_alert(pod="c"), other])
    _wait_for_the_model(runtime)
    live.prepare(runtime.database)
    assert len(model.asked) == 2 and "payment client" in model.asked[-1]  # a new text: predicted again
    assert _incident(runtime).category_source == MODEL


def test_what_the_prefetch_predicted_ahead_is_not_predicted_again(stored_service: tuple[Runtime, httpx.Client]) -> None:
    runtime, http = stored_service
    _send_and_apply(runtime, http, [am_alert(pod="a")])
    model = _CountingModel()
    live = LiveClassification(lambda: cast(TextClassifier, model))
    with runtime.database.read() as session:
        text = alert_text(session.scalars(select(Alert)).one().normalized())
    assert live.predict_ahead([text, text]) == 1
    assert model.asked == [incident_text([text])]  # the input of the incident that alert opens
    assert live.predict_ahead([text]) == 0

    live.prepare(runtime.database)  # the incident waiting for the model reads the same: its prediction is reused
    assert len(model.asked) == 1
    incident = _incident(runtime)
    assert (incident.category, incident.category_source) == ("database", MODEL)


def test_alerts_joining_an_incident_past_the_alerts_the_model_reads_leave_its_category_alone() -> None:
    """The model reads an incident's first ALERTS_READ alerts; a storm's big incident is not read again for each
    alert that joins after them, until a merge or a split changes which alerts come first."""
    live = LiveClassification(lambda: cast(TextClassifier, _CountingModel()))
    incident = Incident(id=7, alert_count=ALERTS_READ, category="database", category_source=MODEL)

    def joined(count: int, kind: str = "alerts_added") -> str | None:
        incident.category_source = MODEL  # as the last prepare left it
        incident.alert_count = count
        live.on_timeline(cast(Session, None), incident, TimelineEntry(incident_id=7, kind=kind, text=""))
        return incident.category_source

    assert joined(ALERTS_READ) is None  # its first alerts may have changed: it waits for the model
    assert joined(ALERTS_READ + 1) is None  # the 200th may have come with this one
    assert joined(ALERTS_READ + 2) == MODEL  # the first ALERTS_READ were there before: nothing to read again
    assert joined(ALERTS_READ + 40) == MODEL
    assert joined(ALERTS_READ + 40, "split") is None
    assert joined(ALERTS_READ + 41) is None  # after a split, read once more
    assert joined(ALERTS_READ + 42) == MODEL
    assert joined(ALERTS_READ + 42, "merged_in") is None
    incident.category_source = PERSON
    live.on_timeline(cast(Session, None), incident, TimelineEntry(incident_id=7, kind="split", text=""))
    assert incident.category_source == PERSON  # a person's category is never replaced


class _SlowTimer:
    """Every read is a second later: each write transaction's budget is spent after one incident."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def test_one_write_transaction_applies_predictions_for_its_budget_and_the_rest_wait_for_the_next_prepare(
    stored_service: tuple[Runtime, httpx.Client],
) -> None:
    runtime, http = stored_service
    for name in ("DiskFull", "PodCrashLooping", "HighLatency"):  # three source groups: three incidents
        group = am_group([am_alert(name, pod=name.lower())], group_key=f'{{}}:{{alertname="{name}"}}')
        assert http.post("/alerts/alertmanager", json=group, headers=auth()).status_code == 202
    while runtime.worker.run_once():
        pass
    with runtime.database.write() as session:
        for incident in session.scalars(select(Incident)):
            incident.category_source = None  # all three wait for the model
    model = _CountingModel()
    live = LiveClassification(lambda: cast(TextClassifier, model), timer=_SlowTimer())

    def classified() -> int:
        with runtime.database.read() as session:
            return sum(i.category_source == MODEL for i in session.scalars(select(Incident)))

    assert live.prepare(runtime.database) == 3  # all three predicted at once ...
    assert classified() == 1  # ... one applied: the transaction's budget was spent
    assert live.prepare(runtime.database) == 0  # the others' predictions are kept
    assert classified() == 2
    live.prepare(runtime.database)
    assert classified() == 3 and len(model.asked) == 3
