"""Which shape a ``POST /changes`` body is, and its parse: GitHub by its ``X-GitHub-Event`` header, Argo CD by
an ``app`` member, anything else incibot's generic shape."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import orjson
from pydantic import ValidationError

from bot.changes import argocd, generic, github
from bot.changes.parsed import Ignored, IncomingChange
from bot.ingest.errors import InvalidPayload
from bot.ingest.validation import invalid_from


def parse(body: bytes, headers: Mapping[str, str], now: datetime) -> IncomingChange | Ignored:
    """Raises :class:`InvalidPayload` naming the offending field."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidPayload(f"malformed JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise InvalidPayload("the body must be a JSON object")
    event = headers.get(github.EVENT_HEADER)
    try:
        if event is not None:
            return github.parse(payload, event.strip(), now)
        if argocd.APP in payload:
            return argocd.parse(payload, now)
        return generic.parse(payload, now)
    except ValidationError as exc:
        raise invalid_from(exc) from None
