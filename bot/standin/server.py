"""Runs the stand-in: uvicorn on a loopback address (127.0.0.1 unless told another, never a public one) in a
background thread.

``StandinServer(path).start()`` returns the base URL; point slack_sdk at it with
``WebClient(base_url=f"{url}/api/", token=workspace.bot_token)``. The methods below are the in-process
twins of the ``/_standin/`` endpoints.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import uvicorn
from starlette.types import Scope

from bot.loopback import is_loopback
from bot.standin.app import Standin, build_app
from bot.standin.clock import StandinClock
from bot.standin.faults import Fault, FaultKind
from bot.standin.socket_mode import Ack
from bot.standin.workspace import User, Workspace
from bot.standin.workspace.actions import BotLink
from bot.threads import NamedThread

HOST = "127.0.0.1"
START_TIMEOUT = 10.0
_T = TypeVar("_T")


class StandinServer:
    """The stand-in over the SQLite file ``db_path``, served on ``port`` (0: a free one), for ``workspace``
    (default: :meth:`Workspace.default`). Rate limits are on unless ``rate_limits=False``; ``clock`` is the
    time source of the rules that depend on time (tests advance it with :meth:`advance_clock`)."""

    def __init__(
        self,
        db_path: Path,
        *,
        port: int = 0,
        host: str = HOST,
        workspace: Workspace | None = None,
        rate_limits: bool = True,
        clock: StandinClock | None = None,
    ) -> None:
        if not is_loopback(host):
            raise ValueError(f"the stand-in serves loopback only, and {host} is not a loopback address")
        self.db_path = db_path
        self.host = host
        self.workspace = workspace or Workspace.default()
        self.clock = clock or StandinClock()
        self._rate_limits = rate_limits
        self._port = port
        self._standin: Standin | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._url: str | None = None
        self._stopping = threading.Event()
        self.bot_link: BotLink | None = None
        """Where the local workspace page reaches the bot (set by whoever runs both, see :meth:`link_bot`)."""

    def link_bot(self, link: BotLink | None) -> None:
        """Tell the workspace page where the bot is (its URL, signing secret and ingest token)."""
        self.bot_link = link

    @property
    def url(self) -> str:
        """The base URL, ``http://127.0.0.1:<port>``."""
        if self._url is None:
            raise RuntimeError("the stand-in is not running")
        return self._url

    @property
    def api_url(self) -> str:
        """The base URL for slack_sdk's ``WebClient(base_url=...)``."""
        return f"{self.url}/api/"

    def start(self) -> str:
        if self._url is not None:
            raise RuntimeError("the stand-in is running already")
        self._standin = Standin.open(self.db_path, self.workspace, clock=self.clock, rate_limits=self._rate_limits)
        config = uvicorn.Config(
            build_app(self._standin, self._drop_connection, lambda: self.bot_link, self._stopping.is_set),
            host=self.host,
            port=self._port,
            lifespan="off",
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=2,
        )
        server = uvicorn.Server(config)
        self._server = server
        self._stopping.clear()
        self._thread = NamedThread(target=lambda: asyncio.run(self._serve(server)), name="standin", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                self.stop()
                raise RuntimeError(f"the Slack stand-in did not start on {self.host}:{self._port}")
            time.sleep(0.01)
        host = f"[{self.host}]" if ":" in self.host else self.host
        self._url = f"http://{host}:{server.servers[0].sockets[0].getsockname()[1]}"
        return self._url

    async def _serve(self, server: uvicorn.Server) -> None:
        self._loop = asyncio.get_running_loop()
        await server.serve()

    def stop(self) -> None:
        """Stop serving and close the SQLite file; idempotent."""
        self._stopping.set()  # the workspace page's live feeds end, so that shutdown need not wait for them
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=30)
        if self._standin is not None:
            self._standin.store.close()
        self._standin = self._server = self._thread = self._loop = self._url = None

    def __enter__(self) -> StandinServer:
        self.start()
        return self

    def __exit__(
        self, _type: type[BaseException] | None, _value: BaseException | None, _traceback: TracebackType | None
    ) -> None:
        self.stop()

    def _drop_connection(self, scope: Scope) -> None:
        """Abort, without an answer, the connection a request came on."""
        client = tuple(scope.get("client") or ())
        assert self._server is not None
        for connection in list(self._server.server_state.connections):
            if getattr(connection, "client", None) == client:
                connection.transport.abort()

    @property
    def _parts(self) -> Standin:
        if self._standin is None:
            raise RuntimeError("the stand-in is not running")
        return self._standin

    def _on_loop(self, coroutine: Coroutine[Any, Any, _T], timeout: float) -> _T:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    # The in-process twins of /_standin/.

    def add_fault(
        self,
        fault: FaultKind,
        *,
        method: str | None = None,
        channel: str | None = None,
        times: int | None = 1,
        retry_after: int = 1,
        status: int = 500,
        seconds: float = 1.0,
        error: str = "internal_error",
    ) -> None:
        """Script a fault (see :mod:`bot.standin.faults`)."""
        self._parts.faults.add(Fault(fault, method, channel, times, retry_after, status, seconds, error))

    def clear_faults(self) -> None:
        self._parts.faults.clear()

    def messages(self, channel: str) -> list[dict[str, Any]]:
        """The channel's messages, as ``GET /_standin/messages`` lists them; KeyError for an unknown channel."""
        view = self._parts.inspector.messages(channel)
        if view is None:
            raise KeyError(channel)
        messages: list[dict[str, Any]] = view["messages"]
        return messages

    def message(self, channel: str, ts: str) -> dict[str, Any] | None:
        """One message as ``conversations.history`` shows it."""
        return self._parts.inspector.message(channel, ts)

    def channel(self, channel: str) -> dict[str, Any] | None:
        """A channel as ``conversations.info`` shows it, plus ``members``."""
        return self._parts.inspector.channel(channel)

    def ephemerals(self, channel: str) -> list[dict[str, Any]]:
        return self._parts.inspector.ephemerals(channel) or []

    def delete_message(self, channel: str, ts: str) -> bool:
        return self._parts.inspector.delete_message(channel, ts)

    def calls(self, method: str | None = None) -> list[dict[str, Any]]:
        """Recorded Web API calls: ``method``, ``time``, ``params``, ``status``, ``error``, ``fault``."""
        return self._parts.store.calls(method)

    def mint_response_url(self, channel: str, user: str, message_ts: str | None = None) -> str:
        target = self._parts.store.channel(channel)
        if target is None:
            raise KeyError(channel)
        return self._parts.response_urls.mint(self.url, target, user, message_ts)

    def responses(self, response_url: str) -> list[dict[str, Any]]:
        """What was posted to a response URL (or its id): ``time``, ``body``, ``error`` each."""
        view = self._parts.response_urls.view(response_url.rstrip("/").rsplit("/", 1)[-1])
        return view["responses"] if view else []

    def push_envelope(
        self,
        kind: str,
        payload: dict[str, Any],
        *,
        accepts_response_payload: bool = False,
        retry_attempt: int = 0,
        retry_reason: str = "",
        connect_timeout: float = 5.0,
    ) -> str:
        """Send a Socket Mode envelope to the connected client; its envelope id."""
        push = self._parts.hub.push(
            kind,
            payload,
            accepts_response_payload=accepts_response_payload,
            retry_attempt=retry_attempt,
            retry_reason=retry_reason,
            connect_timeout=connect_timeout,
        )
        return self._on_loop(push, connect_timeout + 5)

    def wait_for_ack(self, envelope_id: str, timeout: float = 3.0) -> Ack | None:
        return self._on_loop(self._parts.hub.wait_for_ack(envelope_id, timeout), timeout + 5)

    def disconnect_socket(self, reason: str = "refresh_requested") -> int:
        """Send Slack's ``disconnect`` message to every Socket Mode connection; how many there were."""
        return self._on_loop(self._parts.hub.disconnect(reason), 5)

    @property
    def socket_connections(self) -> int:
        return self._parts.hub.connections

    def set_rate_limits(self, enabled: bool) -> None:
        """Turn Slack's per-method rate limits on or off (``POST /_standin/ratelimits``)."""
        self._parts.rate_limits.set_enabled(enabled)

    def advance_clock(self, seconds: float) -> None:
        """Move the stand-in's clock forward (``POST /_standin/clock``)."""
        self.clock.advance(seconds)

    def views(self, user: str) -> list[dict[str, Any]]:
        """The modals open for ``user``, root first (``GET /_standin/views?user=``)."""
        return self._parts.views.stack(user)

    def add_user(self, user: User, channels: tuple[str, ...] = ()) -> None:
        """Add a workspace member, in ``channels`` (``POST /_standin/users``); ValueError if the id is taken."""
        if not self._parts.store.add_user(user):
            raise ValueError(f"user {user.id} exists already")
        for ref in channels:
            channel = self._parts.store.channel(ref)
            if channel is None:
                raise KeyError(ref)
            self._parts.store.add_members(channel.id, [user.id])
