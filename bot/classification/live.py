"""The model classifies incidents in the worker: predictions computed outside the write transaction, applied in it.

:meth:`LiveClassification.prepare` runs before each processing transaction, outside it (as the correlation
prepares its decisions): it predicts the category of each upcoming alert's own text (the incident it would
open), and of each open incident waiting for the model, and applies the latter in one short write transaction
of its own. In the processing transaction, :meth:`on_timeline` (a listener told before Slack's) gives a newly
opened incident its prepared category, so that its post shows it and is routed by it; an incident whose alerts
changed waits for the next prepare. The model never runs inside a write transaction. A person's category is
never replaced. The embedding prefetch calls :meth:`predict_ahead` with the new alert texts it embedded, on its own
thread, so that in a storm most of prepare's predictions are made before the worker's thread needs them.

An incident waits for the model while its ``category_source`` is None: never classified, or its alerts changed
since (its last category stays shown meanwhile). An abstention is stored as ``category`` None with the source
``model``, the best class's confidence and the model's version.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.classification.texts import ALERTS_READ, classifier_input
from bot.correlation.live import upcoming_alerts
from bot.db.database import Database
from bot.incidents.models import OPEN_STATUSES, Incident, TimelineEntry
from bot.incidents.service import SYSTEM_ACTOR, IncidentService
from knowledge.classify.categories import category
from knowledge.text import alert_text

if TYPE_CHECKING:
    from knowledge.classify.model import Prediction, TextClassifier

log = logging.getLogger(__name__)

MODEL, PERSON = "model", "person"  # Incident.category_source
CLASSIFIED = "classified"  # the timeline entry of a category the model changed
CHANGES = frozenset({"opened", "alerts_added", "merged_in", "split", "not_related"})  # entries that change alerts
PENDING_BATCH = 50  # incidents classified per prepare at most
APPLY_BUDGET = 0.012  # seconds one write transaction applies predictions for (on SQLite each blocks ingestion)
_KEEP = 2_000  # predictions kept by classifier input at most (least recently used dropped first)
_WAITING = (  # the incidents waiting for the model, read every round: built once
    select(Incident.id, Incident.alert_count)
    .where(
        Incident.category_source.is_(None),
        Incident.alert_count > 0,
        Incident.merged_into.is_(None),
        Incident.status.in_(OPEN_STATUSES),
    )
    .order_by(Incident.id)
    .limit(PENDING_BATCH)
)


class LiveClassification:
    """An :class:`~bot.incidents.service.IncidentListener` that classifies incidents with ``load()``'s model."""

    def __init__(self, load: Callable[[], TextClassifier], *, timer: Callable[[], float] = time.monotonic) -> None:
        self._load = load
        self._timer = timer
        self._model: TextClassifier | None = None
        self._service: IncidentService | None = None
        self._prepared: OrderedDict[str, Prediction] = OrderedDict()  # by classifier input
        self._upcoming: OrderedDict[int, str] = OrderedDict()  # the classifier input of upcoming alerts, by id
        self._full: OrderedDict[int, None] = OrderedDict()  # incidents past ALERTS_READ alerts when alerts last joined
        self._lock = threading.Lock()

    def attach(self, service: IncidentService) -> None:
        """The service whose timeline says what the model changed (it lists this listener: built after it)."""
        self._service = service

    def load(self) -> None:
        """Load the classifier now (the worker's start-up) rather than on the first prediction."""
        _ = self.model

    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def model(self) -> TextClassifier:
        """The classifier, loaded once (at the worker's start-up, or by its first prepare)."""
        if self._model is None:
            with self._lock:
                if self._model is None:
                    self._model = self._load()
                    log.info("classifier %s loaded", self._model.card.version)
        return self._model

    # --- in the processing transaction -------------------------------------------------------------------

    def on_timeline(self, session: Session, incident: Incident, entry: TimelineEntry) -> None:
        if entry.kind not in CHANGES or incident.category_source == PERSON:
            return
        if self._reads_the_same(incident, entry):
            return
        incident.category_source = None  # waits for the model, unless its prediction is ready
        if entry.kind != "opened":
            return
        with self._lock:
            prediction = self._prepared.get(classifier_input(session, incident.id))
        if prediction is not None:
            self._apply(incident, prediction)

    def _reads_the_same(self, incident: Incident, entry: TimelineEntry) -> bool:
        """Whether alerts joining leave what the model reads of the incident as it was: its first
        :data:`ALERTS_READ` alerts were all there before (it had more when alerts last joined it), and the alerts
        joining now arrived after them (an alert of a delivery applied late, with an earlier id than the last of
        those, is the exception: the category stays as the first alerts gave it). A storm's big incident was read
        again at every round for the same input. A merge or a split changes which alerts come first: the incident
        is read again."""
        full = incident.alert_count > ALERTS_READ and entry.kind == "alerts_added"
        with self._lock:
            was_full = incident.id in self._full
            if full:
                self._full[incident.id] = None
                self._full.move_to_end(incident.id)
                while len(self._full) > _KEEP:
                    self._full.popitem(last=False)
            else:
                self._full.pop(incident.id, None)
        return full and was_full

    # --- before it ------------------------------------------------------------------------------------

    def prepare(self, database: Database) -> int:
        """Predict ahead for the upcoming alerts, classify the incidents waiting for the model; returns how many
        predictions were made."""
        from knowledge.classify.model import incident_text

        with database.read() as session:
            upcoming = []
            for alert_id, alert in upcoming_alerts(session, known=self._upcoming):
                if alert is not None:  # read once per alert: should a re-send change its text, the incident it
                    # opens finds no prediction for its input in on_timeline and waits for the next prepare
                    self._upcoming[alert_id] = incident_text([alert_text(alert.normalized())])
                self._upcoming.move_to_end(alert_id)
                upcoming.append(self._upcoming[alert_id])
            while len(self._upcoming) > _KEEP:
                self._upcoming.popitem(last=False)
            waiting = session.execute(_WAITING).all()
            inputs = {incident_id: classifier_input(session, incident_id) for incident_id, _ in waiting}
        every, predicted = self._predictions([*upcoming, *inputs.values()])
        if waiting:
            self._apply_waiting(database, [(i, count, every[inputs[i]]) for i, count in waiting])
        return predicted

    def predict_ahead(self, alert_texts: Sequence[str]) -> int:
        """Predict the category of each alert text's own incident, should it open one (called by the embedding
        prefetch with the texts it embedded, on its thread, ahead of prepare); returns how many were predicted."""
        from knowledge.classify.model import incident_text

        return self._predictions([incident_text([text]) for text in alert_texts])[1]

    def _predictions(self, inputs: Sequence[str]) -> tuple[dict[str, Prediction], int]:
        """The prediction for each classifier input, and how many of them the model made now: an input predicted
        before (an incident whose new alerts repeat its texts, or one the prefetch predicted) is not again."""
        with self._lock:
            known = {text: p for text in inputs if (p := self._prepared.get(text)) is not None}
        wanted = [text for text in dict.fromkeys(inputs) if text not in known]
        predicted = dict(zip(wanted, self.model.predict(wanted), strict=True)) if wanted else {}
        with self._lock:
            for text, prediction in predicted.items():
                self._prepared[text] = prediction
            for text in known:
                self._prepared.move_to_end(text)
            while len(self._prepared) > _KEEP:
                self._prepared.popitem(last=False)
        return {**known, **predicted}, len(wanted)

    def _apply_waiting(self, database: Database, results: Sequence[tuple[int, int, Prediction]]) -> None:
        """Apply predictions to incidents still waiting with the alerts they were made from, for
        :data:`APPLY_BUDGET` at most: each one's timeline note tells every listener (Slack's outbox, search), and
        fifty of them held SQLite's write lock for hundreds of milliseconds while webhooks waited. Those left
        wait for the next prepare (their predictions are kept)."""
        with database.write() as session:
            session.connection()  # BEGIN: on SQLite this waits for the write lock
            locked = self._timer()
            for index, (incident_id, alert_count, prediction) in enumerate(results):
                if index and self._timer() - locked > APPLY_BUDGET:
                    break
                incident = session.get(Incident, incident_id, with_for_update=True)
                if incident is None or incident.category_source is not None or incident.alert_count != alert_count:
                    continue  # a person classified it, or its alerts changed again: the next prepare sees it
                before = incident.category
                self._apply(incident, prediction)
                if incident.category != before and self._service is not None:
                    self._service.note(session, incident, SYSTEM_ACTOR, CLASSIFIED, _describe(incident, prediction))

    def _apply(self, incident: Incident, prediction: Prediction) -> None:
        incident.category = None if prediction.abstain else prediction.label
        incident.category_confidence = prediction.confidence
        incident.category_source = MODEL
        incident.category_model = str(self.model.card.version)[:80]


def _describe(incident: Incident, prediction: Prediction) -> str:
    if incident.category is None:
        guess = category(prediction.label).title
        return f"Unclassified: the model is unsure (best guess {guess}, {prediction.confidence:.2f}). Pick one."
    return f"Classified as {category(incident.category).title} ({prediction.confidence:.2f})."
