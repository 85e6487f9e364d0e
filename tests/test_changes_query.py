"""Reading change events: ``changes_near`` for the root-cause ranking, and ``incibot changes list``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest

from bot.changes import store
from bot.changes.parsed import IncomingChange
from bot.changes.queries import changes_near
from bot.cli.main import main
from bot.db.database import Database
from knowledge.rootcause.model import ChangeEvent
from tests.support import T0


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    yield database
    database.dispose()


def add(db: Database, service: str, minutes: float, key: str, **fields: str) -> None:
    kind = fields.pop("kind", "deploy")
    change = IncomingChange("generic", key, service, kind, T0 + timedelta(minutes=minutes), **fields)
    with db.write_connection() as connection:
        store.record(connection, change, T0)


@pytest.mark.db
def test_changes_near_returns_the_services_changes_in_the_window_oldest_first(db: Database) -> None:
    add(db, "checkout", -6, "a", version="v2.31", who="ana", link="https://ci/1", description="canary")
    add(db, "checkout", -90, "b", version="v2.30")  # before the window
    add(db, "payments", -3, "c", kind="config")
    add(db, "search", -2, "d")  # another service
    add(db, "checkout", 5, "e", version="v2.32")  # after the window
    add(db, "payments", -30, "f", kind="feature_flag")  # on the window's edge
    with db.read() as session:
        found = changes_near(session, ["checkout", "payments", "checkout"], T0 - timedelta(minutes=30), T0)
        nothing = changes_near(session, [], T0 - timedelta(hours=3), T0 + timedelta(hours=1))
    assert found == [
        ChangeEvent("payments", "feature_flag", T0 - timedelta(minutes=30)),
        ChangeEvent("checkout", "deploy", T0 - timedelta(minutes=6), "v2.31", "ana", "https://ci/1", "canary"),
        ChangeEvent("payments", "config", T0 - timedelta(minutes=3)),
    ]
    assert found[0].at.tzinfo is not None
    assert nothing == []


def test_changes_list_prints_a_table_or_json_filtered_by_service_and_time(
    db: Database, database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("INCIBOT_DATABASE_URL", database_url)
    assert main(["changes", "list"]) == 0
    assert capsys.readouterr().out == "No changes.\n"
    add(db, "checkout", -6, "a", version="v2.31", who="ana")
    add(db, "payments", -3, "b", kind="config")
    assert main(["changes", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(row["service"], row["kind"], row["version"], row["who"]) for row in rows] == [
        ("payments", "config", None, None),
        ("checkout", "deploy", "v2.31", "ana"),
    ]
    assert set(rows[0]) == {
        "id", "service", "kind", "version", "who", "at", "link", "description", "source", "received_at",
    }  # fmt: skip
    assert rows[1]["at"] == (T0 - timedelta(minutes=6)).isoformat()
    assert main(["changes", "list", "--service", "checkout"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["ID", "WHEN", "(UTC)", "SERVICE", "KIND", "VERSION", "WHO"]
    assert [line.split()[3:] for line in table[1:]] == [["checkout", "deploy", "v2.31", "ana"]]
    since = (T0 - timedelta(minutes=4)).isoformat()
    assert main(["changes", "list", "--since", since, "--json"]) == 0
    assert [row["service"] for row in json.loads(capsys.readouterr().out)] == ["payments"]
    assert main(["changes", "list", "--since", "1d", "--json"]) == 0  # the fixtures are in the past: none
    assert json.loads(capsys.readouterr().out) == []
    assert main(["changes", "list", "--since", "last week"]) == 2
    assert "--since" in capsys.readouterr().err
