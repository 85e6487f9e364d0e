"""Search in the bot: incident documents and their index (heal, rebuild), runbooks in Slack posts, /runbook,
/incident similar, and the CLI; with the real model and the stand-in."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from sqlalchemy import select

from bot.cli.knowledge import format_age
from bot.db.database import Database
from bot.incidents.models import Incident
from bot.knowledge.incident_index import IncidentIndex, StoredVector, store_vectors
from bot.knowledge.models import IncidentDocument
from bot.knowledge.runbook_library import RunbookLibrary
from bot.settings import Settings
from knowledge.embeddings import Embedder
from knowledge.index import IndexSpec, VectorIndex, read_manifest
from knowledge.runbooks import SAMPLE_RUNBOOKS
from tests.conftest import TOKEN, auth
from tests.processes import ServeProcess, incibot_env, run_incibot
from tests.slack_support import SlackBot, running_bot
from tests.support import am_alert, am_group, wait_for

pytestmark = pytest.mark.db

T = datetime(2026, 11, 1, 12, tzinfo=UTC)


def disk_alert(host: str, **labels: str) -> dict[str, Any]:
    alert = am_alert("NodeFilesystemAlmostFull", instance=f"{host}:9100", service="node", **labels)
    alert["annotations"] = {
        "summary": f"Filesystem on {host} is almost full",
        "description": f"Only 3% space left on / at {host}.",
    }
    return am_group([alert], group_key=f'{{}}:{{alertname="NodeFilesystemAlmostFull",instance="{host}"}}')


def section_texts(message: dict[str, Any]) -> str:
    return "\n".join(str((block.get("text") or {}).get("text", "")) for block in message["blocks"])


def documents(database: Database) -> list[IncidentDocument]:
    with database.read() as session:
        return list(session.scalars(select(IncidentDocument).order_by(IncidentDocument.incident_id)))


def embedded(database: Database, incident_id: int, rev: int = 1) -> bool:
    return any(d.incident_id == incident_id and not d.pending and d.rev >= rev for d in documents(database))


@pytest.fixture
def bot(knowledge_settings: Settings, shared_embedder: Embedder) -> Iterator[SlackBot]:
    with running_bot(knowledge_settings, shared_embedder) as running:
        yield running


# -- Slack ----------------------------------------------------------------------------------------------------------


def test_first_post_shows_runbooks_then_similar_past_incidents_with_their_resolution(bot: SlackBot) -> None:
    bot.send(disk_alert("db-7"))
    first = bot.wait_for_post()
    text = section_texts(first)
    assert "*Runbooks*" in text and "node/DiskFull" in text  # the sample runbook, by meaning (no name match)
    assert "§ " in text  # points at a section
    assert "*Similar past incidents*\nNo similar past incidents." in text
    wait_for(lambda: embedded(bot.runtime.database, 1))

    answer = bot.driver.slash_command(
        "/incident", "resolve 1 deleted old WAL segments and grew the volume", wait_responses=5
    )
    assert "resolved" in answer.responses[0]["text"]
    wait_for(lambda: embedded(bot.runtime.database, 1, rev=2), timeout=15)  # re-indexed with the note

    bot.send(disk_alert("web-3"))  # the same problem on another host: a new incident
    second = bot.wait_for_post(lambda m: "#2" in m["text"])
    wait_for(lambda: "deleted old WAL segments" in section_texts(bot.wait_for_post(lambda m: "#2" in m["text"])))
    second = bot.wait_for_post(lambda m: "#2" in m["text"])
    similar = section_texts(second).split("*Similar past incidents*", 1)[1]
    assert "*#1*" in similar and "resolved" in similar and "deleted old WAL segments and grew the volume" in similar


def test_slow_search_never_delays_the_post_and_arrives_as_an_edit(
    bot: SlackBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert bot.runtime.knowledge is not None
    service = bot.runtime.knowledge.service
    real = service.suggest

    def slow(incident_id: int) -> Any:
        time.sleep(2.5)
        return real(incident_id)

    monkeypatch.setattr(service, "suggest", slow)
    sent = time.monotonic()
    bot.send(disk_alert("db-9"))
    post = bot.wait_for_post()
    assert time.monotonic() - sent < 2.5, "the post waited for the search"
    assert "*Runbooks*" not in section_texts(post)
    assert "looking for runbooks" in json.dumps(post["blocks"])
    edited = bot.wait_for_post(lambda m: "*Runbooks*" in section_texts(m), timeout=15)
    assert edited["ts"] == post["ts"] and edited["edits"]
    assert "node/DiskFull" in section_texts(edited)
    assert len(bot.posts()) == 1


def test_a_failed_search_is_said_plainly(bot: SlackBot, monkeypatch: pytest.MonkeyPatch) -> None:
    assert bot.runtime.knowledge is not None

    def broken(incident_id: int) -> Any:
        raise RuntimeError("index unreadable")

    monkeypatch.setattr(bot.runtime.knowledge.service, "suggest", broken)
    bot.send(disk_alert("db-5"))
    post = bot.wait_for_post(lambda m: "failed" in section_texts(m))
    assert "looking for runbooks" not in json.dumps(post["blocks"]) and "*Runbooks*" not in section_texts(post)


def test_runbook_command_answers_ephemerally_and_abstains_off_topic(bot: SlackBot) -> None:
    found = bot.driver.slash_command("/runbook", "postgres replica lagging behind the primary", wait_responses=5)
    assert found.status == 200
    [answer] = found.responses
    assert answer["response_type"] == "ephemeral"
    assert answer["text"].startswith("Runbooks for") and "database/ReplicationLagHigh" in answer["text"]

    off_topic = bot.driver.slash_command("/runbook", "the office coffee machine is broken", wait_responses=5)
    assert off_topic.responses[0]["text"].startswith("No runbook fits")

    empty = bot.driver.slash_command("/runbook", "   ")
    assert "/runbook QUERY" in empty.body and not empty.responses
    too_long = bot.driver.slash_command("/runbook", "x" * 600)
    assert "too long" in too_long.body


def test_incident_similar_command(bot: SlackBot) -> None:
    bot.send(disk_alert("db-1"))
    bot.wait_for_post()
    bot.send(disk_alert("db-2"))
    bot.wait_for_post(lambda m: "#2" in m["text"])
    wait_for(lambda: embedded(bot.runtime.database, 1) and embedded(bot.runtime.database, 2))
    answer = bot.driver.slash_command("/incident", "similar 2", wait_responses=5).responses[0]["text"]
    assert answer.startswith("Incidents similar to #2") and "*#1*" in answer and "still open" in answer
    missing = bot.driver.slash_command("/incident", "similar 99", wait_responses=5).responses[0]["text"]
    assert "There is no incident 99." in missing
    bad = bot.driver.slash_command("/incident", "similar abc")
    assert "is not an incident ID" in bad.body


# -- the incident index ---------------------------------------------------------------------------------------------


def _incident(database: Database, text: str, embedder: Embedder) -> tuple[int, np.ndarray]:
    with database.write() as session:
        incident = Incident(
            title=text[:100], severity="warning", source="generic", group_key=text, opened_at=T, last_alert_at=T
        )
        session.add(incident)
        session.flush()
        session.add(IncidentDocument(incident_id=incident.id, text=text, updated_at=T))
        incident_id = incident.id
    return incident_id, embedder.embed_one(text)


def test_index_heals_a_crash_between_commit_and_save_and_rebuilds_on_mismatch(
    database_url: str, tmp_path: Path, shared_embedder: Embedder
) -> None:
    database = Database(database_url)
    directory = tmp_path / "incidents"
    model, dim = shared_embedder.name, shared_embedder.dimension
    texts = ["disk almost full on db-1", "certificate expires in 3 days", "replica lag 40 seconds"]
    made = [_incident(database, t, shared_embedder) for t in texts]
    index = IncidentIndex(database, model, dim, directory)
    assert index.open().startswith("rebuilt")  # nothing saved yet
    store_vectors(database, model, [StoredVector(i, 1, v) for i, v in made[:2]])
    assert index.catch_up() == 2 and index.save()
    # The third vector is committed, then the process dies before the index is saved.
    store_vectors(database, model, [StoredVector(made[2][0], 1, made[2][1])])
    assert read_manifest(directory).watermark == 2

    healed = IncidentIndex(database, model, dim, directory)
    how = healed.open()
    assert how.startswith("loaded 2") and "caught up 1" in how
    assert healed.search(shared_embedder.embed_one("replication lag on the replica"), 1)[0][0] == made[2][0]

    # Built for another model: rebuilt from the stored vectors, never used.
    VectorIndex(IndexSpec("another-model", dim, "incident-documents")).save(directory)
    assert IncidentIndex(database, model, dim, directory).open().startswith("rebuilt from the database (3")
    # Claims more than the database holds (another database, a restored backup): rebuilt.
    ahead = VectorIndex.build(IndexSpec(model, dim, "incident-documents"), [1], made[0][1][None, :])
    ahead.watermark = 99
    ahead.save(directory)
    assert "only up to 3" in IncidentIndex(database, model, dim, directory).open()
    # A stale vector of an updated revision is not stored over the newer text.
    assert store_vectors(database, model, [StoredVector(made[0][0], 0, made[0][1])]) == 0
    database.dispose()


def test_runbook_library_reuses_saved_vectors_and_reindexes_changed_files(
    tmp_path: Path, shared_embedder: Embedder
) -> None:
    folder = tmp_path / "runbooks"
    folder.mkdir()
    for path in SAMPLE_RUNBOOKS.rglob("*.md"):
        target = folder / path.relative_to(SAMPLE_RUNBOOKS)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
    _, how = RunbookLibrary(folder, shared_embedder, tmp_path / "index").rebuild()
    assert "embedded" in how and "saved" in how
    again = RunbookLibrary(folder, shared_embedder, tmp_path / "index", check_every=0)
    assert "loaded from the index" in again.rebuild(save=False)[1]
    before = again.index().search("rotate the backup tapes in the vault").hits[0].doc
    (folder / "ops").mkdir()
    (folder / "ops" / "BackupTapes.md").write_text(
        "---\ntitle: Backup tapes not rotated\n---\n\n## Meaning\nThe weekly backup tapes were not rotated into"
        " the vault.\n\n## Mitigation\nRotate the backup tapes and record them in the vault log.\n"
    )
    after = again.index().search("rotate the backup tapes in the vault")
    assert before != "ops/BackupTapes" and after.hits[0].doc == "ops/BackupTapes"


# -- processes: SIGKILL between the commit and the save; the CLI ----------------------------------------------------


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    yield database
    database.dispose()


def _worker_child(parent: int) -> int:
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


def _max_seq(database: Database) -> int:
    return max((d.seq or 0 for d in documents(database)), default=0)


def test_sigkill_between_commit_and_index_save_heals_on_restart(
    database_url: str, tmp_path: Path, db: Database
) -> None:
    env = incibot_env(tmp_path / "var", database_url, ingest_tokens=TOKEN, knowledge="true", index_save_interval="1h")
    manifest_dir = tmp_path / "var" / "index" / "incidents"
    first = ServeProcess(env, tmp_path / "serve-1.log").start()
    first.wait_ready(timeout=120)
    response = httpx.post(f"{first.url}/alerts/alertmanager", json=disk_alert("db-4"), headers=auth(), timeout=10)
    assert response.status_code == 202
    wait_for(lambda: embedded(db, 1), timeout=60)  # committed: vector and seq in the database
    assert first.process is not None
    os.kill(_worker_child(first.process.pid), signal.SIGKILL)  # the indexer's process dies before its save
    first.kill()
    assert read_manifest(manifest_dir).watermark < _max_seq(db) == 1

    second = ServeProcess(env, tmp_path / "serve-2.log").start()
    try:
        second.wait_ready(timeout=120)
        wait_for(lambda: read_manifest(manifest_dir).watermark == 1, timeout=60)
        assert read_manifest(manifest_dir).count == 1
        assert "caught up 1 newer from the database" in second.log()
    finally:
        assert second.terminate() == 0

    index = run_incibot("knowledge", "index", env=env, timeout=120)
    assert index.returncode == 0, index.stderr
    assert "incidents: 0 embedded now, 1 in the index" in index.stdout
    search = run_incibot(
        "knowledge", "search", "--kind", "incidents", "--json", "disk full on a host", env=env, timeout=120
    )
    assert search.returncode == 0, search.stderr
    [hit] = json.loads(search.stdout)["results"]
    assert hit["id"] == 1 and hit["status"] == "triggered" and hit["score"] > 0.5
    unmigrated = run_incibot(
        "knowledge",
        "search",
        "--kind",
        "incidents",
        "x",
        env={**env, "INCIBOT_DATABASE_URL": f"sqlite:///{tmp_path / 'empty.db'}"},
        timeout=120,
    )
    assert unmigrated.returncode == 1 and "not migrated" in unmigrated.stderr


def test_ages_read_in_minutes_hours_then_days() -> None:
    assert [format_age(timedelta(minutes=m)) for m in (-5, 7, 119, 120, 47 * 60, 49 * 60)] == [
        "0 min",
        "7 min",
        "119 min",
        "2 h",
        "47 h",
        "2 d",
    ]


def test_a_missing_runbook_folder_stops_start_up_with_a_clear_error(database_url: str, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-runbooks"
    env = incibot_env(tmp_path / "var", database_url, ingest_tokens=TOKEN, knowledge="true", runbooks_dir=str(missing))
    for command in (("serve", "--port", "0"), ("worker",), ("knowledge", "index")):
        result = run_incibot(*command, env=env, timeout=60)
        assert result.returncode in (1, 2), (command, result.stdout, result.stderr)
        assert f"INCIBOT_RUNBOOKS_DIR {missing} is not a directory" in result.stderr, command
