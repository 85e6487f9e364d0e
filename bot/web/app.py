"""The ASGI application: alert and change webhooks, liveness, readiness and metrics."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.changes.http import ChangesEndpoint
from bot.db import migrate
from bot.db.database import Database
from bot.ingest.http import IngestEndpoint
from bot.metrics import Metrics
from bot.slack.integration import SlackIntegration

INGEST_ROUTES = {
    "/alerts/alertmanager": "alertmanager",
    "/alerts/grafana": "grafana",
    "/alerts/pagerduty": "pagerduty",
    "/alerts/pagerduty/v2/enqueue": "pagerduty",
    "/alerts/generic": "generic",
}


def build_web_app(
    ingest: IngestEndpoint,
    slack: SlackIntegration,
    database: Database,
    metrics: Metrics,
    *,
    on_startup: Callable[[], None],
    on_shutdown: Callable[[], None],
    changes: ChangesEndpoint | None = None,
) -> Starlette:
    def ingest_route(source: str) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            return await ingest.handle(request, source)

        return endpoint

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    def readyz(_request: Request) -> Response:
        try:
            at_head = migrate.is_at_head(database)
        except Exception as exc:
            error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            return JSONResponse({"status": "unavailable", "database": error}, status_code=503)
        if not at_head:
            return JSONResponse(
                {"status": "unavailable", "database": "ok", "schema": "behind; run `incibot db upgrade`"},
                status_code=503,
            )
        if not slack.health.ready:  # the start-up Slack check (and, in Socket Mode, the connection) first
            return JSONResponse(
                {"status": "starting", "database": "ok", "schema": "head", "slack": slack.health.status()},
                status_code=503,
            )
        return JSONResponse({"status": "ready", "database": "ok", "schema": "head", "slack": slack.health.status()})

    async def metrics_endpoint(_request: Request) -> Response:
        body = await run_in_threadpool(metrics.render)
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await run_in_threadpool(on_startup)
        try:
            yield
        finally:
            await run_in_threadpool(on_shutdown)

    routes = [Route(path, ingest_route(source), methods=["POST"]) for path, source in INGEST_ROUTES.items()]
    routes += [
        Route("/slack/events", slack.endpoint.handle, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
    ]
    if changes is not None:
        routes.append(Route("/changes", changes.handle, methods=["POST"]))
    return Starlette(routes=routes, lifespan=lifespan)
