"""Remediation across processes: two runners racing on one database run a request once; a runner killed
(SIGKILL) while its action runs leaves the request ``unknown``, the target having been called once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.db.database import Database
from bot.remediation.models import AuditEntry, RequestState
from tests.remediation_support import REQUESTER, Target, add_incident, build_flow, recording_target, write_catalogue
from tests.support import wait_for

pytestmark = pytest.mark.db
ROOT = Path(__file__).resolve().parent.parent

# A runner in its own process (same fake time as the test), started on "go" so that two of them race.
WORKER = """
import sys
from pathlib import Path
from bot.db.database import Database
from tests.remediation_support import build_flow
database = Database(sys.argv[1], lock_timeout=10)
flow = build_flow(database, Path(sys.argv[2]))
print("ready", flush=True)
sys.stdin.readline()
print("ran", flow.runner.run_pending(), flush=True)
"""


@pytest.fixture
def target() -> Iterator[Target]:
    with recording_target() as recording:
        yield recording


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url, lock_timeout=5)
    yield database
    database.dispose()


def start_worker(database_url: str, catalogue: Path) -> subprocess.Popen[str]:
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER, database_url, str(catalogue)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert worker.stdout is not None and worker.stdout.readline().strip() == "ready"
    return worker


def running_events(db: Database, request_id: int) -> int:
    with db.read() as session:
        return session.query(AuditEntry).filter_by(request_id=request_id, event="running").count()


def test_two_processes_racing_run_an_approved_request_once(
    db: Database, database_url: str, target: Target, tmp_path: Path
) -> None:
    catalogue = write_catalogue(tmp_path, target.url)
    flow = build_flow(db, catalogue)
    request = flow.service.request(add_incident(db), "flush-cache", {"service": "checkout"}, REQUESTER)
    assert request.state == RequestState.APPROVED
    workers = [start_worker(database_url, catalogue) for _ in range(2)]
    for worker in workers:
        assert worker.stdin is not None
        worker.stdin.write("go\n")
        worker.stdin.flush()
    outputs = [worker.communicate(timeout=30)[0].strip() for worker in workers]
    assert sorted(outputs) == ["ran 0", "ran 1"]
    assert target.count() == 1
    assert flow.service.get(request.id).state == RequestState.SUCCEEDED
    assert running_events(db, request.id) == 1


@pytest.mark.parametrize("idempotent", [False, True])
def test_a_runner_killed_while_running_leaves_the_request_unknown(
    db: Database, database_url: str, target: Target, tmp_path: Path, idempotent: bool
) -> None:
    catalogue = write_catalogue(tmp_path, target.url, idempotent=idempotent)
    flow = build_flow(db, catalogue)
    request = flow.service.request(add_incident(db), "flush-cache", {"service": "checkout"}, REQUESTER)
    target.delay = 3.0  # the target holds its answer: the worker is inside the call when it dies
    worker = start_worker(database_url, catalogue)
    assert worker.stdin is not None
    worker.stdin.write("go\n")
    worker.stdin.flush()
    wait_for(lambda: target.count() == 1)
    worker.send_signal(signal.SIGKILL)
    worker.communicate(timeout=10)  # reaps it and closes its pipes
    flow.runner.maintain()
    assert flow.service.get(request.id).state == RequestState.RUNNING  # its lease has not ended yet
    flow.clock.advance(minutes=1)
    flow.runner.maintain()
    assert [n.event for n in flow.notices] == ["unknown"]
    assert target.count() == 1
    if not idempotent:
        assert flow.service.get(request.id).state == RequestState.UNKNOWN
        assert "re-run it" in flow.notices[0].text
        assert flow.runner.run_pending() == 0 and target.count() == 1  # only a person re-runs it
        return
    assert flow.service.get(request.id).state == RequestState.APPROVED  # re-run by itself: same key
    target.delay = 0.0
    assert flow.runner.run_pending() == 1
    assert flow.service.get(request.id).state == RequestState.SUCCEEDED
    assert target.count() == 2 and target.calls[0].key == target.calls[1].key
