"""Argo CD notifications: a webhook template sending the synced application (see docs/changes.md).

Argo CD's webhook body is whatever the template renders, so incibot expects the flat shape below, filled
from the application object (``app``, ``revision`` required). A field the template leaves empty, or that Go
renders as ``<no value>``, counts as absent. A ``phase`` other than ``Succeeded`` is answered 200 and not
stored.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from bot.changes.generic import LINK_PATTERN
from bot.changes.parsed import Ignored, IncomingChange, check_not_future, short_version

SOURCE = "argocd"
APP = "app"  # the member that tells an Argo CD body from a generic one
_UNRENDERED = ("", "<no value>")


def _absent_if_unrendered(value: Any) -> Any:
    return None if isinstance(value, str) and value.strip() in _UNRENDERED else value


Absent = BeforeValidator(_absent_if_unrendered)
Name = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^\S+$")]
Text = Annotated[str, StringConstraints(max_length=2000)]
Link = Annotated[str, StringConstraints(max_length=2000, pattern=LINK_PATTERN)]


class ArgoCDNotification(BaseModel):
    """The body of the ``app-deployed`` / ``app-sync-succeeded`` webhook template."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    app: Name
    revision: str = Field(min_length=1, max_length=200)
    service: Annotated[Name | None, Absent] = None
    phase: Annotated[str | None, Absent] = None
    finished_at: Annotated[AwareDatetime | None, Absent] = Field(default=None, alias="finishedAt")
    initiated_by: Annotated[Annotated[str, StringConstraints(max_length=200)] | None, Absent] = Field(
        default=None, alias="initiatedBy"
    )
    url: Annotated[Link | None, Absent] = None
    message: Annotated[Text | None, Absent] = None


def parse(payload: Any, now: datetime) -> IncomingChange | Ignored:
    """``payload``: the decoded body (a JSON object with an ``app`` member)."""
    note = ArgoCDNotification.model_validate(payload)
    if note.phase is not None and note.phase != "Succeeded":
        return Ignored(f"sync phase {note.phase!r}: only a succeeded sync is a change")
    check_not_future(note.finished_at, now, "finishedAt")
    finished = note.finished_at.isoformat() if note.finished_at else ""
    return IncomingChange(
        source=SOURCE,
        dedup_key=f"{SOURCE}:{note.app}:{note.revision}:{finished}",
        service=note.service or note.app,
        kind="deploy",
        at=note.finished_at,
        version=short_version(note.revision),
        who=note.initiated_by,
        link=note.url,
        description=note.message or f"Argo CD synced {note.app}",
    )
