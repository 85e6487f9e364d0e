"""Remediation requests through the service and runner: the approval policy at click time and at run time, the
state machine, exactly-once under replays and races, dry-run, and the audit log (real SQLite file or PostgreSQL,
real HTTP target on loopback)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from bot.cli.main import main
from bot.db.database import Database
from bot.remediation.catalogue import CatalogueError
from bot.remediation.models import ActionRequest, AuditEntry, RequestState
from bot.remediation.requests import RequestView
from bot.remediation.runner import MAX_TARGET_CALLS, TRIES_PER_RUN
from bot.remediation.service import RemediationError
from bot.remediation.wiring import build_remediation
from bot.settings import Settings
from tests.remediation_support import (
    ALICE,
    BOB,
    CAROL,
    MALLORY,
    REQUESTER,
    Flow,
    Target,
    add_incident,
    build_flow,
    recording_target,
    write_catalogue,
)
from tests.support import T0, FakeClock, wait_for

pytestmark = pytest.mark.db


@pytest.fixture
def target() -> Iterator[Target]:
    with recording_target() as recording:
        yield recording


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url, lock_timeout=5)
    yield database
    database.dispose()


@pytest.fixture
def flow(db: Database, target: Target, tmp_path: Path) -> Flow:
    return build_flow(db, write_catalogue(tmp_path, target.url))


def request_key(db: Database, request_id: int) -> str:
    with db.read() as session:
        request = session.get(ActionRequest, request_id)
        assert request is not None
        return request.idempotency_key


def events(db: Database, request_id: int) -> list[str]:
    with db.read() as session:
        return [e.event for e in session.query(AuditEntry).filter_by(request_id=request_id).order_by(AuditEntry.id)]


def test_self_approval_and_non_members_are_refused_and_a_group_member_approves(
    flow: Flow, db: Database, target: Target
) -> None:
    request = flow.service.request(add_incident(db), "restart", {"service": "checkout"}, REQUESTER)
    assert request.state == RequestState.REQUESTED and request.target == "checkout"
    assert dict(request.params) == {"service": "checkout", "replicas": 2}
    with pytest.raises(RemediationError, match="You requested this action"):
        flow.service.approve(request.id, REQUESTER, request.fingerprint)
    with pytest.raises(RemediationError, match="approver group"):
        flow.service.approve(request.id, MALLORY, request.fingerprint)
    assert flow.runner.run_pending() == 0 and target.count() == 0
    approved = flow.service.approve(request.id, CAROL, request.fingerprint)  # a member of the user group
    assert approved.state == RequestState.APPROVED and approved.approved_by == (CAROL,)
    assert flow.runner.run_pending() == 1
    assert target.count() == 1 and target.calls[0].json() == {"service": "checkout", "replicas": 2}
    assert flow.service.get(request.id).state == RequestState.SUCCEEDED
    assert events(db, request.id) == ["requested", "refused", "refused", "approved", "running", "succeeded"]
    assert [n.event for n in flow.notices] == ["succeeded"]


def test_two_approvals_need_two_distinct_approvers(flow: Flow, db: Database, target: Target) -> None:
    request = flow.service.request(add_incident(db), "failover", {"service": "db"}, REQUESTER)
    first = flow.service.approve(request.id, ALICE, request.fingerprint)
    assert first.state == RequestState.REQUESTED and first.approved_by == (ALICE,)
    with pytest.raises(RemediationError, match="already approved"):
        flow.service.approve(request.id, ALICE, request.fingerprint)  # a replayed click counts once
    assert flow.runner.run_pending() == 0 and target.count() == 0
    assert flow.service.approve(request.id, BOB, request.fingerprint).state == RequestState.APPROVED
    assert flow.runner.run_pending() == 1 and target.count() == 1


def test_an_approval_after_expiry_is_refused_and_nothing_runs(flow: Flow, db: Database, target: Target) -> None:
    request = flow.service.request(add_incident(db), "restart", {"service": "checkout"}, REQUESTER)
    flow.clock.advance(minutes=16)
    with pytest.raises(RemediationError, match="expired"):
        flow.service.approve(request.id, ALICE, request.fingerprint)
    assert flow.service.get(request.id).state == RequestState.EXPIRED
    assert flow.runner.run_pending() == 0 and target.count() == 0


def test_a_waiting_request_expires_on_its_own(flow: Flow, db: Database) -> None:
    request = flow.service.request(add_incident(db), "restart", {"service": "checkout"}, REQUESTER)
    flow.clock.advance(minutes=15)
    flow.runner.maintain()
    assert flow.service.get(request.id).state == RequestState.EXPIRED
    assert [n.event for n in flow.notices] == ["expired"]


def test_approvals_are_bound_to_the_parameters(flow: Flow, db: Database, target: Target) -> None:
    incident = add_incident(db)
    first = flow.service.request(incident, "restart", {"service": "checkout"}, REQUESTER)
    other = flow.service.request(incident, "restart", {"service": "checkout", "replicas": "3"}, REQUESTER)
    assert other.fingerprint != first.fingerprint
    with pytest.raises(RemediationError, match="parameters changed"):
        flow.service.approve(other.id, ALICE, first.fingerprint)  # a button showing other parameters
    flow.service.approve(first.id, ALICE, first.fingerprint)
    with db.write() as session:  # the parameters change after the approval (here: behind the service's back)
        session.execute(update(ActionRequest).where(ActionRequest.id == first.id).values(params={"service": "x"}))
    assert flow.runner.run_pending() == 0 and target.count() == 0
    stopped = flow.service.get(first.id)
    assert stopped.state == RequestState.CANCELLED and "no longer match" in (stopped.summary or "")


def test_an_approver_removed_from_the_group_before_the_run_is_refused_at_run_time(
    flow: Flow, db: Database, target: Target
) -> None:
    request = flow.service.request(add_incident(db), "restart", {"service": "checkout"}, REQUESTER)
    assert flow.service.approve(request.id, CAROL, request.fingerprint).state == RequestState.APPROVED
    flow.members.discard(CAROL)
    assert flow.runner.run_pending() == 0 and target.count() == 0
    back = flow.service.get(request.id)
    assert back.state == RequestState.REQUESTED  # waits for a valid approval while it may
    assert [n.event for n in flow.notices] == ["refused"] and "no longer in the approver group" in flow.notices[0].text
    flow.service.approve(request.id, ALICE, request.fingerprint)
    assert flow.runner.run_pending() == 1 and target.count() == 1


def test_no_approval_needed_runs_and_failures_are_not_retried(flow: Flow, db: Database, target: Target) -> None:
    target.status = 503
    request = flow.service.request(add_incident(db), "flush-cache", {"service": "checkout"}, REQUESTER)
    assert request.state == RequestState.APPROVED
    assert flow.runner.run_pending() == 1
    failed = flow.service.get(request.id)
    assert failed.state == RequestState.FAILED and "503" in (failed.summary or "")
    assert target.count() == 1  # not idempotent: never retried
    assert [n.event for n in flow.notices] == ["failed"]
    rerun = flow.service.rerun(request.id, ALICE)  # a person may run it again (no approval needed here)
    assert rerun.state == RequestState.APPROVED and rerun.attempt == 2 and rerun.requester == ALICE
    target.status = 200
    assert flow.runner.run_pending() == 1 and target.count() == 2
    assert target.calls[0].key == target.calls[1].key  # the same idempotency key


def test_a_timeout_is_reported_as_failed_once(flow: Flow, db: Database, target: Target) -> None:
    target.delay = 1.3  # the action's timeout is 1 s
    request = flow.service.request(add_incident(db), "flush-cache", {"service": "checkout"}, REQUESTER)
    flow.runner.run_pending()
    assert flow.service.get(request.id).state == RequestState.FAILED and target.count() == 1


def test_an_idempotent_5xx_is_retried_by_the_executor_only(db: Database, target: Target, tmp_path: Path) -> None:
    flow = build_flow(db, write_catalogue(tmp_path, target.url, idempotent=True))
    target.status = 503
    request = flow.service.request(add_incident(db), "flush-cache", {"service": "checkout"}, REQUESTER)
    assert flow.runner.run_pending() == 1 and flow.runner.run_pending() == 0  # failed is final: no re-run
    assert flow.service.get(request.id).state == RequestState.FAILED
    assert target.count() == TRIES_PER_RUN == 2 and {call.key for call in target.calls} == {request_key(db, request.id)}


def test_lost_runs_of_an_idempotent_action_call_the_target_at_most_max_target_calls(
    db: Database, target: Target, tmp_path: Path
) -> None:
    flow = build_flow(db, write_catalogue(tmp_path, target.url, idempotent=True))
    target.status = 503
    request = flow.service.request(add_incident(db), "flush-cache", {"service": "checkout"}, REQUESTER)
    for tries in (2, 1):  # each run makes its calls, then its process dies before it records anything
        claim = flow.runner.claim_next()
        assert claim is not None and claim.tries == tries
        flow.service.executor.execute(claim.run, claim.key, claim.tries)
        flow.clock.advance(minutes=1)  # past the run's lease
        flow.runner.maintain()
    assert target.count() == MAX_TARGET_CALLS == 3 and len({call.key for call in target.calls}) == 1
    assert flow.service.get(request.id).state == RequestState.UNKNOWN  # no calls left: a person decides
    assert [n.event for n in flow.notices] == ["unknown", "unknown"] and "re-run it" in flow.notices[-1].text
    assert flow.runner.run_pending() == 0 and target.count() == 3


def test_the_requester_or_an_approver_cancels_and_nothing_runs(flow: Flow, db: Database, target: Target) -> None:
    incident = add_incident(db)
    request = flow.service.request(incident, "restart", {"service": "checkout"}, REQUESTER)
    with pytest.raises(RemediationError, match="Only the requester or the action's approver group can cancel it"):
        flow.service.cancel(request.id, MALLORY)
    assert flow.service.cancel(request.id, REQUESTER).state == RequestState.CANCELLED
    with pytest.raises(RemediationError, match="is cancelled: nothing more to do"):
        flow.service.approve(request.id, ALICE, request.fingerprint)
    other = flow.service.request(incident, "restart", {"service": "cart"}, REQUESTER)
    flow.service.approve(other.id, ALICE, other.fingerprint)  # approved, not yet running: an approver may cancel
    assert flow.service.cancel(other.id, BOB).state == RequestState.CANCELLED
    assert flow.runner.run_pending() == 0 and target.count() == 0
    assert events(db, request.id) == ["requested", "cancelled"]


def test_a_request_and_its_announcement_commit_together(flow: Flow, db: Database) -> None:
    incident = add_incident(db)

    def announce_then_fail(session: Session, view: RequestView) -> None:
        session.add(AuditEntry(at=T0, incident_id=incident, actor="thread", event="said"))  # e.g. the thread post
        raise RuntimeError("the process dies before the commit")

    with pytest.raises(RuntimeError):
        flow.service.request(incident, "restart", {"service": "checkout"}, REQUESTER, announce_then_fail)
    with db.read() as session:  # neither the request nor what announced it
        assert session.query(ActionRequest).count() == 0 and session.query(AuditEntry).count() == 0
    said: list[RequestView] = []
    request = flow.service.request(
        incident, "restart", {"service": "checkout"}, REQUESTER, lambda _s, v: said.append(v)
    )
    assert said == [request]
    assert flow.service.approve(request.id, ALICE, request.fingerprint, lambda _s, v: said.append(v)).state == (
        RequestState.APPROVED
    )
    assert [v.state for v in said] == [RequestState.REQUESTED, RequestState.APPROVED]


def test_replayed_and_concurrent_approvals_and_runners_run_it_once(flow: Flow, db: Database, target: Target) -> None:
    request = flow.service.request(add_incident(db), "restart", {"service": "checkout"}, REQUESTER)
    results: list[str] = []
    gate = threading.Barrier(6)

    def click(approver: str) -> None:
        gate.wait()
        try:
            results.append(str(flow.service.approve(request.id, approver, request.fingerprint).state))
        except RemediationError as exc:
            results.append(str(exc))

    def run() -> None:
        gate.wait()
        flow.runner.run_pending()

    threads = [threading.Thread(target=click, args=(who,)) for who in (ALICE, ALICE, BOB, CAROL)]
    threads += [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    flow.runner.run_pending()
    assert results.count("approved") == 1, results
    assert target.count() == 1
    assert flow.service.get(request.id).state == RequestState.SUCCEEDED
    assert events(db, request.id).count("running") == 1


def test_the_threaded_runner_runs_an_approval_without_blocking_the_caller(flow: Flow, db: Database) -> None:
    flow.runner.start()
    try:
        request = flow.service.request(add_incident(db), "flush-cache", {"service": "checkout"}, REQUESTER)
        wait_for(lambda: flow.notices)
    finally:
        flow.runner.stop()
    assert [n.event for n in flow.notices] == ["succeeded"] and flow.notices[0].request.id == request.id


def test_one_run_per_action_and_target_at_a_time(flow: Flow, db: Database, target: Target) -> None:
    target.delay = 0.3
    incident = add_incident(db)
    for replicas in ("2", "3"):  # two requests, one target
        flow.service.request(incident, "flush-cache", {"service": "checkout", "replicas": replicas}, REQUESTER)
    flow.runner.start()  # two workers
    try:
        wait_for(lambda: len(flow.notices) == 2)
    finally:
        flow.runner.stop()
    assert target.count() == 2 and target.most_active == 1


def test_dry_run_records_and_shows_but_never_calls_the_executor(db: Database, target: Target, tmp_path: Path) -> None:
    flow = build_flow(db, write_catalogue(tmp_path, target.url), mode="dry-run")
    incident = add_incident(db)
    preview = flow.service.preview(incident, "restart", {"service": "checkout"})
    assert target.url in preview.text
    request = flow.service.request(incident, "restart", {"service": "checkout"}, REQUESTER)
    flow.service.approve(request.id, ALICE, request.fingerprint)
    assert flow.runner.run_pending() == 0
    done = flow.service.get(request.id)
    assert done.state == RequestState.DRY_RUN and target.url in (done.summary or "")
    assert target.count() == 0
    assert [n.event for n in flow.notices] == ["dry-run"]


def test_off_hides_actions_and_refuses_requests(db: Database, target: Target, tmp_path: Path) -> None:
    flow = build_flow(db, write_catalogue(tmp_path, target.url), mode="off")
    incident = add_incident(db)
    assert flow.service.actions_for(incident) == []
    with pytest.raises(RemediationError, match="off"):
        flow.service.request(incident, "restart", {"service": "checkout"}, REQUESTER)


def test_bad_parameters_are_refused_with_the_field(flow: Flow, db: Database) -> None:
    with pytest.raises(RemediationError, match="service"):
        flow.service.request(add_incident(db), "restart", {"service": "$(id)"}, REQUESTER)
    with pytest.raises(RemediationError, match="no action named"):
        flow.service.request(add_incident(db), "rm-rf", {}, REQUESTER)


def test_the_database_refuses_to_change_or_delete_audit_entries(flow: Flow, db: Database) -> None:
    request = flow.service.request(add_incident(db), "restart", {"service": "checkout"}, REQUESTER)
    for statement in (
        update(AuditEntry).where(AuditEntry.request_id == request.id).values(actor="someone-else"),
        delete(AuditEntry).where(AuditEntry.request_id == request.id),
    ):
        with pytest.raises(DBAPIError, match="append-only"), db.write() as session:
            session.execute(statement)
    with pytest.raises(DBAPIError, match="append-only"), db.write() as session:
        session.execute(text("DELETE FROM audit_log"))
    assert events(db, request.id) == ["requested"]


def test_incibot_audit_prints_an_incidents_entries(
    flow: Flow, db: Database, database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    incident = add_incident(db)
    other = add_incident(db)
    request = flow.service.request(incident, "restart", {"service": "checkout"}, REQUESTER)
    flow.service.deny(request.id, ALICE, "not during the sale")
    flow.service.request(other, "flush-cache", {"service": "web"}, REQUESTER)
    monkeypatch.setenv("INCIBOT_DATABASE_URL", database_url)
    assert main(["audit", "--incident", str(incident), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["event"], r["actor"]) for r in rows] == [("requested", REQUESTER), ("denied", ALICE)]
    assert rows[1]["detail"] == "not during the sale" and rows[0]["param_hash"] == request.fingerprint
    assert main(["audit"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and "denied" in lines[1] and "restart → checkout" in lines[1]


def test_settings_default_to_dry_run_and_a_bad_actions_file_stops_start_up(
    settings: Settings, tmp_path: Path, db: Database
) -> None:
    assert Settings().remediation == "dry-run"
    bad = tmp_path / "bad.yml"
    bad.write_text("actions:\n  - name: restart\n    description: x\n    risk: extreme\n")
    with pytest.raises(CatalogueError, match=rf"{bad}:\d+:"):
        build_remediation(settings.model_copy(update={"actions_file": bad}), db, FakeClock())
    built = build_remediation(settings, db, FakeClock())
    assert built.service.mode == "dry-run" and built.service.catalogue.actions == ()
