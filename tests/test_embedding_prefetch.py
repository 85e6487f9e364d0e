"""Embeddings ahead of the worker: the prefetch loop reads the queue once and fills the shared cache; a text one
thread is encoding is waited for by another, never encoded twice."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any

import httpx
import numpy as np
from sqlalchemy import select

from bot.correlation.prefetch import MAX_NICE, NICENESS, EmbeddingPrefetch, lower_thread_priority
from bot.ingest.models import Alert
from bot.runtime import Runtime
from bot.settings import Settings
from knowledge.alerts import NormalizedAlert
from knowledge.embeddings import Embedder
from knowledge.text import alert_text
from tests.conftest import auth
from tests.support import FakeClock, am_alert, am_group, serve_in_thread


class _GatedModel:
    """A sentence-transformers stand-in: one vector per text from its length; ``gate`` holds every call until set;
    ``fail`` makes the next call raise."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.started = threading.Event()
        self.gate = threading.Event()
        self.fail = False

    def get_sentence_embedding_dimension(self) -> int:
        return 4

    def encode(self, texts: Sequence[str], **_options: Any) -> np.ndarray:
        self.calls.append(list(texts))
        self.started.set()
        self.gate.wait(10)
        if self.fail:
            self.fail = False
            raise RuntimeError("model failed")
        return np.array([[len(text), 1.0, 0.0, 0.0] for text in texts], dtype=np.float32)


def _in_thread(embedder: Embedder, texts: list[str]) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(embedder.embed(texts))
        except RuntimeError as exc:
            out.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, out


def test_a_text_being_encoded_is_waited_for_not_encoded_again() -> None:
    model = _GatedModel()
    embedder = Embedder(model, "gated")
    first, first_out = _in_thread(embedder, ["disk full on db-1"])
    assert model.started.wait(5)
    second, second_out = _in_thread(embedder, ["disk full on db-1", "pod crash looping"])
    model.gate.set()
    first.join(5)
    second.join(5)
    assert model.calls == [["disk full on db-1"], ["pod crash looping"]]  # the shared text once
    np.testing.assert_array_equal(first_out[0][0], second_out[0][0])
    assert embedder.misses == 2


def test_when_the_encoding_thread_fails_the_waiting_one_encodes_the_text_itself() -> None:
    model = _GatedModel()
    model.fail = True
    embedder = Embedder(model, "gated")
    first, first_out = _in_thread(embedder, ["disk full on db-1"])
    assert model.started.wait(5)
    second, second_out = _in_thread(embedder, ["disk full on db-1"])
    model.gate.set()
    first.join(5)
    second.join(5)
    assert isinstance(first_out[0], RuntimeError)
    assert second_out[0].shape == (1, 4) and model.calls == [["disk full on db-1"], ["disk full on db-1"]]


class _Recorder:
    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.batches.append(list(texts))
        return np.zeros((len(texts), 4), dtype=np.float32)


def _send(http: httpx.Client, *alerts: dict[str, Any]) -> None:
    assert http.post("/alerts/alertmanager", json=am_group(list(alerts)), headers=auth()).status_code == 202


def test_the_prefetch_embeds_each_queued_new_alert_text_once_in_queue_order(
    stored_service: tuple[Runtime, httpx.Client],
) -> None:
    runtime, http = stored_service
    first = am_alert("PostgresDown", pod="orders-db-0")
    second = am_alert("KubePodCrashLooping", pod="cart-api-5d8f9c7b6-q2w4x")
    _send(http, first, second)
    _send(http, am_alert("PostgresDown", status="resolved", pod="orders-db-0"))  # no new alert: nothing to embed
    recorder = _Recorder()
    handed: list[list[str]] = []
    prefetch = EmbeddingPrefetch(runtime.database, recorder, then=handed.append)
    assert prefetch.run_once() == 2  # deliveries read
    texts = [alert_text(_normalized(runtime, alert)) for alert in (first, second)]
    assert recorder.batches == [texts]
    assert handed == [texts]  # once embedded, the round's texts are handed on (the classifier predicts ahead)
    assert prefetch.run_once() == 0  # read already: never again
    assert len(handed) == 1
    third = am_alert("NodeDiskFull", node="worker-9")
    _send(http, third)
    assert prefetch.run_once() == 1
    assert recorder.batches[-1] == handed[-1] == [alert_text(_normalized(runtime, third))]


def _normalized(runtime: Runtime, alert: dict[str, Any]) -> NormalizedAlert:
    """The stored alert as correlation reads it."""
    with runtime.database.read() as session:
        name, pod = alert["labels"]["alertname"], alert["labels"].get("pod")
        rows = session.scalars(select(Alert).where(Alert.alertname == name).order_by(Alert.id))
        return next(row for row in rows if row.labels.get("pod") == pod).normalized()


def test_the_runtime_prefetches_for_learned_correlation_only(settings: Settings, clock: FakeClock) -> None:
    learned = Runtime.build(settings.model_copy(update={"correlation": "learned"}), clock=clock)
    source = Runtime.build(settings.model_copy(update={"correlation": "source"}), clock=clock)
    try:
        assert isinstance(learned.prefetch, EmbeddingPrefetch)
        assert source.prefetch is None
    finally:
        learned.database.dispose()
        source.database.dispose()


def test_the_runtimes_prefetch_has_the_classifier_predict_ahead_for_what_it_embedded(
    settings: Settings, clock: FakeClock
) -> None:
    update = {"correlation": "learned", "classification": True, "process_deliveries": False}
    runtime = Runtime.build(settings.model_copy(update=update), clock=clock)
    try:
        assert runtime.prefetch is not None and runtime.classification is not None
        with serve_in_thread(runtime.asgi_app()) as url, httpx.Client(base_url=url, timeout=10) as http:
            _send(http, am_alert("PostgresDown", pod="orders-db-0"))
            assert runtime.prefetch.run_once() == 1  # while the app runs (its shutdown stops the prefetch)
        with runtime.database.read() as session:
            text = alert_text(session.scalars(select(Alert)).one().normalized())
        assert runtime.classification.predict_ahead([text]) == 0  # predicted on the prefetch's round already
        assert runtime.classification.predict_ahead(["NodeDiskFull on worker-9"]) == 1
    finally:
        runtime.database.dispose()


def test_the_prefetch_thread_runs_niced_never_idle_scheduled() -> None:
    """An idle-scheduled thread gets no CPU while busy processes fill the cores; if it holds the interpreter lock
    then, the worker's thread waits for it. Niced, it is only slowed."""
    seen: dict[str, int] = {}

    def run() -> None:
        thread = threading.get_native_id()
        seen["before"] = os.getpriority(os.PRIO_PROCESS, thread)
        lower_thread_priority()
        seen["after"] = os.getpriority(os.PRIO_PROCESS, thread)
        seen["policy"] = os.sched_getscheduler(thread)

    started = threading.Thread(target=run)
    started.start()
    started.join()
    assert seen["after"] == min(MAX_NICE, seen["before"] + NICENESS)
    assert seen["policy"] == os.SCHED_OTHER
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == seen["before"]  # this thread: unchanged
