"""``POST /slack/events``: verify the signature, then let Bolt dispatch in a worker thread.

Commands, interactivity and events share this one URL (Bolt's convention). Verification happens here,
before Bolt: a forged, stale (over 5 minutes either way) or malformed request gets 401, runs no listener,
writes nothing, and its body is never logged. Without a signing secret (Socket Mode only) HTTP mode is off:
every request gets 404 and nothing runs. Bolt's sync dispatch runs in the thread pool so it never blocks the
event loop that serves alert ingestion.
"""

from __future__ import annotations

import logging

from slack_bolt import App, BoltRequest
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bot.slack.verification import RequestVerifier

log = logging.getLogger(__name__)

MAX_SLACK_BODY = 1024 * 1024
HTTP_MODE_OFF = "Slack's HTTP mode is off on this bot (no SLACK_SIGNING_SECRET; it uses Socket Mode)"


class SlackEventsEndpoint:
    """``verifier`` None: HTTP mode is not configured, so there is nothing to verify requests with."""

    def __init__(self, app: App, verifier: RequestVerifier | None) -> None:
        self._app = app
        self._verifier = verifier

    async def handle(self, request: Request) -> Response:
        if self._verifier is None:
            log.warning("refused a request to /slack/events: %s", HTTP_MODE_OFF)
            return JSONResponse({"error": HTTP_MODE_OFF}, status_code=404)
        body = await request.body()
        if len(body) > MAX_SLACK_BODY:
            return JSONResponse({"error": "too_large"}, status_code=413)
        if not self._verifier.verify(request.headers, body):
            client = request.client.host if request.client else "?"
            log.warning("refused a Slack request from %s: bad or missing signature", client)
            return JSONResponse({"error": "invalid_signature"}, status_code=401)
        bolt_request = BoltRequest(
            body=body.decode("utf-8"),
            query=request.url.query,
            headers={key: [value] for key, value in request.headers.items()},
        )
        answer = await run_in_threadpool(self._app.dispatch, bolt_request)
        return Response(
            content=answer.body,
            status_code=answer.status,
            headers=answer.first_headers_without_set_cookie(),
        )
