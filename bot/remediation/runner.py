"""Runs approved requests in a bounded pool of its own, once each, and notices runs that died with their process.

A run is claimed by compare-and-set (``approved`` → ``running``) with a lease of the action's timeout plus a
grace period; the policy is checked again at the claim (approvers still in the group, approvals not expired,
parameters unchanged). One run per (action, target) at a time, across processes. A request still ``running`` after
its lease ended lost its process: it becomes ``unknown`` and a person is asked.

Retries, one rule: an approval round (a request as approved, or as re-approved after a person re-ran it) calls its
target at most ``MAX_TARGET_CALLS`` times if the action is idempotent, always with the same idempotency key, and
once otherwise. Within that budget a run may call ``TRIES_PER_RUN`` times (the executor repeats a call that failed
with a connection error, a timeout or a 5xx), and a run that ended ``unknown`` (its process lost, or the executor
broke) is re-run by itself while calls are left, counting each earlier run as having used all of its tries (a lost
run's calls cannot be counted). A ``failed`` run is final: only a person re-runs it, as a new round.

It stays whole: claiming, running, the retry budget and the lease sweep share one lease and one budget rule;
split, each half would have to re-derive the other's state.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.remediation import audit
from bot.remediation.approvals import counted
from bot.remediation.catalogue import ActionSpec
from bot.remediation.executors import ExecutionResult, redact
from bot.remediation.models import ActionRequest, AuditEntry, RequestState
from bot.remediation.parameters import ParameterError, ResolvedRun, resolve_run
from bot.remediation.requests import RequestView, approvals_of, transition
from bot.remediation.service import RemediationService
from bot.threads import NamedThread

log = logging.getLogger(__name__)

LEASE_GRACE = timedelta(seconds=30)
MAX_TARGET_CALLS = 3  # an idempotent action's calls to its target per approval round, retries included
TRIES_PER_RUN = 2  # of which one run may make (the first try and one retry)
AUTOMATIC = "automatic"
RETRYING = " Retrying with the same idempotency key (the action is idempotent)."
ASK_A_PERSON = " Check the target, then re-run it or leave it."


@dataclass(frozen=True)
class Notice:
    """What the incident's thread should be told. ``event``: dry-run, succeeded, failed, unknown (a person must
    look), refused (the policy no longer holds at run time), expired, rerun (automatic), late (a result arrived
    after the run had been given up as unknown)."""

    event: str
    request: RequestView
    text: str


Notify = Callable[[Notice], None]


@dataclass(frozen=True)
class _Claim:
    request_id: int
    run: ResolvedRun
    key: str
    token: str
    action: ActionSpec
    tries: int  # how many times this run may call the target


class Runner:
    """Runs the service's approved requests: ``start`` a poller thread and a pool of ``workers``; or, in tests and
    one-shot tools, call ``run_pending`` to do the same inline."""

    def __init__(self, service: RemediationService, notify: Notify, *, workers: int = 4, poll: float = 1.0) -> None:
        self.service = service
        self.notify = notify
        self.workers = workers
        self.poll = poll
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._slots = threading.BoundedSemaphore(workers)
        self._pool: ThreadPoolExecutor | None = None
        self._thread: threading.Thread | None = None

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="remediation")
        self._thread = NamedThread(target=self._loop, name="remediation-runner", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=False)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.maintain()
                while self._slots.acquire(blocking=False):
                    claim = self.claim_next()
                    if claim is None:
                        self._slots.release()
                        break
                    assert self._pool is not None
                    self._pool.submit(self._execute_and_release, claim)
            except Exception:
                log.exception("remediation runner: pass failed; trying again")
            self._wake.wait(self.poll)
            self._wake.clear()

    def _execute_and_release(self, claim: _Claim) -> None:
        try:
            self.execute(claim)
        except Exception:
            log.exception("remediation runner: recording the result of request %s failed", claim.request_id)
        finally:
            self._slots.release()
            self._wake.set()

    def run_pending(self) -> int:
        """Maintenance, then claim and run approved requests one after the other, here; how many ran."""
        self.maintain()
        ran = 0
        while (claim := self.claim_next()) is not None:
            self.execute(claim)
            ran += 1
        return ran

    # Steps -------------------------------------------------------------------------------------------------

    def maintain(self) -> None:
        """Expire requests not approved in time; give up runs whose lease ended (``unknown``)."""
        for expired in self.service.expire_overdue():
            self._tell("expired", expired, "Not approved in time: expired, nothing ran.")
        now = self.service.clock()
        with self.service.database.read() as session:
            stale = list(
                session.scalars(
                    select(ActionRequest.id).where(
                        ActionRequest.state == str(RequestState.RUNNING), ActionRequest.lease_expires_at <= now
                    )
                )
            )
        for request_id in stale:
            self._give_up(request_id)

    def claim_next(self) -> _Claim | None:
        """Claim the oldest approved request whose (action, target) is not running anywhere, after checking the
        policy again; in dry-run mode record what would be done instead. None when there is nothing to claim."""
        with self.service.database.read() as session:
            candidates = list(
                session.execute(
                    select(ActionRequest.id, ActionRequest.action, ActionRequest.target)
                    .where(ActionRequest.state == str(RequestState.APPROVED))
                    .order_by(ActionRequest.id)
                )
            )
        for request_id, action, target in candidates:
            claim = self._claim(request_id, f"run:{action}:{target}")
            if claim is not None:
                return claim
        return None

    def execute(self, claim: _Claim) -> None:
        """Call the executor once and record the outcome (only while this claim still holds the request)."""
        try:
            result = self.service.executor.execute(claim.run, claim.key, claim.tries)
        except Exception as exc:  # an executor bug: we cannot tell whether the target was reached
            log.exception("remediation: executor raised for request %s", claim.request_id)
            result = ExecutionResult("unknown", f"the executor failed ({type(exc).__name__}); see the bot's log")
        response = redact(dict(result.response))
        now = self.service.clock()
        rerun = False
        with self.service.transaction(f"request-id:{claim.request_id}") as session:
            request = session.get(ActionRequest, claim.request_id)
            assert request is not None
            outcome = RequestState(result.outcome)
            recorded = transition(
                session,
                request,
                outcome,
                now,
                allowed_from=(RequestState.RUNNING,),
                held_by=claim.token,
                finished_at=now,
                summary=result.summary,
                result=response,
            )
            if not recorded:
                audit.record(
                    session,
                    request,
                    "late",
                    audit.SYSTEM_ACTOR,
                    now,
                    detail=result.summary,
                    outcome=result.outcome,
                    response=response,
                )
                view = self.service.snapshot(session, request)
            else:
                audit.record(
                    session,
                    request,
                    result.outcome,
                    audit.SYSTEM_ACTOR,
                    now,
                    detail=result.summary,
                    outcome=result.outcome,
                    response=response,
                )
                rerun = outcome == RequestState.UNKNOWN and self._rerun_automatically(
                    session, request, claim.action, now
                )
                view = self.service.snapshot(session, request)
        if not recorded:
            self._tell("late", view, f"A result arrived after the run was given up: {result.outcome}: {result.summary}")
            return
        text = result.summary
        if rerun:
            text += RETRYING
        elif outcome == RequestState.UNKNOWN:
            text += ASK_A_PERSON
        self._tell(str(outcome), view, text)

    # Internals ---------------------------------------------------------------------------------------------

    def _claim(self, request_id: int, run_key: str) -> _Claim | None:
        now = self.service.clock()
        notice: tuple[str, RequestView, str] | None = None
        claim: _Claim | None = None
        with self.service.transaction(run_key) as session:
            request = session.get(ActionRequest, request_id, populate_existing=True)
            if request is None or request.state != RequestState.APPROVED or self._target_busy(session, request):
                return None
            refusal, spec, run = self._recheck(session, request, now)
            if refusal is not None:
                if run is None:  # the action or its parameters no longer pass: it cannot run as approved
                    back = RequestState.CANCELLED
                else:  # approvals no longer count: it waits for new ones while it may
                    back = RequestState.REQUESTED if request.expires_at > now else RequestState.EXPIRED
                transition(session, request, back, now, allowed_from=(RequestState.APPROVED,), summary=refusal)
                audit.record(session, request, "refused", audit.SYSTEM_ACTOR, now, detail=refusal)
                notice = ("refused", self.service.snapshot(session, request), f"Not run: {refusal}")
            elif self.service.mode != "on":
                assert run is not None
                what = self.service.executor.preview(run)
                transition(
                    session, request, RequestState.DRY_RUN, now, allowed_from=(RequestState.APPROVED,), summary=what
                )
                audit.record(session, request, "dry-run", audit.SYSTEM_ACTOR, now, detail=what)
                notice = ("dry-run", self.service.snapshot(session, request), f"Dry run (nothing was executed): {what}")
            else:
                assert run is not None and spec is not None
                token = f"{self.owner}:{secrets.token_hex(4)}"
                tries = tries_for(_automatic_reruns(session, request)) if spec.idempotent else 1
                moved = transition(
                    session,
                    request,
                    RequestState.RUNNING,
                    now,
                    allowed_from=(RequestState.APPROVED,),
                    lease_owner=token,
                    lease_expires_at=now + spec.timeout + LEASE_GRACE,
                    started_at=now,
                )
                if not moved:
                    return None
                audit.record(
                    session,
                    request,
                    "running",
                    audit.SYSTEM_ACTOR,
                    now,
                    detail=f"idempotency key {request.idempotency_key}, up to {tries} call(s)",
                )
                claim = _Claim(request.id, run, request.idempotency_key, token, spec, tries)
        if notice is not None:
            self._tell(*notice)
        return claim

    def _recheck(
        self, session: Session, request: ActionRequest, now: datetime
    ) -> tuple[str | None, ActionSpec | None, ResolvedRun | None]:
        """The policy at run time: the action still exists, its parameters still pass and still hash to the
        approved fingerprint, and enough approvals still count (approvers in the group now; not expired unless
        this round already started once, i.e. an automatic re-run)."""
        spec = self.service.catalogue.get(request.action)
        if spec is None:
            return f"the action {request.action!r} is no longer in the catalogue.", None, None
        try:
            run = resolve_run(spec, {k: str(v) for k, v in request.params.items()}, {})
        except ParameterError as exc:
            return f"its parameters no longer pass: {exc.field}: {exc.message}", spec, None
        if run.fingerprint() != request.fingerprint:
            return "its parameters no longer match what was approved.", spec, None
        valid, voided = counted(
            request,
            approvals_of(session, request),
            spec.approvers,
            spec.expiry,
            now,
            self.service.resolve_group,
            check_expiry=request.started_at is None,
        )
        if len(valid) < spec.approvals_required:
            why = "; ".join(voided) or "not enough approvals"
            return f"{len(valid)} of {spec.approvals_required} approvals still count ({why}).", spec, run
        return None, spec, run

    def _target_busy(self, session: Session, request: ActionRequest) -> bool:
        running = session.scalar(
            select(func.count()).where(
                ActionRequest.state == str(RequestState.RUNNING),
                ActionRequest.action == request.action,
                ActionRequest.target == request.target,
            )
        )
        return bool(running)

    def _give_up(self, request_id: int) -> None:
        now = self.service.clock()
        with self.service.transaction(f"request-id:{request_id}") as session:
            request = session.get(ActionRequest, request_id, populate_existing=True)
            if request is None or request.state != RequestState.RUNNING or request.lease_expires_at is None:
                return
            if request.lease_expires_at > now:
                return
            why = (
                f"the process running it stopped (no result by {request.lease_expires_at:%H:%M:%S} UTC): "
                "it may or may not have taken effect."
            )
            if not transition(
                session,
                request,
                RequestState.UNKNOWN,
                now,
                allowed_from=(RequestState.RUNNING,),
                held_by=request.lease_owner,
                summary=why,
                finished_at=now,
            ):
                return
            audit.record(session, request, "unknown", audit.SYSTEM_ACTOR, now, detail=why, outcome="unknown")
            spec = self.service.catalogue.get(request.action)
            rerun = spec is not None and self._rerun_automatically(session, request, spec, now)
            view = self.service.snapshot(session, request)
        self._tell("unknown", view, why + (RETRYING if rerun else ASK_A_PERSON))

    def _rerun_automatically(self, session: Session, request: ActionRequest, spec: ActionSpec, now: datetime) -> bool:
        """An idempotent action whose run ended unknown goes back to ``approved`` (same key) while its round has
        calls left (the module's rule). A failed run is final: the executor already retried what it may."""
        if not spec.idempotent or tries_for(_automatic_reruns(session, request) + 1) == 0:
            return False
        moved = transition(
            session,
            request,
            RequestState.APPROVED,
            now,
            allowed_from=(RequestState.UNKNOWN,),
            lease_owner=None,
        )
        if moved:
            audit.record(
                session, request, "rerun", audit.SYSTEM_ACTOR, now, detail=f"{AUTOMATIC}, round {request.attempt}"
            )
        return moved

    def _tell(self, event: str, request: RequestView, text: str) -> None:
        try:
            self.notify(Notice(event, request, text))
        except Exception:
            log.exception("remediation: the notice hook failed for request %s", request.id)


def tries_for(run: int) -> int:
    """The calls the ``run``-th run of an idempotent action's round may make (0: the first run): what
    ``MAX_TARGET_CALLS`` leaves after each earlier run used all of its tries, at most ``TRIES_PER_RUN``."""
    left = MAX_TARGET_CALLS
    for _ in range(run):
        left -= min(TRIES_PER_RUN, left)
    return min(TRIES_PER_RUN, left)


def _automatic_reruns(session: Session, request: ActionRequest) -> int:
    """How many times the request's current round was re-run by the runner itself."""
    done = session.scalar(
        select(func.count()).where(
            AuditEntry.request_id == request.id,
            AuditEntry.event == "rerun",
            AuditEntry.detail == f"{AUTOMATIC}, round {request.attempt}",
        )
    )
    return int(done or 0)
