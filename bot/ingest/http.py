"""The webhook front door: every check that decides 202, 4xx or 503, in the documented order.

1. credential (401) — a header token, or for PagerDuty the body's ``routing_key``;
2. size (413) — stops reading as soon as the limit is passed;
3. content type (415); 4. JSON and schema (400, naming the field);
5. the durable commit — 503 with ``Retry-After`` when the database cannot take it; 202 only after commit.
Refused requests store nothing, and no body is ever logged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from bot.db.database import DatabaseUnavailable
from bot.ingest import alertmanager, generic, grafana, pagerduty
from bot.ingest.auth import TokenVerifier, credential_from_headers
from bot.ingest.errors import (
    IngestError,
    PayloadTooLarge,
    Unauthorized,
    Unavailable,
    UnsupportedMediaType,
)
from bot.ingest.parsed import ParsedDelivery
from bot.ingest.writer import DeliveryWriter
from bot.metrics import Metrics

log = logging.getLogger(__name__)

PARSERS: dict[str, Callable[[bytes], ParsedDelivery]] = {
    alertmanager.SOURCE: alertmanager.parse,
    grafana.SOURCE: grafana.parse,
    pagerduty.SOURCE: pagerduty.parse,
    generic.SOURCE: generic.parse,
}
RETRY_AFTER_SECONDS = 5


class IngestEndpoint:
    """Handles ``POST /alerts/<source>`` for every source."""

    def __init__(self, verifier: TokenVerifier, writer: DeliveryWriter, metrics: Metrics, max_body_bytes: int) -> None:
        self._verifier = verifier
        self._writer = writer
        self._metrics = metrics
        self._max_body = max_body_bytes

    async def handle(self, request: Request, source: str) -> Response:
        try:
            body = await self._admit(request, source)
            parsed = PARSERS[source](body)
            try:
                stored = await self._writer.submit(parsed, body)
            except DatabaseUnavailable as exc:
                raise Unavailable(f"cannot store the delivery now ({exc}); retry later") from None
        except IngestError as exc:
            return self._refuse(request, source, exc)
        except ClientDisconnect:
            return Response(status_code=400)
        self._metrics.delivery_accepted(source, "ok" if stored.ignored < len(parsed.events) else "heartbeat")
        answer: dict[str, object]
        if source == pagerduty.SOURCE:
            answer = {"status": "success", "message": "Event processed", **parsed.reply}
        else:
            answer = {"status": "accepted", "delivery_id": stored.delivery_id, "alerts": len(parsed.events)}
        return json_response(202, answer)

    async def _admit(self, request: Request, source: str) -> bytes:
        credential = credential_from_headers(request.headers)
        body_credential = source == pagerduty.SOURCE and credential is None
        if not body_credential and not self._verifier.verify(source, credential):
            raise Unauthorized("missing or wrong credential" if credential is None else "wrong credential")
        body = await read_limited(request, self._max_body)
        if body_credential and not self._verifier.verify(source, pagerduty.routing_key_from(body)):
            raise Unauthorized("missing or wrong routing_key")
        require_json(request)
        return body

    def _refuse(self, request: Request, source: str, exc: IngestError) -> Response:
        self._metrics.delivery_rejected(source, exc.reason)
        client = request.client.host if request.client else "?"
        level = logging.ERROR if isinstance(exc, PayloadTooLarge) else logging.WARNING
        log.log(level, "refused %s delivery from %s: %d %s", source, client, exc.status, exc.message)
        if source != pagerduty.SOURCE:
            return error_response(exc)
        body: dict[str, object] = {
            "status": _PD_STATUS.get(exc.status, "error"),
            "message": exc.message,
            "errors": [exc.message],
        }
        if exc.field is not None:
            body["field"] = exc.field
        return json_response(exc.status, body, _retry_after(exc))


_PD_STATUS = {400: "invalid event", 401: "unauthorized", 413: "too large", 415: "invalid event"}


async def read_limited(request: Request, max_body: int) -> bytes:
    """The request body; :class:`PayloadTooLarge` (413) as soon as it passes ``max_body`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_body:
        raise PayloadTooLarge(f"body of {declared} bytes exceeds the limit of {max_body}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_body:
            raise PayloadTooLarge(f"body exceeds the limit of {max_body} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def require_json(request: Request) -> None:
    """:class:`UnsupportedMediaType` (415) unless the content type is ``application/json`` or ``*+json``."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise UnsupportedMediaType(f"content type must be application/json, not {media_type or 'missing'}")


def error_response(exc: IngestError) -> Response:
    """The refusal every webhook but PagerDuty's answers: ``{"error", "message", "field"?}``."""
    body: dict[str, object] = {"error": exc.reason, "message": exc.message}
    if exc.field is not None:
        body["field"] = exc.field
    return json_response(exc.status, body, _retry_after(exc))


def json_response(status: int, content: object, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(content), status_code=status, media_type="application/json", headers=headers)


def _retry_after(exc: IngestError) -> dict[str, str] | None:
    return {"Retry-After": str(RETRY_AFTER_SECONDS)} if exc.status == 503 else None
