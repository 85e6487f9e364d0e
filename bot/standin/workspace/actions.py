"""What a person does on the local workspace page, sent to the bot as Slack would send it: messages as Events API
callbacks, slash commands, button clicks and select choices as signed requests, modal submissions as
``view_submission`` (all through :class:`~bot.standin.driver.SlackDriver`), and test alerts to the bot's own
Alertmanager webhook with its token. Never a side door into the bot's database.

The bot is reached over HTTP when its link names its URL and signing secret, else over the stand-in's Socket Mode
when a client is connected. The ack of a slash command that carries a message is shown to the user who typed it
as an ephemeral message, as Slack's client shows it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from bot.standin.driver import ClientRefusal, Delivery, SlackDriver
from bot.standin.store import Content, Store
from bot.standin.workspace import Workspace
from bot.standin.workspace.alerts import samples

ALERT_PATH = "/alerts/alertmanager"


def _no_token() -> str | None:
    return None


@dataclass(frozen=True)
class BotLink:
    """Where the bot is: its base URL (``/slack/events``, ``/alerts/…``), the signing secret it checks (None: it
    receives over Socket Mode only), and its ingest token (read when a test alert is sent)."""

    url: str | None
    signing_secret: str | None
    ingest_token: Callable[[], str | None] = field(default=_no_token)


class Refused(Exception):
    """The page's request cannot be done: the HTTP status to answer and why, in a sentence."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class PageActions:
    """One request's worth of actions, for the stand-in at ``standin_url``."""

    def __init__(
        self, standin_url: str, workspace: Workspace, store: Store, link: BotLink | None, socket_connected: bool
    ) -> None:
        self._standin_url = standin_url
        self._workspace = workspace
        self._store = store
        self._link = link
        self._http = link is not None and link.url is not None and link.signing_secret is not None
        self._socket = socket_connected

    def _driver(self) -> SlackDriver:
        if not (self._http or self._socket):
            raise Refused(409, "no bot is connected to this stand-in (start `incibot serve`, or pass --bot-url)")
        link = self._link
        return SlackDriver(
            self._standin_url,
            bot_url=link.url if self._http and link else None,
            signing_secret=(link.signing_secret or "") if link else "",
            workspace=self._workspace,
            retry_delays=(),  # the page says the bot did not ack rather than retry for minutes
        )

    def say(self, user: str, channel: str, text: str, thread_ts: str | None) -> dict[str, Any]:
        with self._driver() as driver:
            try:
                said = driver.say(channel, text, user=user, thread_ts=thread_ts, via_socket=not self._http)
            except PermissionError as exc:
                raise Refused(403, str(exc)) from None
            except LookupError as exc:
                raise Refused(404, str(exc)) from None
        failed = [attempt for event in said.events for attempt in event.attempts[-1:] if not attempt.acked]
        if failed:
            raise Refused(502, f"the bot did not ack the message event ({_why(failed[0])})")
        return {"ok": True, "channel": said.channel, "ts": said.ts}

    def command(self, user: str, channel: str, line: str) -> dict[str, Any]:
        name, _, text = line.strip().partition(" ")
        with self._driver() as driver:
            try:
                delivery = driver.slash_command(
                    name, text.strip(), user=user, channel=channel, via_socket=not self._http
                )
            except LookupError as exc:
                raise Refused(404, str(exc)) from None
        _check(delivery, f"the command {name}")
        answer = delivery.ack_payload or {}
        if answer.get("text") or answer.get("blocks"):
            target = self._store.channel(channel)
            assert target is not None  # the driver found it
            self._store.add_ephemeral(
                target.id, user, Content(str(answer.get("text") or ""), answer.get("blocks")), None
            )
        return {"ok": True}

    def click(
        self, user: str, channel: str, ts: str, action_id: str, value: str | None, option: str | None
    ) -> dict[str, Any]:
        with self._driver() as driver:
            try:
                delivery = driver.block_action(
                    channel, ts, action_id, user=user, value=value, option=option, via_socket=not self._http
                )
            except LookupError as exc:
                raise Refused(404, str(exc)) from None
        _check(delivery, "the click")
        return {"ok": True}

    def submit(self, user: str, view_id: str, values: Mapping[str, str | None]) -> dict[str, Any]:
        with self._driver() as driver:
            try:
                delivery = driver.view_submission(values, user=user, view_id=view_id, via_socket=not self._http)
            except ClientRefusal as exc:
                raise Refused(422, str(exc)) from None
            except LookupError as exc:
                raise Refused(404, str(exc)) from None
        _check(delivery, "the submission")
        return {"ok": True, "outcome": delivery.view_outcome}

    def test_alert(self, name: str) -> dict[str, Any]:
        sample = next((sample for sample in samples() if sample.name == name), None)
        if sample is None:
            raise Refused(404, f"no sample alert {name!r}")
        link = self._link
        if link is None or link.url is None:
            raise Refused(409, "the stand-in does not know the bot's URL (start `incibot serve`, or pass --bot-url)")
        token = link.ingest_token()
        if token is None:
            raise Refused(409, "no ingest token (set INCIBOT_INGEST_TOKENS, or run `incibot serve` once)")
        url = link.url.rstrip("/") + ALERT_PATH
        try:
            answer = httpx.post(
                url, json=sample.stamped(datetime.now(UTC)), headers={"Authorization": f"Bearer {token}"}, timeout=10
            )
        except httpx.HTTPError as exc:
            raise Refused(502, f"cannot reach the bot at {url}: {exc}") from None
        if not answer.is_success:
            raise Refused(502, f"the bot answered HTTP {answer.status_code}: {answer.text[:200]}")
        return {"ok": True, "sample": sample.name, "status": answer.status_code}


def _check(delivery: Delivery, what: str) -> None:
    if delivery.status == 401:
        raise Refused(502, f"the bot refused the signature of {what} (401)")
    if not delivery.acked:
        raise Refused(502, f"the bot did not ack {what} ({_why(delivery)})")


def _why(delivery: Delivery) -> str:
    if delivery.error:
        return delivery.error
    return "timed out" if delivery.timed_out else f"HTTP {delivery.status}"
