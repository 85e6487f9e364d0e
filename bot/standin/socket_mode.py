"""Socket Mode: ``apps.connections.open`` hands out ``ws://…/_standin/socket?ticket=…``; a client that
connects gets Slack's ``hello``, then the envelopes the driver pushes, and acks each by its envelope id.
:meth:`SocketHub.disconnect` sends Slack's ``disconnect`` message (``refresh_requested``, say) to every
connection and closes them :data:`DISCONNECT_GRACE` seconds later; a client is expected to open a new one.

Everything but :meth:`SocketHub.issue_url` runs on the server's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import threading
import uuid
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.websockets import WebSocket

SOCKET_PATH = "/_standin/socket"
DISCONNECT_GRACE = 2.0
DISCONNECT_REASONS = ("refresh_requested", "warning", "link_disabled")


@dataclass(frozen=True)
class Ack:
    envelope_id: str
    payload: dict[str, Any] | None
    latency: float
    """Seconds from sending the envelope to receiving the ack."""


class NoConnection(Exception):
    """No Socket Mode client is connected to take the envelope."""


class SocketHub:
    def __init__(self, app_id: str) -> None:
        self._app_id = app_id
        self._lock = threading.Lock()
        self._tickets: set[str] = set()
        self._sockets: list[WebSocket] = []
        self._connected = asyncio.Condition()
        self._pending: dict[str, tuple[float, asyncio.Future[Ack]]] = {}
        self._closing: set[asyncio.Task[None]] = set()

    def issue_url(self, base_url: str) -> str:
        """A WebSocket URL with a fresh ticket, for ``apps.connections.open`` (any thread)."""
        ticket = secrets.token_urlsafe(16)
        with self._lock:
            self._tickets.add(ticket)
        scheme, _, rest = base_url.partition("://")
        return f"{'wss' if scheme == 'https' else 'ws'}://{rest}{SOCKET_PATH}?ticket={ticket}&app_id={self._app_id}"

    async def serve(self, websocket: WebSocket) -> None:
        """One Socket Mode connection: check the ticket, say hello, then take acks until it closes."""
        with self._lock:
            known = websocket.query_params.get("ticket") in self._tickets
        if not known:
            await websocket.close(code=1008)
            return
        await websocket.accept()
        hello = {
            "type": "hello",
            "num_connections": len(self._sockets) + 1,
            "debug_info": {"host": "standin", "build_number": 1, "approximate_connection_time": 18060},
            "connection_info": {"app_id": self._app_id},
        }
        await websocket.send_text(orjson.dumps(hello).decode())
        async with self._connected:
            self._sockets.append(websocket)
            self._connected.notify_all()
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                self._take_ack(message.get("text") or message.get("bytes") or b"")
        finally:
            self._sockets.remove(websocket)

    def _take_ack(self, raw: str | bytes) -> None:
        try:
            ack = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return
        if not isinstance(ack, dict) or ack.get("envelope_id") not in self._pending:
            return
        envelope_id = ack["envelope_id"]
        sent_at, future = self._pending[envelope_id]
        if not future.done():
            payload = ack.get("payload")
            latency = asyncio.get_running_loop().time() - sent_at
            future.set_result(Ack(envelope_id, payload if isinstance(payload, dict) else None, latency))

    async def push(
        self,
        kind: str,
        payload: dict[str, Any],
        *,
        accepts_response_payload: bool = False,
        retry_attempt: int = 0,
        retry_reason: str = "",
        connect_timeout: float = 5.0,
    ) -> str:
        """Send an envelope to the newest connection (waiting ``connect_timeout`` for one); its id."""
        envelope_id = str(uuid.uuid4())
        envelope: dict[str, Any] = {
            "envelope_id": envelope_id,
            "payload": payload,
            "type": kind,
            "accepts_response_payload": accepts_response_payload,
        }
        if kind == "events_api":
            envelope |= {"retry_attempt": retry_attempt, "retry_reason": retry_reason}
        loop = asyncio.get_running_loop()
        async with self._connected:
            try:
                await asyncio.wait_for(self._connected.wait_for(lambda: bool(self._sockets)), connect_timeout)
            except TimeoutError:
                raise NoConnection("no Socket Mode client is connected") from None
            websocket = self._sockets[-1]
        self._pending[envelope_id] = (loop.time(), loop.create_future())
        await websocket.send_text(orjson.dumps(envelope).decode())
        return envelope_id

    @property
    def connections(self) -> int:
        return len(self._sockets)

    async def disconnect(self, reason: str = "refresh_requested") -> int:
        """Tell every connection to go (Slack's ``disconnect`` message), close them after the grace period;
        how many there were."""
        if reason not in DISCONNECT_REASONS:
            raise ValueError(f"reason must be one of {', '.join(DISCONNECT_REASONS)}")
        message = orjson.dumps({"type": "disconnect", "reason": reason, "debug_info": {"host": "standin"}}).decode()
        sockets = list(self._sockets)
        for websocket in sockets:
            await websocket.send_text(message)
        if reason != "warning":
            task = asyncio.create_task(self._close_later(sockets))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        return len(sockets)

    async def _close_later(self, sockets: list[WebSocket]) -> None:
        await asyncio.sleep(DISCONNECT_GRACE)
        for websocket in sockets:
            if websocket in self._sockets:
                with contextlib.suppress(RuntimeError):  # the client closed it meanwhile
                    await websocket.close(code=1001)

    async def wait_for_ack(self, envelope_id: str, timeout: float) -> Ack | None:
        """The envelope's ack, waiting up to ``timeout`` seconds for it; None if none came; KeyError if unknown."""
        _sent_at, future = self._pending[envelope_id]
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            return None
