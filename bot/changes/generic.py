"""incibot's own change shape, for any CI job, script or flag service that can POST JSON.

The shape is the pydantic model below; its JSON Schema is published as ``docs/changes.schema.json`` (a test
keeps the two identical).
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any, Literal

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from bot.changes.parsed import IncomingChange, check_not_future, short_version

SOURCE = "generic"
LINK_PATTERN = r"^https?://\S+$"


class GenericChange(BaseModel):
    """One change event (a deploy, a config change or a feature-flag flip) sent to POST /changes."""

    model_config = ConfigDict(extra="forbid", title="incibot change event")

    service: str = Field(
        min_length=1,
        max_length=200,
        pattern=r"^\S+$",
        description="The changed service, named as the topology file and the alerts' service label name it.",
    )
    kind: Literal["deploy", "config", "feature_flag"] = Field(description="What changed.")
    version: str | None = Field(default=None, max_length=200, description="Version, tag or commit deployed.")
    who: str | None = Field(default=None, max_length=200, description="Who made the change.")
    when: AwareDatetime | None = Field(
        default=None, description="RFC 3339 with a timezone; default: when incibot received it."
    )
    link: str | None = Field(
        default=None, max_length=2000, pattern=LINK_PATTERN, description="http(s) link to the pipeline, PR or flag."
    )
    description: str | None = Field(default=None, max_length=2000, description="One line for humans.")
    id: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="The sender's id for this change: a retry with the same id is stored once. Without it, "
        "identical bodies are one change.",
    )


def parse(payload: Any, now: datetime) -> IncomingChange:
    """``payload``: the decoded JSON body. Raises ``ValidationError`` or ``InvalidPayload`` naming the field."""
    change = GenericChange.model_validate(payload)
    check_not_future(change.when, now, "when")
    if change.id is not None:
        key = f"{SOURCE}:id:{change.id}"
    else:
        canonical = orjson.dumps(change.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
        key = f"{SOURCE}:sha256:{hashlib.sha256(canonical).hexdigest()}"
    return IncomingChange(
        source=SOURCE,
        dedup_key=key,
        service=change.service,
        kind=change.kind,
        at=change.when,
        version=short_version(change.version),
        who=change.who,
        link=change.link,
        description=change.description,
    )


def json_schema() -> dict[str, Any]:
    """The published JSON Schema of the generic change body."""
    schema = GenericChange.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema
