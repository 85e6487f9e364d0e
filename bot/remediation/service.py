"""The remediation service: request an action on an incident, approve, deny, cancel or re-run it.

Every state change is a compare-and-set in one transaction with its audit entry, so double clicks, replayed
clicks and two processes change a request once. A caller's ``announce`` runs in that transaction too (the Slack
side queues its thread messages there), so a committed change is never left unsaid and nothing is said of a
change that rolled back. Every refusal raises :class:`RemediationError` whose message is shown to the person as
is. Runs happen in :mod:`bot.remediation.runner`, never here.

It stays whole: the operations are the state machine's transitions, and each needs the same transaction, policy
check and audit entry; the policy itself is :mod:`bot.remediation.approvals`, the rows :mod:`bot.remediation.requests`.
"""

from __future__ import annotations

import json
import secrets
import zlib
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from bot.db.database import Database
from bot.incidents.models import Incident, IncidentAlert
from bot.ingest.models import Alert
from bot.remediation import audit
from bot.remediation.approvals import GroupResolver, PolicyError, check_approver, counted, is_approver
from bot.remediation.catalogue import ActionSpec, Catalogue
from bot.remediation.executors import Executor
from bot.remediation.models import ActionRequest, Approval, RequestState
from bot.remediation.parameters import ParameterError, ResolvedRun, resolve_run
from bot.remediation.requests import RequestView, approvals_of, load_for_update, transition, view

Mode = Literal["off", "dry-run", "on"]
Clock = Callable[[], datetime]
Announce = Callable[[Session, "RequestView"], None]  # told the request as a change left it, in its transaction
OPEN_STATES = (RequestState.REQUESTED, RequestState.APPROVED, RequestState.RUNNING, RequestState.UNKNOWN)
RERUNNABLE = (RequestState.UNKNOWN, RequestState.FAILED)


class RemediationError(Exception):
    """A refusal or failure; ``str(error)`` is the message for the person who asked."""


@dataclass(frozen=True)
class Preview:
    """What a request would run: the checked parameters and target, their fingerprint, the executor's words."""

    action: ActionSpec
    run: ResolvedRun
    fingerprint: str
    text: str


class RemediationService:
    """Requests and approvals of catalogue actions. ``executor`` previews and runs any catalogue action;
    ``resolve_group`` lists a Slack user group's members; ``on_approved`` is called after a request became
    approved (the runner's wake-up)."""

    def __init__(
        self,
        database: Database,
        *,
        clock: Clock,
        catalogue: Catalogue,
        executor: Executor,
        mode: Mode,
        resolve_group: GroupResolver,
        on_approved: Callable[[], None] = lambda: None,
    ) -> None:
        self.database = database
        self.clock = clock
        self.catalogue = catalogue
        self.executor = executor
        self.mode: Mode = mode
        self.resolve_group = resolve_group
        self.on_approved = on_approved

    @property
    def enabled(self) -> bool:
        return self.mode != "off"

    # Reading ---------------------------------------------------------------------------------------------------

    def actions_for(self, incident_id: int, runbook_actions: Collection[str] = ()) -> list[ActionSpec]:
        """The catalogue's actions that apply to the incident (its alert names, category, services, and the
        ``actions`` its runbooks name); none while remediation is off."""
        if not self.enabled:
            return []
        with self.database.read() as session:
            incident, alerts = self._incident(session, incident_id)
            services = {a.labels["service"] for a in alerts if "service" in a.labels}
            if incident.service:
                services.add(incident.service)
            return self.catalogue.matching(
                None,
                incident.category,
                services,
                runbook_actions,
                alertnames={a.alertname for a in alerts},
            )

    def preview(self, incident_id: int, action: str, given: Mapping[str, str]) -> Preview:
        """Check the parameters (defaults from the incident's labels) and say what would be done; nothing is
        stored (the modal's dry-run preview)."""
        self._require_enabled()
        spec = self._action(action)
        with self.database.read() as session:
            _incident, alerts = self._incident(session, incident_id)
            labels = common_labels(alerts)
        try:
            run = resolve_run(spec, given, labels)
        except ParameterError as exc:
            raise RemediationError(f"{exc.field}: {exc.message}") from None
        return Preview(spec, run, run.fingerprint(), self.executor.preview(run))

    def get(self, request_id: int) -> RequestView:
        with self.database.read() as session:
            return self.snapshot(session, self._request(session, request_id))

    def pending(self, incident_id: int | None = None) -> list[RequestView]:
        """Requests not finished yet (requested, approved, running, or unknown and waiting for a person)."""
        return self._list(ActionRequest.state.in_([str(s) for s in OPEN_STATES]), incident_id)

    def requests_for(self, incident_id: int) -> list[RequestView]:
        """Every request of the incident, oldest first."""
        return self._list(None, incident_id)

    # Changing --------------------------------------------------------------------------------------------------

    def request(
        self,
        incident_id: int,
        action: str,
        given: Mapping[str, str],
        requester: str,
        announce: Announce | None = None,
    ) -> RequestView:
        """Record a request (audited); one needing no approval is approved at once. The same parameters
        already requested on the incident and not finished are refused."""
        preview = self.preview(incident_id, action, given)
        now = self.clock()
        with self.transaction(f"request:{incident_id}") as session:
            duplicate = session.scalars(
                select(ActionRequest.id).where(
                    ActionRequest.incident_id == incident_id,
                    ActionRequest.fingerprint == preview.fingerprint,
                    ActionRequest.state.in_([str(s) for s in OPEN_STATES]),
                )
            ).first()
            if duplicate is not None:
                raise RemediationError(f"This exact request is already open as #{duplicate}.")
            request = ActionRequest(
                incident_id=incident_id,
                action=action,
                params=dict(preview.run.params),
                target=preview.run.target,
                fingerprint=preview.fingerprint,
                requester=requester,
                state=RequestState.REQUESTED,
                created_at=now,
                expires_at=now + preview.action.expiry,
                idempotency_key=secrets.token_hex(16),
                updated_at=now,
            )
            session.add(request)
            session.flush()
            audit.record(session, request, "requested", requester, now, detail=_params_text(request.params))
            approved = self._approve_if_enough(session, request, preview.action, now)
            result = self._announced(session, request, announce)
        if approved:
            self.on_approved()
        return result

    def approve(
        self, request_id: int, approver: str, fingerprint: str, announce: Announce | None = None
    ) -> RequestView:
        """Approve the request as ``approver`` saw it (``fingerprint`` from the button). Refused: the requester,
        anyone outside the approver group, other parameters than the request's now, an expired request, a
        request no longer waiting. A repeated click by the same person changes nothing."""
        self._require_enabled()
        now = self.clock()
        refusal: str | None = None
        approved = False
        with self.transaction(f"request-id:{request_id}") as session:
            request = self._locked(session, request_id)
            spec = self._action(request.action)
            if request.state != RequestState.REQUESTED:
                raise RemediationError(_not_waiting(request))
            if fingerprint != request.fingerprint:
                raise RemediationError(
                    "The parameters changed since this was shown to you: approve the request as it stands now."
                )
            if request.expires_at <= now:
                refusal = self._expire(session, request, approver, now)
            else:
                try:
                    check_approver(request, approver, spec.approvers, self.resolve_group)
                except PolicyError as exc:
                    audit.record(session, request, "refused", approver, now, detail=str(exc))
                    refusal = str(exc)
            if refusal is None:
                if any(a.approver == approver and a.fingerprint == fingerprint for a in approvals_of(session, request)):
                    raise RemediationError("You already approved this request.")
                session.add(
                    Approval(
                        request_id=request.id,
                        approver=approver,
                        fingerprint=fingerprint,
                        attempt=request.attempt,
                        at=now,
                    )
                )
                session.flush()
                audit.record(session, request, "approved", approver, now)
                approved = self._approve_if_enough(session, request, spec, now)
            if request.state == RequestState.REQUESTED and refusal is not None:
                result = self.snapshot(session, request)  # refused, nothing changed: nothing to announce
            else:
                result = self._announced(session, request, announce)  # approved, or expired at this click
        if refusal is not None:
            raise RemediationError(refusal)
        if approved:
            self.on_approved()
        return result

    def deny(
        self, request_id: int, actor: str, reason: str | None = None, announce: Announce | None = None
    ) -> RequestView:
        """An approver denies a request that has not started running."""
        self._require_enabled()
        now = self.clock()
        with self.transaction(f"request-id:{request_id}") as session:
            request = self._locked(session, request_id)
            spec = self._action(request.action)
            if actor == request.requester:
                raise RemediationError("You requested this: use Cancel to withdraw it.")
            try:
                if not is_approver(actor, spec.approvers, self.resolve_group):
                    raise RemediationError("Only the action's approver group can approve or deny it.")
            except PolicyError as exc:
                raise RemediationError(str(exc)) from None
            self._move(session, request, RequestState.DENIED, now, (RequestState.REQUESTED, RequestState.APPROVED))
            audit.record(session, request, "denied", actor, now, detail=reason)
            return self._announced(session, request, announce)

    def cancel(self, request_id: int, actor: str, announce: Announce | None = None) -> RequestView:
        """The requester or an approver withdraws a request that has not started running."""
        self._require_enabled()
        now = self.clock()
        with self.transaction(f"request-id:{request_id}") as session:
            request = self._locked(session, request_id)
            spec = self._action(request.action)
            try:
                allowed = actor == request.requester or is_approver(actor, spec.approvers, self.resolve_group)
            except PolicyError as exc:
                raise RemediationError(str(exc)) from None
            if not allowed:
                raise RemediationError("Only the requester or the action's approver group can cancel it.")
            self._move(session, request, RequestState.CANCELLED, now, (RequestState.REQUESTED, RequestState.APPROVED))
            audit.record(session, request, "cancelled", actor, now)
            return self._announced(session, request, announce)

    def rerun(self, request_id: int, actor: str, announce: Announce | None = None) -> RequestView:
        """A person asks to run an ``unknown`` or ``failed`` request again (same parameters, same idempotency
        key): it becomes a new request by ``actor`` that needs fresh approvals."""
        self._require_enabled()
        now = self.clock()
        with self.transaction(f"request-id:{request_id}") as session:
            request = self._locked(session, request_id)
            spec = self._action(request.action)
            self._move(
                session,
                request,
                RequestState.REQUESTED,
                now,
                RERUNNABLE,
                attempt=request.attempt + 1,
                requester=actor,
                expires_at=now + spec.expiry,
                started_at=None,
                finished_at=None,
                lease_owner=None,
                lease_expires_at=None,
            )
            audit.record(session, request, "rerun", actor, now, detail=f"round {request.attempt}")
            approved = self._approve_if_enough(session, request, spec, now)
            result = self._announced(session, request, announce)
        if approved:
            self.on_approved()
        return result

    def expire_overdue(self) -> list[RequestView]:
        """Requests still waiting for approval past their expiry become ``expired`` (the runner calls this)."""
        now = self.clock()
        expired: list[RequestView] = []
        with self.database.read() as session:
            overdue = list(
                session.scalars(
                    select(ActionRequest.id).where(
                        ActionRequest.state == str(RequestState.REQUESTED), ActionRequest.expires_at <= now
                    )
                )
            )
        for request_id in overdue:
            with self.transaction(f"request-id:{request_id}") as session:
                request = self._locked(session, request_id)
                if request.state == RequestState.REQUESTED and self._expire(session, request, audit.SYSTEM_ACTOR, now):
                    expired.append(self.snapshot(session, request))
        return expired

    # Internals shared with the runner ------------------------------------------------------------------------

    @contextmanager
    def transaction(self, key: str) -> Iterator[Session]:
        """A write transaction serialised with every other one on ``key`` (PostgreSQL advisory lock; SQLite
        writers are serialised by the database file already)."""
        with self.database.write() as session:
            if self.database.is_postgres:
                session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _lock_key(key)})
            yield session

    def _require_enabled(self) -> None:
        if not self.enabled:
            raise RemediationError("Remediation is off here (INCIBOT_REMEDIATION=off).")

    def _action(self, name: str) -> ActionSpec:
        spec = self.catalogue.get(name)
        if spec is None:
            raise RemediationError(f"There is no action named {name!r} in the catalogue.")
        return spec

    def _request(self, session: Session, request_id: int) -> ActionRequest:
        request = session.get(ActionRequest, request_id)
        if request is None:
            raise RemediationError(f"There is no remediation request #{request_id}.")
        return request

    def _locked(self, session: Session, request_id: int) -> ActionRequest:
        request = load_for_update(session, request_id)
        if request is None:
            raise RemediationError(f"There is no remediation request #{request_id}.")
        return request

    def _incident(self, session: Session, incident_id: int) -> tuple[Incident, list[Alert]]:
        incident = session.get(Incident, incident_id)
        if incident is None:
            raise RemediationError(f"There is no incident #{incident_id}.")
        alerts = session.scalars(
            select(Alert)
            .join(IncidentAlert, IncidentAlert.alert_id == Alert.id)
            .where(IncidentAlert.incident_id == incident_id)
            .order_by(Alert.id)
        )
        return incident, list(alerts)

    def _move(
        self,
        session: Session,
        request: ActionRequest,
        to: RequestState,
        now: datetime,
        allowed_from: Collection[RequestState],
        **values: Any,
    ) -> None:
        if not transition(session, request, to, now, allowed_from=allowed_from, **values):
            session.refresh(request)
            raise RemediationError(_not_waiting(request))

    def _expire(self, session: Session, request: ActionRequest, actor: str, now: datetime) -> str:
        """Mark an overdue request expired (audited); the message says so."""
        transition(session, request, RequestState.EXPIRED, now, allowed_from=(RequestState.REQUESTED,))
        audit.record(session, request, "expired", actor, now, detail=f"not approved by {request.expires_at:%H:%M} UTC")
        return f"This request expired at {request.expires_at:%H:%M} UTC without enough approvals; nothing ran."

    def _approve_if_enough(self, session: Session, request: ActionRequest, spec: ActionSpec, now: datetime) -> bool:
        """``requested`` → ``approved`` when enough approvals count now; True if this call moved it."""
        valid, _voided = counted(
            request, approvals_of(session, request), spec.approvers, spec.expiry, now, self.resolve_group
        )
        if len(valid) < spec.approvals_required:
            return False
        moved = transition(session, request, RequestState.APPROVED, now, allowed_from=(RequestState.REQUESTED,))
        if moved and spec.approvals_required == 0:
            audit.record(session, request, "approved", audit.SYSTEM_ACTOR, now, detail="no approval required")
        return moved

    def _announced(self, session: Session, request: ActionRequest, announce: Announce | None) -> RequestView:
        result = self.snapshot(session, request)
        if announce is not None:
            announce(session, result)
        return result

    def snapshot(self, session: Session, request: ActionRequest) -> RequestView:
        spec = self.catalogue.get(request.action)
        approvers = dict.fromkeys(
            a.approver for a in approvals_of(session, request) if a.fingerprint == request.fingerprint
        )
        return view(request, spec.approvals_required if spec else 0, tuple(approvers))

    def _list(self, condition: object, incident_id: int | None) -> list[RequestView]:
        query = select(ActionRequest).order_by(ActionRequest.id)
        if condition is not None:
            query = query.where(condition)  # type: ignore[arg-type]
        if incident_id is not None:
            query = query.where(ActionRequest.incident_id == incident_id)
        with self.database.read() as session:
            return [self.snapshot(session, request) for request in session.scalars(query)]


def common_labels(alerts: Collection[Alert]) -> dict[str, str]:
    """The labels every one of the incident's alerts has with the same value (parameter defaults come only from
    these: a cascade's differing ``service`` labels leave the parameter for the person to fill)."""
    if not alerts:
        return {}
    first, *rest = alerts
    return {k: v for k, v in first.labels.items() if all(a.labels.get(k) == v for a in rest)}


def _not_waiting(request: ActionRequest) -> str:
    state = RequestState(request.state)
    if state in (RequestState.APPROVED, RequestState.RUNNING):
        return f"Request #{request.id} is already {state}."
    return f"Request #{request.id} is {state}: nothing more to do."


def _params_text(params: Mapping[str, object]) -> str:
    return json.dumps(params, sort_keys=True, ensure_ascii=True)


def _lock_key(key: str) -> int:
    """A signed 32-bit key for ``pg_advisory_xact_lock`` (collisions only serialise unrelated work)."""
    return zlib.crc32(key.encode()) - (1 << 31)
