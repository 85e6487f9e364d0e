"""An incident's search document changes when what its text is made of changes, and only then: a flapping incident
reopens and resolves hundreds of times in a storm with nothing to re-index (each look was a read inside the worker's
write transaction), while a person's resolution note is shown only while the incident is resolved, and a merge may
give the incident another first alert."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx

from bot.incidents.corrections import build_corrections
from bot.knowledge.models import IncidentDocument
from bot.runtime import Runtime
from bot.settings import Settings
from knowledge.embeddings import Embedder
from tests.conftest import auth
from tests.support import T0, FakeClock, am_alert, am_group

NOTE = "rolled back the deploy"


def _send(runtime: Runtime, http: httpx.Client, alert: dict[str, Any], group: str) -> None:
    group_key = f'{{}}:{{alertname="{group}"}}'
    assert http.post("/alerts/alertmanager", json=am_group([alert], group_key=group_key), headers=auth()).status_code
    while runtime.worker.run_once():
        pass


def _document(runtime: Runtime, incident_id: int) -> tuple[int, str]:
    with runtime.database.read() as session:
        document = session.get(IncidentDocument, incident_id)
        assert document is not None
        return document.rev, document.text


def test_a_flapping_incident_keeps_its_document_and_a_resolution_note_shows_only_while_resolved(
    stored_service: tuple[Runtime, httpx.Client], clock: FakeClock
) -> None:
    runtime, http = stored_service
    episode = T0
    _send(runtime, http, am_alert("DiskFull", starts_at=episode, pod="db-0"), "DiskFull")
    rev, about = _document(runtime, 1)
    assert rev == 1 and "Disk Full" in about and "Resolution" not in about

    for _ in range(3):  # resolved and fired again: auto-resolved, then reopened, each time
        clock.advance(minutes=1)
        _send(runtime, http, am_alert("DiskFull", status="resolved", starts_at=episode, pod="db-0"), "DiskFull")
        episode += timedelta(minutes=2)
        clock.advance(minutes=1)
        _send(runtime, http, am_alert("DiskFull", starts_at=episode, pod="db-0"), "DiskFull")
    assert _document(runtime, 1) == (1, about)  # no note to show or hide: nothing to re-index

    with runtime.database.write() as session:
        assert runtime.incidents.resolve(session, 1, "slack:U1", NOTE, "alice").changed  # while its alert fires
    assert _document(runtime, 1) == (2, f"{about}\nResolution: {NOTE}")
    clock.advance(minutes=1)
    _send(runtime, http, am_alert("DiskFull", status="resolved", starts_at=episode, pod="db-0"), "DiskFull")
    assert _document(runtime, 1)[0] == 2  # the alert resolved too: the incident was resolved already
    clock.advance(minutes=1)
    episode += timedelta(minutes=2)
    _send(runtime, http, am_alert("DiskFull", starts_at=episode, pod="db-0"), "DiskFull")  # reopened: note hidden
    assert _document(runtime, 1) == (3, about)
    clock.advance(minutes=1)
    _send(runtime, http, am_alert("DiskFull", status="resolved", starts_at=episode, pod="db-0"), "DiskFull")
    assert _document(runtime, 1) == (4, f"{about}\nResolution: {NOTE}")  # auto-resolved: the note shows again


def test_a_merge_re_indexes_the_incident_whose_first_alert_changed(
    stored_service: tuple[Runtime, httpx.Client], settings: Settings, shared_embedder: Embedder
) -> None:
    runtime, http = stored_service
    _send(runtime, http, am_alert("PostgresDown", pod="db-0"), "PostgresDown")  # #1, the older alert
    _send(runtime, http, am_alert("HighErrorRate", pod="api-0"), "HighErrorRate")  # #2
    rev, about = _document(runtime, 2)
    assert rev == 1 and "High Error Rate" in about

    corrections = build_corrections(runtime.incidents, settings, shared_embedder)
    with runtime.database.write() as session:
        assert corrections.merge(session, 2, 1, "slack:U1", "alice").changed
    rev, text = _document(runtime, 2)
    assert rev == 2 and "Postgres Down" in text  # its first alert is now #1's
