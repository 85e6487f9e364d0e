"""The worker and the Slack outbox never read a whole table: their cost per alert must not grow with history.

The queries they run for a few incidents (firing, joining, resolving, refiring, posting to the Slack stand-in) are
recorded and explained on the same SQLite database. A table read without an index (``SCAN <table>``) would be read
row by row on every alert: an outbox that keeps a year of sent Slack writes made the storm's drain 2.5x slower
(``bench/drain.py --history``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, cast

from sqlalchemy import event, text
from sqlalchemy.engine import Engine

from bot.db.database import Database
from bot.knowledge.service import KnowledgeService
from bot.remediation.models import ActionRequest
from bot.remediation.runner import _automatic_reruns
from bot.runtime import utc_now
from bot.settings import Settings
from bot.slack.suggester import Suggester
from knowledge.embeddings import Embedder
from tests.slack_support import running_bot
from tests.support import FakeClock, am_alert, am_group

_READS = ("SELECT", "UPDATE", "DELETE")
_NOT_TABLES = ("SCAN anon_", "SCAN CONSTANT ROW", "SCAN (subquery")


@contextmanager
def recorded(engine: Engine) -> Iterator[dict[str, Any]]:
    """Every distinct SELECT/UPDATE/DELETE ``engine`` runs meanwhile, with the parameters of its first run."""
    statements: dict[str, Any] = {}

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, many: bool) -> None:
        if statement.lstrip().upper().startswith(_READS):
            statements.setdefault(statement, parameters[0] if many else parameters)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


def table_scans(engine: Engine, statements: dict[str, Any]) -> list[tuple[str, str]]:
    """(statement, plan step) of each full read of a table."""
    found = []
    with engine.connect() as connection:
        for statement, parameters in statements.items():
            plan = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters).all()
            steps = [step for *_, step in plan]
            found += [(statement, s) for s in steps if s.startswith("SCAN ") and not s.startswith(_NOT_TABLES)]
    return found


def _fire(bot: Any, clock: FakeClock, names: Sequence[str], *, status: str = "firing") -> None:
    alerts = [
        am_alert(name, status=status, starts_at=clock.now, pod=f"{name.lower()}-0", node="worker-3", service="shop")
        for name in names
    ]
    bot.send(am_group(alerts, group_key='{}:{alertname="shop"}'))


def _apply(bot: Any) -> None:
    """The worker alone: what it writes waits in the outbox (as it does while Slack's rate limit holds posts)."""
    bot.runtime.incidents.prepare(bot.runtime.database)
    while bot.runtime.worker.run_once():
        pass


def test_the_worker_and_the_outbox_read_no_whole_table(settings: Settings, shared_embedder: Embedder) -> None:
    clock = FakeClock()
    settings = settings.model_copy(update={"correlation": "learned"})
    assert settings.effective_database_url.startswith("sqlite")
    with running_bot(settings, shared_embedder, clock=clock) as bot:
        engine = bot.runtime.database.engine
        with recorded(engine) as statements:
            _fire(bot, clock, ["PostgresDown"])
            _apply(bot)
            clock.advance(seconds=30)
            _fire(bot, clock, ["PostgresDown", "CheckoutErrors", "CartLatencyHigh"])  # joins before it is posted
            _apply(bot)
            bot.drain()
            clock.advance(seconds=60)
            _fire(bot, clock, ["CheckoutErrors"], status="resolved")
            bot.drain()
            clock.advance(seconds=60)
            _fire(bot, clock, ["CheckoutErrors"])  # refires: a status reply reads the earlier ones
            bot.drain()
        with engine.connect() as connection:
            sent = connection.scalar(text("SELECT count(*) FROM slack_outbox WHERE status = 'done'"))
        assert sent and sent >= 3  # the post, its update, thread replies: the outbox was read and written
        assert len(statements) > 20
        assert table_scans(engine, statements) == []


def test_the_suggesters_poll_and_a_runs_rerun_count_read_no_whole_table(settings: Settings) -> None:
    """The suggester polls ten times a second for posts queued in the last hour; a remediation run counts its
    request's automatic re-runs in the audit log. Both tables keep everything."""
    database = Database(settings.effective_database_url)
    assert settings.effective_database_url.startswith("sqlite")
    with recorded(database.engine) as statements:
        assert Suggester(database, cast(KnowledgeService, None), utc_now).run_once() == 0  # nothing waits
        with database.read() as session:
            assert _automatic_reruns(session, ActionRequest(id=1, attempt=1)) == 0
    assert len(statements) == 3  # the suggester's queue of first posts, the posts that went without, the count
    assert table_scans(database.engine, statements) == []
    database.dispose()
