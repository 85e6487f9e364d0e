"""GitHub ``deployment_status`` webhooks: a deployment that reached ``success`` is a deploy of the repository.

The service is the deployment's ``payload.service`` when the workflow sets one, else the repository's name;
the version is ``payload.version``, else the deployed ref (a commit SHA shortened). Other states (pending,
in_progress, failure, ...), the ``ping`` sent when the webhook is created and other events are answered 200
and not stored.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, Field

from bot.changes.parsed import Ignored, IncomingChange, check_not_future, short_version

SOURCE = "github"
EVENT_HEADER = "x-github-event"
SIGNATURE_HEADER = "x-hub-signature-256"


class _User(BaseModel):
    login: str = Field(max_length=200)


class _DeploymentStatus(BaseModel):
    id: int
    state: str
    created_at: AwareDatetime
    environment: str | None = None
    description: str | None = None
    target_url: str | None = None
    log_url: str | None = None
    environment_url: str | None = None
    creator: _User | None = None


class _Deployment(BaseModel):
    id: int
    sha: str
    ref: str
    environment: str | None = None
    description: str | None = None
    creator: _User | None = None
    payload: dict[str, Any] | str | None = None  # GitHub passes on whatever the deployment was created with


class _Repository(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    full_name: str = Field(min_length=1, max_length=200)
    html_url: str | None = None


class DeploymentStatusEvent(BaseModel):
    deployment_status: _DeploymentStatus
    deployment: _Deployment
    repository: _Repository
    sender: _User | None = None


def parse(payload: Any, event: str, now: datetime) -> IncomingChange | Ignored:
    """``payload``: the decoded body; ``event``: the ``X-GitHub-Event`` header."""
    if event != "deployment_status":
        return Ignored(f"GitHub event {event!r} is not recorded; send deployment_status events")
    hook = DeploymentStatusEvent.model_validate(payload)
    status, deployment = hook.deployment_status, hook.deployment
    if status.state != "success":
        return Ignored(f"deployment state {status.state!r}: only successful deployments are changes")
    check_not_future(status.created_at, now, "deployment_status.created_at")
    extra = deployment.payload if isinstance(deployment.payload, dict) else {}
    environment = status.environment or deployment.environment
    text = status.description or deployment.description
    described = "; ".join(part for part in (f"to {environment}" if environment else None, text) if part)
    creator = deployment.creator or status.creator or hook.sender
    return IncomingChange(
        source=SOURCE,
        dedup_key=f"{SOURCE}:{hook.repository.full_name}:{status.id}",
        service=_text(extra.get("service")) or hook.repository.name,
        kind="deploy",
        at=status.created_at,
        version=short_version(_text(extra.get("version")) or deployment.ref),
        who=creator.login if creator else None,
        link=status.target_url or status.log_url or status.environment_url or hook.repository.html_url,
        description=described or None,
    )


def _text(value: object) -> str | None:
    return value[:200] if isinstance(value, str) and value.strip() else None
