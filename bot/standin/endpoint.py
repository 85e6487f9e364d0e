"""``/api/<method>``: Slack's Web API as the stand-in serves it over HTTP.

A call is authenticated with the bearer token (or, for form bodies, a ``token`` parameter), runs into any
scripted fault (:mod:`bot.standin.faults`), then into the method's rate limit (HTTP 429 with ``Retry-After``),
is answered by :class:`~bot.standin.api.WebApi` and recorded in the call log. Every answer to a valid token
carries Slack's ``x-oauth-scopes`` (what the token was granted) and ``x-accepted-oauth-scopes`` (what the
method accepts).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from bot.slack.scopes import METHODS
from bot.standin.api import ApiError, WebApi
from bot.standin.faults import Fault, FaultBook
from bot.standin.grants import accepted
from bot.standin.ratelimits import RateLimiter
from bot.standin.store import Store

SERVER_ERRORS = {500: "fatal_error", 503: "service_unavailable"}
DISCONNECT_WAIT = 5.0


class ApiEndpoint:
    """``GET|POST /api/<method>``, as a raw ASGI app so that it can leave a request unanswered."""

    def __init__(
        self,
        api: WebApi,
        store: Store,
        faults: FaultBook,
        rate_limits: RateLimiter,
        drop: Callable[[Scope], None],
    ) -> None:
        self._api = api
        self._store = store
        self._faults = faults
        self._rate_limits = rate_limits
        self._drop = drop

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        method = request.path_params["method"]
        try:
            params, token = await _read_params(request)
        except ApiError as exc:
            await json_response(200, {"ok": False, "error": exc.error})(scope, receive, send)
            return
        headers = self._scope_headers(method, token)
        channel_keys = await run_in_threadpool(self._channel_keys, params.get("channel"))
        fault = self._faults.take(method, channel_keys)
        if fault is not None and fault.kind == "latency":
            await asyncio.sleep(fault.seconds)
        if fault is not None and fault.kind in ("ratelimited", "server_error", "error"):
            response = _fault_response(fault, headers)
            error = _fault_error(fault)
            await run_in_threadpool(self._store.record_call, method, params, response.status_code, error, fault.kind)
            await response(scope, receive, send)
            return
        channel_id = next((key for key in channel_keys if key.startswith(("C", "G"))), None)
        retry_after = self._rate_limits.retry_after(method, channel_id)
        if retry_after is not None:
            await run_in_threadpool(self._store.record_call, method, params, 429, "ratelimited", None)
            await json_response(
                429, {"ok": False, "error": "ratelimited"}, headers | {"Retry-After": str(retry_after)}
            )(scope, receive, send)
            return
        answer = await run_in_threadpool(self._run, method, params, token, base_url(request), fault)
        if fault is not None and fault.kind == "accept_then_drop":
            self._drop(scope)
            await _until_disconnect(receive)
            return
        await json_response(200, answer, headers)(scope, receive, send)

    def _scope_headers(self, method: str, token: str | None) -> dict[str, str]:
        """``x-oauth-scopes`` and ``x-accepted-oauth-scopes``, for a valid token."""
        kind = self._api.token_kind(token)
        if kind is None:
            return {}
        headers = {"x-oauth-scopes": ",".join(self._api.grants.of(kind))}
        if method in METHODS:
            headers["x-accepted-oauth-scopes"] = ",".join(accepted(method))
        return headers

    def _channel_keys(self, channel_ref: Any) -> set[str]:
        keys: set[str] = set()
        if channel_ref:
            keys.add(str(channel_ref).removeprefix("#"))
            channel = self._store.channel(str(channel_ref))
            if channel is not None:
                keys |= {channel.id, channel.name}
        return keys

    def _run(
        self, method: str, params: dict[str, Any], token: str | None, base_url: str, fault: Fault | None
    ) -> dict[str, Any]:
        try:
            answer = self._api.call(method, params, token, base_url)
        except ApiError as exc:
            answer = {"ok": False, "error": exc.error, **exc.extra}
        self._store.record_call(method, params, 200, answer.get("error"), fault.kind if fault else None)
        return answer


async def _read_params(request: Request) -> tuple[dict[str, Any], str | None]:
    """The call's parameters (query string and body) and its token."""
    params: dict[str, Any] = dict(request.query_params)
    body = await request.body()
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type == "application/json":
        try:
            data = orjson.loads(body) if body else {}
        except orjson.JSONDecodeError:
            raise ApiError("invalid_json") from None
        if not isinstance(data, dict):
            raise ApiError("invalid_json")
        data.pop("token", None)  # Slack takes JSON bodies' tokens from the Authorization header only
        params.update(data)
    elif body:
        params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    token = params.pop("token", None)
    scheme, _, credential = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credential.strip():
        token = credential.strip()
    return params, token


async def _until_disconnect(receive: Receive) -> None:
    async with asyncio.timeout(DISCONNECT_WAIT):
        while (await receive())["type"] != "http.disconnect":
            pass


def _fault_error(fault: Fault) -> str:
    if fault.kind == "ratelimited":
        return "ratelimited"
    if fault.kind == "error":
        return fault.error
    return SERVER_ERRORS.get(fault.status, "internal_error")


def _fault_response(fault: Fault, headers: dict[str, str]) -> Response:
    if fault.kind == "ratelimited":
        return json_response(
            429, {"ok": False, "error": "ratelimited"}, headers | {"Retry-After": str(fault.retry_after)}
        )
    status = 200 if fault.kind == "error" else fault.status
    return json_response(status, {"ok": False, "error": _fault_error(fault)}, headers)


def base_url(request: Request) -> str:
    """Where the stand-in was reached, e.g. ``http://127.0.0.1:PORT``."""
    return str(request.base_url).rstrip("/")


def json_response(status: int, content: object, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(content), status_code=status, media_type="application/json", headers=headers)
