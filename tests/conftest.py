"""Fixtures: a migrated database per test (SQLite file, or PostgreSQL from INCIBOT_TEST_DATABASE_URL),
settings pointing at it, a fake clock, and a runtime wired exactly as ``incibot serve`` wires it."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import text

from bot.db import migrate
from bot.db.database import Database
from bot.db.models import Base
from bot.runtime import Runtime
from bot.settings import Settings
from knowledge.embeddings import Embedder, load_embedder
from tests.support import FakeClock, serve_in_thread

TOKEN = "test-token-alertmanager-7f3a"
PD_ROUTING_KEY = "R0UT1NGKEY0123456789abcdefabcdef"
POSTGRES_URL = os.environ.get("INCIBOT_TEST_DATABASE_URL")


OWN_SETTINGS = ("SLACK_", "INCIBOT_")
TEST_SETTINGS = "INCIBOT_TEST_"  # how the suite itself is configured (e.g. INCIBOT_TEST_DATABASE_URL)


@pytest.fixture(autouse=True)
def _no_settings_from_outside(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts from incibot's defaults: a SLACK_BOT_TOKEN exported in the developer's shell would
    otherwise turn the stand-in tests to real Slack (and subprocesses inherit the environment too)."""
    for name in list(os.environ):
        if name.startswith(OWN_SETTINGS) and not name.startswith(TEST_SETTINGS):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def _migrated_template(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Migrate once per session: a SQLite template file, or the PostgreSQL test database itself."""
    if POSTGRES_URL:
        database = Database(POSTGRES_URL)
        with database.engine.begin() as connection:
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
        migrate.upgrade(database)
        database.dispose()
        return POSTGRES_URL
    path = tmp_path_factory.mktemp("template") / "incibot.db"
    database = Database(f"sqlite:///{path}")
    migrate.upgrade(database)
    database.dispose()
    return str(path)


@pytest.fixture
def database_url(_migrated_template: str, tmp_path: Path) -> str:
    if POSTGRES_URL:
        database = Database(POSTGRES_URL)
        tables = ", ".join(table.name for table in Base.metadata.sorted_tables)
        with database.engine.begin() as connection:
            connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        database.dispose()
        return POSTGRES_URL
    path = tmp_path / "incibot.db"
    shutil.copy(_migrated_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        state_dir=tmp_path / "var",
        database_url=database_url,
        ingest_tokens=((None, SecretStr(TOKEN)), ("pagerduty", SecretStr(PD_ROUTING_KEY))),
        db_lock_timeout=1.0,
        knowledge=False,  # tests of search turn it on with the session's embedder (tests/knowledge_support.py)
        # Lifecycle tests pin the source's grouping, so that which incident an alert lands in is theirs to choose;
        # tests of correlation turn the learned correlator on with the session's embedder.
        correlation="source",
        classification=False,  # the classifier embeds too; tests of classification turn it on
        nightly_training=None,  # a test run across 03:00 UTC must not train models
    )


@pytest.fixture(scope="session")
def shared_embedder() -> Embedder:
    """The real all-MiniLM-L6-v2, loaded once per test session (a few seconds)."""
    return load_embedder()


@pytest.fixture
def knowledge_settings(settings: Settings, tmp_path: Path) -> Settings:
    """``settings`` with search on (runbooks and similar incidents), the sample runbooks and its own index dir."""
    return settings.model_copy(update={"knowledge": True, "index_dir": tmp_path / "index"})


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def runtime(settings: Settings, clock: FakeClock) -> Iterator[Runtime]:
    """A runtime that is built but not started: tests drive the worker with ``run_once``."""
    built = Runtime.build(settings, clock=clock)
    yield built
    built.database.dispose()


@pytest.fixture
def database(runtime: Runtime) -> Database:
    return runtime.database


@pytest.fixture
def stored_service(settings: Settings, clock: FakeClock) -> Iterator[tuple[Runtime, httpx.Client]]:
    """A service on loopback that stores deliveries and applies none (tests apply them with the worker, or read the
    queue), with a client for it."""
    runtime = Runtime.build(settings.model_copy(update={"process_deliveries": False}), clock=clock)
    with serve_in_thread(runtime.asgi_app()) as url, httpx.Client(base_url=url, timeout=10) as http:
        yield runtime, http
    runtime.database.dispose()


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
