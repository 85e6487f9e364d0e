"""The approval policy, checked when a person clicks and again when the run starts.

An approval counts only when it was given to the request's current fingerprint (action + parameters + target)
and round (``attempt``), by someone other than the requester who is in the action's approver group right now,
and (before the first run of the round) no longer ago than the action's expiry.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from datetime import datetime, timedelta

from bot.remediation.catalogue import Approvers
from bot.remediation.models import ActionRequest, Approval

GroupResolver = Callable[[str], Collection[str]]
"""A Slack user group id (``S…``) → its members' user ids (``usergroups.users.list``); may raise."""


class PolicyError(Exception):
    """An approval that does not count, with the reason in words for the person who clicked."""


def is_approver(actor: str, approvers: Approvers, resolve_group: GroupResolver) -> bool:
    """``actor`` is listed, or a member of a listed user group (resolved now, so removals count at once)."""
    if actor in approvers.users:
        return True
    for group in sorted(approvers.groups):
        try:
            members = resolve_group(group)
        except Exception as exc:  # the resolver is Slack's: any failure means "cannot tell", never "yes"
            raise PolicyError(f"Cannot check the approver group {group} right now ({type(exc).__name__}).") from exc
        if actor in members:
            return True
    return False


def check_approver(request: ActionRequest, actor: str, approvers: Approvers, resolve_group: GroupResolver) -> None:
    """Raise :class:`PolicyError` unless ``actor`` may approve ``request``."""
    if actor == request.requester:
        raise PolicyError("You requested this action, so your approval does not count: someone else must approve.")
    if not is_approver(actor, approvers, resolve_group):
        raise PolicyError("Only the action's approver group can approve or deny it.")


def counted(
    request: ActionRequest,
    approvals: Iterable[Approval],
    approvers: Approvers,
    expiry: timedelta,
    now: datetime,
    resolve_group: GroupResolver,
    *,
    check_expiry: bool = True,
) -> tuple[list[str], list[str]]:
    """The distinct approvers that count now, and why each of the others does not (one line each)."""
    valid: list[str] = []
    voided: list[str] = []
    for approval in approvals:
        if approval.attempt != request.attempt or approval.approver in valid:
            continue
        if approval.fingerprint != request.fingerprint:
            voided.append(f"<@{approval.approver}> approved other parameters")
        elif approval.approver == request.requester:
            voided.append(f"<@{approval.approver}> requested it")
        elif check_expiry and approval.at + expiry <= now:
            voided.append(f"<@{approval.approver}>'s approval expired")
        else:
            try:
                member = is_approver(approval.approver, approvers, resolve_group)
            except PolicyError as exc:
                voided.append(str(exc))
                continue
            if member:
                valid.append(approval.approver)
            else:
                voided.append(f"<@{approval.approver}> is no longer in the approver group")
    return valid, voided
