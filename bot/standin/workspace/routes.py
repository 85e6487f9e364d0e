"""The local workspace page's routes on the stand-in's HTTP server.

- ``GET /?as=USER&channel=ID&thread=TS`` (``dm=1``: the user's direct message with the app, opened if need be):
  the page, drawn whole on the server;
- ``GET /events?page=TOKEN`` (or ``as``, ``channel``, ``thread``): server-sent events keeping it live
  (:mod:`bot.standin.workspace.feed`);
- ``POST /workspace/messages`` ``{"as", "channel", "text", "thread_ts"?}``, ``/workspace/commands``
  ``{"as", "channel", "text": "/incident list"}``, ``/workspace/actions`` ``{"as", "channel", "ts", "action_id",
  "value"?, "option"?}``, ``/workspace/views/{id}/submission`` ``{"as", "values": {BLOCK_ID: VALUE}}``,
  ``/workspace/views/{id}/close`` ``{"as"}``, ``/workspace/alerts`` ``{"sample"}``: what the person does, sent to
  the bot as Slack would (:mod:`bot.standin.workspace.actions`); each answers ``{"ok": true, …}`` or
  ``{"ok": false, "error"}``;
- ``GET /workspace/static/{name}``: the page's script and style sheet.

The POSTs take JSON only (a cross-site form cannot send it without a preflight the stand-in never grants), and
every route refuses a ``Host`` that is not loopback (DNS rebinding).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from importlib import resources
from typing import TYPE_CHECKING, Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response, StreamingResponse
from starlette.routing import Route

from bot.loopback import is_loopback
from bot.standin.endpoint import base_url, json_response
from bot.standin.store import Channel
from bot.standin.workspace.actions import BotLink, PageActions, Refused
from bot.standin.workspace.alerts import samples
from bot.standin.workspace.conversations import Conversations, ReadMarks
from bot.standin.workspace.feed import Feed, Feeds
from bot.standin.workspace.page import PageParts, render_page
from bot.standin.workspace.render import render_view

if TYPE_CHECKING:  # app.py imports this module
    from bot.standin.app import Standin

POLL = 0.1  # seconds between looks at the stand-in's state
HEARTBEAT = 15.0
STATIC_TYPES = {"workspace.js": "text/javascript; charset=utf-8", "workspace.css": "text/css; charset=utf-8"}


def workspace_routes(
    standin: Standin, bot_link: Callable[[], BotLink | None], stopping: Callable[[], bool]
) -> list[Route]:
    """The page's routes; ``bot_link`` says where the bot is now, ``stopping`` when live feeds must end."""
    marks, feeds = ReadMarks(), Feeds()
    store, workspace = standin.store, standin.workspace

    def people_of(user: str) -> Conversations:
        return Conversations(store, standin.api, workspace, marks, user)

    def default_user() -> str:
        return next((user.id for user in store.users() if not user.is_bot), workspace.bot_user.id)

    def pick_channel(conversations: Conversations, wanted: str | None, dm: bool) -> Channel | None:
        if dm:
            channel, _existed = store.open_im(conversations.user, workspace.bot_user.id)
            return channel
        visible = conversations.visible()
        found = next((c for c in visible if wanted in (c.id, c.name, "#" + c.name)), None) if wanted else None
        return found or next((c for c in visible if c.name == "incidents"), visible[0] if visible else None)

    def draw(user: str | None, wanted: str | None, thread_ts: str | None, dm: bool) -> tuple[int, str]:
        user = user or default_user()
        if store.user(user) is None:
            return 404, f"no user {user} in the stand-in"
        conversations = people_of(user)
        channel = pick_channel(conversations, wanted, dm)
        if channel is None:
            return 404, f"no conversation {wanted} that {user} can see"
        users, channels = conversations.lookups()
        history = conversations.history(channel)
        thread = conversations.thread(channel, thread_ts) if thread_ts else []
        conversations.mark_read(channel, history)
        unread = conversations.unread()
        feed = Feed(conversations, channel, thread_ts if thread else None, standin.views)
        feed.prime(history, thread, unread)
        stack = standin.views.stack(user)
        parts = PageParts(
            team=workspace.team_name,
            user=user,
            people=[u for u in store.users() if not u.is_bot],
            groups={group.removeprefix("S0").lower(): list(members) for group, members in workspace.user_groups},
            channels=[(c, conversations.title(c), unread.get(c.id, 0)) for c in conversations.visible()],
            channel=channel,
            title=conversations.title(channel),
            messages=[conversations.html(shown, users, channels) for shown in history],
            thread_ts=thread_ts if thread else None,
            thread=[conversations.html(shown, users, channels) for shown in thread],
            modal=render_view(stack[-1], users, channels) if stack else "",
            samples=samples(),
            feed=feeds.add(feed),
            member=user in store.members(channel.id),
        )
        return 200, render_page(parts)

    async def page(request: Request) -> Response:
        query = request.query_params
        status, html = await run_in_threadpool(
            draw, query.get("as"), query.get("channel"), query.get("thread"), "dm" in query
        )
        return HTMLResponse(html, status) if status == 200 else json_response(status, {"ok": False, "error": html})

    def reopen(query: Mapping[str, str]) -> Feed | None:
        """A feed for a page whose own was forgotten (a restart): it sends everything again."""
        user = query.get("as", "")
        if store.user(user) is None:
            return None
        conversations = people_of(user)
        channel = pick_channel(conversations, query.get("channel"), dm=False)
        return None if channel is None else Feed(conversations, channel, query.get("thread") or None, standin.views)

    async def events(request: Request) -> Response:
        feed = feeds.take(request.query_params.get("page", "")) or await run_in_threadpool(reopen, request.query_params)
        if feed is None:
            return json_response(404, {"ok": False, "error": "no such page; reload it"})

        async def stream() -> AsyncIterator[bytes]:
            yield b"retry: 1000\n\n"
            seen: tuple[object, ...] = ()
            quiet = 0.0
            while not stopping() and not await request.is_disconnected():
                version = (store.version, feed.view_key())  # modals change without a store write
                if version != seen:
                    seen, quiet = version, 0.0
                    for name, data in await run_in_threadpool(feed.changes):
                        yield f"event: {name}\ndata: ".encode() + orjson.dumps(data) + b"\n\n"
                elif quiet >= HEARTBEAT:
                    quiet = 0.0
                    yield b": still here\n\n"
                await asyncio.sleep(POLL)
                quiet += POLL

        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)

    def actions(request: Request) -> PageActions:
        return PageActions(base_url(request), workspace, store, bot_link(), standin.hub.connections > 0)

    def act(run: Callable[[PageActions, dict[str, Any]], dict[str, Any]]) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            if "application/json" not in request.headers.get("content-type", ""):
                return json_response(415, {"ok": False, "error": "send JSON"})
            try:
                body = orjson.loads(await request.body())
                if not isinstance(body, dict):
                    raise ValueError("the body must be a JSON object")
                body |= request.path_params
                answer = await run_in_threadpool(run, actions(request), body)
            except Refused as exc:
                return json_response(exc.status, {"ok": False, "error": exc.reason})
            except (ValueError, KeyError, TypeError) as exc:
                return json_response(400, {"ok": False, "error": f"bad request: {exc}"})
            return json_response(200, answer)

        return endpoint

    def send(page: PageActions, body: dict[str, Any]) -> dict[str, Any]:
        text = str(body["text"])
        if not text.strip():
            raise ValueError("write something")
        return page.say(str(body["as"]), str(body["channel"]), text, _optional(body, "thread_ts"))

    def command(page: PageActions, body: dict[str, Any]) -> dict[str, Any]:
        text = str(body["text"]).strip()
        if not text.startswith("/"):
            raise ValueError("a slash command starts with /")
        return page.command(str(body["as"]), str(body["channel"]), text)

    def click(page: PageActions, body: dict[str, Any]) -> dict[str, Any]:
        return page.click(
            str(body["as"]),
            str(body["channel"]),
            str(body["ts"]),
            str(body["action_id"]),
            _optional(body, "value"),
            _optional(body, "option"),
        )

    def submit(page: PageActions, body: dict[str, Any]) -> dict[str, Any]:
        values = body.get("values") or {}
        if not isinstance(values, dict):
            raise ValueError("values must be an object")
        user, view_id = str(body["as"]), str(body["view_id"])
        answer = page.submit(user, view_id, {str(k): None if v is None else str(v) for k, v in values.items()})
        errors = (answer.get("outcome") or {}).get("errors")
        stack = standin.views.stack(user)
        if errors and stack:  # the bot refused some values: the view again, with its errors
            users, channels = people_of(user).lookups()
            answer["html"] = render_view(stack[-1], users, channels, errors=errors)
        return answer

    def close(_page: PageActions, body: dict[str, Any]) -> dict[str, Any]:
        """Slack's client closing the modal (the bot is told only when it asked, which incibot never does)."""
        outcome = standin.views.answer(str(body["view_id"]), str(body["as"]), {"response_action": "clear"})
        return {"ok": True, "outcome": outcome}

    def alert(page: PageActions, body: dict[str, Any]) -> dict[str, Any]:
        return page.test_alert(str(body["sample"]))

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in STATIC_TYPES:
            return json_response(404, {"ok": False, "error": "not_found"})
        text = resources.files(__package__).joinpath("static", name).read_text()
        return Response(text, media_type=STATIC_TYPES[name], headers={"Cache-Control": "no-cache"})

    async def favicon(_request: Request) -> Response:
        return Response(status_code=204)

    routes = [
        Route("/", page, methods=["GET"]),
        Route("/events", events, methods=["GET"]),
        Route("/favicon.ico", favicon, methods=["GET"]),
        Route("/workspace/static/{name}", static, methods=["GET"]),
        Route("/workspace/messages", act(send), methods=["POST"]),
        Route("/workspace/commands", act(command), methods=["POST"]),
        Route("/workspace/actions", act(click), methods=["POST"]),
        Route("/workspace/views/{view_id}/submission", act(submit), methods=["POST"]),
        Route("/workspace/views/{view_id}/close", act(close), methods=["POST"]),
        Route("/workspace/alerts", act(alert), methods=["POST"]),
    ]
    return [_LoopbackHost.wrap(route) for route in routes]


def _optional(body: Mapping[str, Any], key: str) -> str | None:
    value = body.get(key)
    return None if value in (None, "") else str(value)


class _LoopbackHost:
    """Refuses a request whose ``Host`` is not a loopback name (a page on another site, reached by DNS rebinding)."""

    @staticmethod
    def wrap(route: Route) -> Route:
        inner = route.endpoint

        async def guarded(request: Request) -> Response:
            host = request.url.hostname or ""
            if host != "localhost" and not is_loopback(host):
                return json_response(403, {"ok": False, "error": "loopback_only"})
            answer: Response = await inner(request)
            return answer

        return Route(route.path, guarded, methods=sorted(route.methods or ()))
