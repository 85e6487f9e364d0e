"""The stand-in's HTTP surface: Slack's Web API under ``/api/`` (:mod:`bot.standin.endpoint`), the test
hooks under ``/_standin/``, which need no credential, and the local workspace page at ``/``
(:mod:`bot.standin.workspace.routes`). The whole app refuses clients that are not on loopback.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from bot.loopback import is_loopback
from bot.standin.api import WebApi
from bot.standin.clock import StandinClock
from bot.standin.endpoint import ApiEndpoint, base_url, json_response
from bot.standin.faults import Fault, FaultBook
from bot.standin.grants import Grants
from bot.standin.inspection import Inspector
from bot.standin.manifest import AppManifest
from bot.standin.people import NotMember, People
from bot.standin.ratelimits import RateLimiter
from bot.standin.response_urls import ResponseUrls
from bot.standin.socket_mode import SOCKET_PATH, NoConnection, SocketHub
from bot.standin.store import Store
from bot.standin.views import ClientRefused, ViewBook
from bot.standin.workspace import User, Workspace
from bot.standin.workspace.actions import BotLink
from bot.standin.workspace.routes import workspace_routes


@dataclass(frozen=True)
class Standin:
    """The stand-in's parts, over one SQLite file."""

    workspace: Workspace
    store: Store
    api: WebApi
    faults: FaultBook
    hub: SocketHub
    response_urls: ResponseUrls
    inspector: Inspector
    clock: StandinClock
    rate_limits: RateLimiter
    views: ViewBook

    @classmethod
    def open(
        cls, db_path: Path, workspace: Workspace, *, clock: StandinClock | None = None, rate_limits: bool = True
    ) -> Standin:
        """The stand-in over ``db_path``, with the app installed from the workspace's manifest."""
        grants = Grants(AppManifest.load(workspace.manifest).bot_scopes, workspace.app_token_scopes)
        clock = clock or StandinClock()
        store = Store(db_path)
        store.seed((workspace.bot_user, *workspace.users), workspace.channels, workspace.bot_user.id)
        hub = SocketHub(workspace.app_id)
        views = ViewBook(clock, workspace)
        api = WebApi(store, workspace, hub.issue_url, grants, views.methods)
        responses = ResponseUrls(store, workspace.bot_user.id, clock)
        inspector = Inspector(store, api)
        limiter = RateLimiter(clock, enabled=rate_limits)
        return cls(workspace, store, api, FaultBook(), hub, responses, inspector, clock, limiter, views)


def build_app(
    standin: Standin,
    drop_connection: Callable[[Scope], None],
    bot_link: Callable[[], BotLink | None] = lambda: None,
    stopping: Callable[[], bool] = lambda: False,
) -> Starlette:
    """The ASGI app; ``drop_connection`` aborts the connection a request came on (``accept_then_drop``);
    ``bot_link`` says where the workspace page reaches the bot, ``stopping`` when its live feeds must end."""
    inspector = standin.inspector

    async def messages(request: Request) -> Response:
        view = await run_in_threadpool(inspector.messages, request.query_params.get("channel", ""))
        return json_response(200, view) if view else _not_found("channel_not_found")

    async def message(request: Request) -> Response:
        channel, ts = request.path_params["channel"], request.path_params["ts"]
        if request.method == "DELETE":
            deleted = await run_in_threadpool(inspector.delete_message, channel, ts)
            return json_response(200, {"ok": True}) if deleted else _not_found("message_not_found")
        view = await run_in_threadpool(inspector.message, channel, ts)
        return json_response(200, view) if view else _not_found("message_not_found")

    async def channel(request: Request) -> Response:
        view = await run_in_threadpool(inspector.channel, request.path_params["channel"])
        return json_response(200, view) if view else _not_found("channel_not_found")

    async def ephemerals(request: Request) -> Response:
        view = await run_in_threadpool(inspector.ephemerals, request.query_params.get("channel", ""))
        return _not_found("channel_not_found") if view is None else json_response(200, {"ephemerals": view})

    async def calls(request: Request) -> Response:
        return json_response(
            200, {"calls": await run_in_threadpool(standin.store.calls, request.query_params.get("method"))}
        )

    async def faults(request: Request) -> Response:
        if request.method == "DELETE":
            standin.faults.clear()
        elif request.method == "POST":
            try:
                standin.faults.add(Fault.from_json(_object(await request.body())))
            except ValueError as exc:
                return json_response(400, {"ok": False, "error": str(exc)})
        return json_response(200, {"ok": True, "faults": standin.faults.list()})

    async def mint_response_url(request: Request) -> Response:
        try:
            body = _object(await request.body())
            channel_ref, user = str(body["channel"]), str(body["user"])
        except (ValueError, KeyError):
            return json_response(400, {"ok": False, "error": "give channel and user"})
        target = await run_in_threadpool(standin.store.channel, channel_ref)
        if target is None:
            return _not_found("channel_not_found")
        if await run_in_threadpool(standin.store.user, user) is None:
            return _not_found("user_not_found")
        message_ts = str(body["message_ts"]) if body.get("message_ts") else None
        url = await run_in_threadpool(standin.response_urls.mint, base_url(request), target, user, message_ts)
        return json_response(200, {"ok": True, "url": url})

    async def response_url(request: Request) -> Response:
        body = await request.body()
        status, answer = await run_in_threadpool(standin.response_urls.receive, request.path_params["id"], body)
        return json_response(status, answer)

    async def responses(request: Request) -> Response:
        view = await run_in_threadpool(standin.response_urls.view, request.path_params["id"])
        return json_response(200, view) if view else _not_found("expired_url")

    async def push_envelope(request: Request) -> Response:
        try:
            body = _object(await request.body())
            envelope_id = await standin.hub.push(
                str(body["type"]),
                body["payload"],
                accepts_response_payload=bool(body.get("accepts_response_payload")),
                retry_attempt=int(body.get("retry_attempt", 0)),
                retry_reason=str(body.get("retry_reason", "")),
                connect_timeout=float(body.get("connect_timeout", 5.0)),
            )
        except (ValueError, KeyError, TypeError):
            return json_response(400, {"ok": False, "error": "give type and payload"})
        except NoConnection:
            return json_response(409, {"ok": False, "error": "no_connection"})
        return json_response(200, {"ok": True, "envelope_id": envelope_id})

    async def ack(request: Request) -> Response:
        envelope_id = request.path_params["envelope_id"]
        try:
            got = await standin.hub.wait_for_ack(envelope_id, float(request.query_params.get("timeout", "3")))
        except KeyError:
            return _not_found("envelope_not_found")
        except ValueError:
            return json_response(400, {"ok": False, "error": "timeout must be a number"})
        if got is None:
            return json_response(200, {"envelope_id": envelope_id, "acked": False})
        return json_response(
            200, {"envelope_id": envelope_id, "acked": True, "payload": got.payload, "latency": got.latency}
        )

    async def ratelimits(request: Request) -> Response:
        if request.method == "POST":
            try:
                enabled = _object(await request.body())["enabled"]
            except (ValueError, KeyError):
                return json_response(400, {"ok": False, "error": 'give {"enabled": true|false}'})
            if not isinstance(enabled, bool):
                return json_response(400, {"ok": False, "error": "enabled must be true or false"})
            standin.rate_limits.set_enabled(enabled)
        return json_response(200, {"ok": True, "enabled": standin.rate_limits.enabled})

    async def clock(request: Request) -> Response:
        if request.method == "POST":
            try:
                standin.clock.advance(float(_object(await request.body())["advance"]))
            except (ValueError, KeyError, TypeError):
                return json_response(400, {"ok": False, "error": 'give {"advance": SECONDS}, not negative'})
        return json_response(200, {"ok": True, "now": standin.clock.now()})

    async def users(request: Request) -> Response:
        if request.method == "POST":
            try:
                body = _object(await request.body())
                user = _new_user(body)
                channels = [str(channel) for channel in body.get("channels") or []]
            except (ValueError, KeyError, TypeError) as exc:
                return json_response(400, {"ok": False, "error": str(exc)})
            status, answer = await run_in_threadpool(_add_user, standin.store, user, channels)
            if status != 200:
                return json_response(status, answer)
        known = await run_in_threadpool(standin.store.users)
        return json_response(
            200, {"ok": True, "users": [{"id": u.id, "name": u.name, "is_bot": u.is_bot} for u in known]}
        )

    async def trigger(request: Request) -> Response:
        try:
            body = _object(await request.body())
            user, issued_ago = str(body["user"]), float(body.get("issued_ago", 0.0))
        except (ValueError, KeyError, TypeError):
            return json_response(400, {"ok": False, "error": 'give {"user": ID, "issued_ago"?: SECONDS}'})
        return json_response(200, {"ok": True, "trigger_id": standin.views.mint_trigger(user, issued_ago)})

    async def views(request: Request) -> Response:
        return json_response(200, {"ok": True, "views": standin.views.stack(request.query_params.get("user", ""))})

    async def submission(request: Request) -> Response:
        try:
            body = _object(await request.body())
            user, values = str(body["user"]), dict(body.get("values") or {})
            view = standin.views.submission(request.path_params["view_id"], user, values)
        except ClientRefused as exc:
            return json_response(422, {"ok": False, "error": str(exc)})
        except LookupError as exc:
            return _not_found(str(exc))
        except (ValueError, KeyError, TypeError) as exc:
            return json_response(400, {"ok": False, "error": str(exc)})
        return json_response(200, {"ok": True, "view": view})

    async def answer(request: Request) -> Response:
        try:
            body = _object(await request.body())
            user, ack = str(body["user"]), body.get("ack")
        except (ValueError, KeyError):
            return json_response(400, {"ok": False, "error": 'give {"user": ID, "ack": ANSWER|null}'})
        ack = ack if isinstance(ack, dict) else None
        return json_response(200, standin.views.answer(request.path_params["view_id"], user, ack))

    people = People(standin.store, standin.workspace)

    async def user_message(request: Request) -> Response:
        try:
            body = _object(await request.body())
            channel, user, text = str(body["channel"]), str(body["user"]), str(body["text"])
        except (ValueError, KeyError, TypeError):
            return json_response(400, {"ok": False, "error": 'give {"channel", "user", "text", "thread_ts"?}'})
        thread_ts = str(body["thread_ts"]) if body.get("thread_ts") else None
        try:
            said = await run_in_threadpool(people.say, channel, user, text, thread_ts)
        except NotMember as exc:
            return json_response(403, {"ok": False, "error": str(exc)})
        except LookupError as exc:
            return _not_found(str(exc))
        return json_response(200, {"ok": True, **said})

    async def open_im(request: Request) -> Response:
        try:
            user = str(_object(await request.body())["user"])
        except (ValueError, KeyError, TypeError):
            return json_response(400, {"ok": False, "error": 'give {"user": ID}'})
        try:
            opened = await run_in_threadpool(people.open_im, user)
        except LookupError as exc:
            return _not_found(str(exc))
        return json_response(200, {"ok": True, **opened})

    async def socket_disconnect(request: Request) -> Response:
        try:
            reason = str(_object(await request.body() or b"{}").get("reason", "refresh_requested"))
            count = await standin.hub.disconnect(reason)
        except ValueError as exc:
            return json_response(400, {"ok": False, "error": str(exc)})
        return json_response(200, {"ok": True, "connections": count})

    routes = [
        Route(
            "/api/{method}",
            ApiEndpoint(standin.api, standin.store, standin.faults, standin.rate_limits, drop_connection),
        ),
        Route("/_standin/messages", messages, methods=["GET"]),
        Route("/_standin/user_messages", user_message, methods=["POST"]),
        Route("/_standin/ims", open_im, methods=["POST"]),
        Route("/_standin/messages/{channel}/{ts}", message, methods=["GET", "DELETE"]),
        Route("/_standin/channels/{channel}", channel, methods=["GET"]),
        Route("/_standin/ephemerals", ephemerals, methods=["GET"]),
        Route("/_standin/calls", calls, methods=["GET"]),
        Route("/_standin/faults", faults, methods=["GET", "POST", "DELETE"]),
        Route("/_standin/response_urls", mint_response_url, methods=["POST"]),
        Route("/_standin/response/{id}", response_url, methods=["POST"]),
        Route("/_standin/responses/{id}", responses, methods=["GET"]),
        Route("/_standin/socket/envelopes", push_envelope, methods=["POST"]),
        Route("/_standin/socket/acks/{envelope_id}", ack, methods=["GET"]),
        Route("/_standin/socket/disconnect", socket_disconnect, methods=["POST"]),
        Route("/_standin/ratelimits", ratelimits, methods=["GET", "POST"]),
        Route("/_standin/clock", clock, methods=["GET", "POST"]),
        Route("/_standin/users", users, methods=["GET", "POST"]),
        Route("/_standin/triggers", trigger, methods=["POST"]),
        Route("/_standin/views", views, methods=["GET"]),
        Route("/_standin/views/{view_id}/submission", submission, methods=["POST"]),
        Route("/_standin/views/{view_id}/answer", answer, methods=["POST"]),
        WebSocketRoute(SOCKET_PATH, standin.hub.serve),
        *workspace_routes(standin, bot_link, stopping),
    ]
    return Starlette(routes=routes, middleware=[Middleware(_LoopbackOnly)])


def _new_user(body: dict[str, Any]) -> User:
    """A user from ``POST /_standin/users``: ``{"id": "U…", "name", "real_name"?, "channels"?: [...]}``."""
    user_id, name = str(body["id"]), str(body.get("name") or "")
    if not (user_id[:1] in ("U", "W") and user_id[1:].isalnum() and user_id.isupper()):
        raise ValueError("id must look like a Slack user id: U or W, then capital letters and digits")
    if not name:
        raise ValueError("give the user's name (handle)")
    return User(user_id, name, str(body.get("real_name") or name), name)


def _add_user(store: Store, user: User, channels: list[str]) -> tuple[int, dict[str, Any]]:
    found = [store.channel(channel) for channel in channels]
    missing = [channel for channel, got in zip(channels, found, strict=True) if got is None]
    if missing:
        return 404, {"ok": False, "error": f"no channel {', '.join(missing)}"}
    if not store.add_user(user):
        return 409, {"ok": False, "error": f"user {user.id} exists already"}
    for channel in found:
        assert channel is not None
        store.add_members(channel.id, [user.id])
    return 200, {"ok": True}


class _LoopbackOnly:
    """Refuses every client that is not on a loopback address."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        if scope["type"] in ("http", "websocket") and not (client and is_loopback(client[0])):
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
            else:
                await json_response(403, {"ok": False, "error": "loopback_only"})(scope, receive, send)
            return
        await self._app(scope, receive, send)


def _object(body: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ValueError("the body must be a JSON object") from None
    if not isinstance(data, dict):
        raise ValueError("the body must be a JSON object")
    return data


def _not_found(error: str) -> Response:
    return json_response(404, {"ok": False, "error": error})
