"""Requests' state changes by compare-and-set, and the snapshot of a request callers get back."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from bot.remediation.models import ActionRequest, Approval, RequestState


@dataclass(frozen=True)
class RequestView:
    """A request as it stood when read: what the Slack side renders (``fingerprint`` goes into the Approve
    button's value, so that an approval of parameters that changed since is refused)."""

    id: int
    incident_id: int
    action: str
    params: Mapping[str, Any]
    target: str
    fingerprint: str
    requester: str
    state: RequestState
    created_at: datetime
    expires_at: datetime
    attempt: int
    approvals_required: int
    approved_by: tuple[str, ...]  # the approvals that count now
    summary: str | None  # the result, the dry-run preview, or why it stopped

    @property
    def is_final(self) -> bool:
        return self.state not in (RequestState.REQUESTED, RequestState.APPROVED, RequestState.RUNNING)


def view(request: ActionRequest, approvals_required: int, approved_by: Collection[str] = ()) -> RequestView:
    return RequestView(
        id=request.id,
        incident_id=request.incident_id,
        action=request.action,
        params=dict(request.params),
        target=request.target,
        fingerprint=request.fingerprint,
        requester=request.requester,
        state=RequestState(request.state),
        created_at=request.created_at,
        expires_at=request.expires_at,
        attempt=request.attempt,
        approvals_required=approvals_required,
        approved_by=tuple(approved_by),
        summary=request.summary,
    )


def transition(
    session: Session,
    request: ActionRequest,
    to: RequestState,
    now: datetime,
    *,
    allowed_from: Collection[RequestState],
    held_by: str | None = None,
    **values: Any,
) -> bool:
    """Move ``request`` to ``to`` only if it is still in one of ``allowed_from`` (and, when given, still held by
    the run lease ``held_by``): the database decides, so of two racing callers exactly one gets True. On success the
    object is refreshed with the new values."""
    condition = [ActionRequest.id == request.id, ActionRequest.state.in_([str(s) for s in allowed_from])]
    if held_by is not None:
        condition.append(ActionRequest.lease_owner == held_by)
    changes = {"state": str(to), "updated_at": now, **values}
    result = session.execute(
        update(ActionRequest).where(*condition).values(**changes).execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    for name, value in changes.items():
        set_committed_value(request, name, value)
    return True


def load_for_update(session: Session, request_id: int) -> ActionRequest | None:
    """The request, its row locked until the transaction ends (PostgreSQL; SQLite's write lock is the file's)."""
    return session.scalars(
        select(ActionRequest)
        .where(ActionRequest.id == request_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one_or_none()


def approvals_of(session: Session, request: ActionRequest) -> list[Approval]:
    return list(
        session.scalars(
            select(Approval)
            .where(Approval.request_id == request.id, Approval.attempt == request.attempt)
            .order_by(Approval.id)
        )
    )
