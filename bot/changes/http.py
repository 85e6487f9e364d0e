"""``POST /changes``: the alert webhooks' contract (``bot.ingest.http``), for change events.

1. credential (401): a header token valid for the ``changes`` source (``Authorization: Bearer T`` or a Basic
   password), or, for GitHub, ``X-Hub-Signature-256`` (the body's HMAC-SHA256 keyed with such a token);
2. size (413); 3. content type (415); 4. JSON and shape (400, naming the field);
5. the commit: 503 with ``Retry-After`` when the database cannot take it; 202 only after commit (a retried
   delivery too, with ``duplicate: true``); 200 for a delivery understood and deliberately not stored.
Refused requests store nothing, and no body is ever logged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from bot.changes import github, shapes, store
from bot.changes.parsed import Ignored, IncomingChange
from bot.db.database import Database, is_transient
from bot.ingest.auth import TokenVerifier, credential_from_headers
from bot.ingest.errors import IngestError, Unauthorized, Unavailable
from bot.ingest.http import error_response, json_response, read_limited, require_json
from bot.metrics import Metrics

log = logging.getLogger(__name__)

SOURCE = "changes"  # the ingest-token source name: INCIBOT_INGEST_TOKENS="changes=T" scopes a token to it


class ChangesEndpoint:
    """Handles ``POST /changes`` for the generic, GitHub and Argo CD shapes."""

    def __init__(
        self,
        verifier: TokenVerifier,
        database: Database,
        metrics: Metrics,
        clock: Callable[[], datetime],
        max_body_bytes: int,
    ) -> None:
        self._verifier = verifier
        self._database = database
        self._metrics = metrics
        self._clock = clock
        self._max_body = max_body_bytes

    async def handle(self, request: Request) -> Response:
        try:
            body = await self._admit(request)
            parsed = shapes.parse(body, request.headers, self._clock())
            if isinstance(parsed, Ignored):
                self._metrics.delivery_accepted(SOURCE, "ignored")
                return json_response(200, {"status": "ignored", "reason": parsed.reason})
            stored = await run_in_threadpool(self._store, parsed)
        except IngestError as exc:
            self._metrics.delivery_rejected(SOURCE, exc.reason)
            client = request.client.host if request.client else "?"
            log.warning("refused change from %s: %d %s", client, exc.status, exc.message)
            return error_response(exc)
        except ClientDisconnect:
            return Response(status_code=400)
        self._metrics.delivery_accepted(SOURCE, "duplicate" if stored.duplicate else "ok")
        answer = {"status": "accepted", "change_id": stored.change_id, "duplicate": stored.duplicate}
        return json_response(202, answer)

    async def _admit(self, request: Request) -> bytes:
        credential = credential_from_headers(request.headers)
        signature = request.headers.get(github.SIGNATURE_HEADER)
        if credential is None and signature is not None:
            body = await read_limited(request, self._max_body)
            if not self._verifier.verify_signature(SOURCE, body, signature):
                raise Unauthorized("wrong X-Hub-Signature-256")
        else:
            if not self._verifier.verify(SOURCE, credential):
                raise Unauthorized("missing or wrong credential" if credential is None else "wrong credential")
            body = await read_limited(request, self._max_body)
        require_json(request)
        return body

    def _store(self, change: IncomingChange) -> store.StoredChange:
        try:
            with self._database.write_connection() as connection:
                return store.record(connection, change, self._clock())
        except Exception as exc:
            if is_transient(exc):
                raise Unavailable(f"cannot store the change now ({str(exc).splitlines()[0]}); retry later") from None
            raise
