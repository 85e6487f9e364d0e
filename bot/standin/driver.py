"""Plays Slack towards the bot: slash commands, button clicks and Events API callbacks, shaped and signed
as Slack sends them, to ``POST {bot_url}/slack/events`` or over the stand-in's Socket Mode.

Slack waits 3 seconds for an ack: a later one is a failure (:attr:`Delivery.timed_out`). Events that are
not acked are delivered again on Slack's schedule (soon, after a minute, after five), with the same
``event_id`` and ``X-Slack-Retry-Num``/``X-Slack-Retry-Reason``, unless the bot answers
``X-Slack-No-Retry: 1``; tests pass shorter ``retry_delays``. Response URLs are minted by the stand-in, so
what the bot posts to them after the ack is collected into the result. :class:`Signing` breaks the
signature on purpose for negative tests. Signatures come from :mod:`bot.standin.signing`, never slack_sdk.

Each slash command and click carries a ``trigger_id`` the stand-in minted for the user (good for 3 seconds
of the stand-in's clock; ``trigger_age`` sends one that old already). :meth:`SlackDriver.view_submission`
submits a modal the bot opened with it: the stand-in applies Slack's client-side rules first, then the bot's
answer (``response_action``) to the user's view stack (:mod:`bot.standin.views`).

It stays whole because the three kinds of request share their transports (HTTP, Socket Mode), signing and
response collection.
"""

from __future__ import annotations

import secrets
import string
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal
from urllib.parse import quote, urlencode

import httpx
import orjson

from bot.standin.manifest import AppManifest
from bot.standin.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, signed_headers
from bot.standin.workspace import Workspace

EVENTS_PATH = "/slack/events"
ACK_DEADLINE = 3.0
EVENT_RETRY_DELAYS = (1.0, 60.0, 300.0)
FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
USER_AGENT = "Slackbot 1.0 (+https://api.slack.com/robots)"
POLL_INTERVAL = 0.05


class ClientRefusal(ValueError):
    """Slack's client would not submit that (a required field empty, a value too long, an unknown option)."""


class UnknownUser(LookupError):
    """The stand-in's workspace has no such user; ``known`` lists the ones it has, as ``(id, name)``."""

    def __init__(self, user_id: str, known: list[tuple[str, str]]) -> None:
        names = ", ".join(f"{uid} ({name})" for uid, name in known) or "none"
        super().__init__(f"the stand-in has no user {user_id}; it knows {names}")
        self.user_id = user_id
        self.known = known


@dataclass(frozen=True)
class Signing:
    """How to sign one request; the defaults sign it exactly as Slack does."""

    secret: str | None = None
    """Sign with this secret instead of the driver's (a wrong one)."""
    timestamp: int | None = None
    """Send this ``X-Slack-Request-Timestamp`` (Unix seconds) instead of now (a stale one)."""
    tamper: bool = False
    """Append a space to the body after signing it."""
    omit_signature: bool = False
    omit_timestamp: bool = False


@dataclass
class Delivery:
    """One request to the bot and how it was acked."""

    transport: Literal["http", "socket"]
    status: int | None
    """The HTTP status; None over Socket Mode, or when no answer came."""
    body: str
    """The HTTP answer's body."""
    ack_payload: dict[str, Any] | None
    """The answer's JSON object (HTTP), or the Socket Mode ack's ``payload``."""
    latency: float
    """Seconds until the ack came, or until the driver gave up."""
    timed_out: bool
    """No ack within the deadline (a late ack counts as none, as at Slack)."""
    error: str | None = None
    """Why the request failed to get any answer (connection refused or dropped)."""
    no_retry: bool = False
    """The bot answered ``X-Slack-No-Retry: 1``."""
    retry_num: int = 0
    retry_reason: str = ""
    response_url: str | None = None
    responses: list[dict[str, Any]] = field(default_factory=list)
    """The bodies the bot POSTed to ``response_url``, collected after the ack."""
    view_outcome: dict[str, Any] | None = None
    """For a view submission: how the stand-in applied the bot's answer (``ok``, ``action``, ``errors``,
    ``error``, ``views``: the user's open views after it)."""

    @property
    def acked(self) -> bool:
        if self.timed_out or self.error is not None:
            return False
        return self.transport == "socket" or (self.status is not None and 200 <= self.status < 300)


@dataclass
class EventDelivery:
    """An Events API callback: the first delivery, then Slack's retries."""

    event_id: str
    attempts: list[Delivery]

    @property
    def acked(self) -> bool:
        return self.attempts[-1].acked


@dataclass
class Said:
    """A message a person wrote, and the events Slack sent the bot about it."""

    channel: str
    ts: str
    thread_ts: str | None
    events: list[EventDelivery]

    @property
    def acked(self) -> bool:
        return all(event.acked for event in self.events)


MESSAGE_SUBSCRIPTIONS = {"im": "message.im", "channel": "message.channels", "group": "message.groups"}


class SlackDriver:
    """Sends Slack's requests to the bot at ``bot_url`` (HTTP) or through the stand-in at ``standin_url``."""

    def __init__(
        self,
        standin_url: str,
        *,
        bot_url: str | None = None,
        signing_secret: str = "",
        workspace: Workspace | None = None,
        events_path: str = EVENTS_PATH,
        ack_deadline: float = ACK_DEADLINE,
        retry_delays: Sequence[float] = EVENT_RETRY_DELAYS,
        verification_token: str = "standin-verification-token",  # noqa: S107 (deprecated by Slack, not a secret)
    ) -> None:
        self._events_url = f"{bot_url.rstrip('/')}{events_path}" if bot_url else None
        self._secret = signing_secret
        self.workspace = workspace or Workspace()
        self.ack_deadline = ack_deadline
        self.retry_delays = tuple(retry_delays)
        self._token = verification_token
        self._standin = httpx.Client(base_url=standin_url.rstrip("/"), timeout=ack_deadline + 10)
        self._bot = httpx.Client()

    def close(self) -> None:
        self._standin.close()
        self._bot.close()

    def __enter__(self) -> SlackDriver:
        return self

    def __exit__(
        self, _type: type[BaseException] | None, _value: BaseException | None, _traceback: TracebackType | None
    ) -> None:
        self.close()

    # What Slack sends.

    def slash_command(
        self,
        command: str,
        text: str = "",
        *,
        user: str = "U0ALICE",
        channel: str = "incidents",
        via_socket: bool = False,
        signing: Signing | None = None,
        wait_responses: float = 0.0,
        expect_responses: int = 1,
        trigger_age: float = 0.0,
    ) -> Delivery:
        """``command text`` typed by ``user`` in ``channel``; waits up to ``wait_responses`` seconds for
        ``expect_responses`` posts to the response URL after the ack. :class:`UnknownUser` or LookupError
        for a user or channel the stand-in does not have."""
        target = self._channel(channel)
        user_name = self._user_name(user)
        response_url = self._mint_response_url(target["id"], user)
        fields = {
            "token": self._token,
            "team_id": self.workspace.team_id,
            "team_domain": self.workspace.domain,
            "channel_id": target["id"],
            "channel_name": target["name"],
            "user_id": user,
            "user_name": user_name,
            "command": command,
            "text": text,
            "api_app_id": self.workspace.app_id,
            "is_enterprise_install": "false",
            "response_url": response_url,
            "trigger_id": self._mint_trigger(user, trigger_age),
        }
        if via_socket:
            delivery = self._over_socket("slash_commands", fields, accepts_response_payload=True)
        else:
            delivery = self._over_http(urlencode(fields).encode(), FORM, signing)
        return self._with_responses(delivery, response_url, wait_responses, expect_responses)

    def block_action(
        self,
        channel: str,
        message_ts: str,
        action_id: str,
        *,
        user: str = "U0ALICE",
        value: str | None = None,
        option: str | None = None,
        via_socket: bool = False,
        signing: Signing | None = None,
        wait_responses: float = 0.0,
        expect_responses: int = 1,
        trigger_age: float = 0.0,
    ) -> Delivery:
        """``user`` clicks the button ``action_id`` of the message at ``message_ts`` (as the stand-in holds it), or
        picks the option whose value is ``option`` in the static select menu ``action_id``."""
        target = self._channel(channel)
        answer = self._standin.get(f"/_standin/messages/{quote(target['id'])}/{quote(message_ts)}")
        if answer.status_code == 404:
            raise LookupError(f"no message {message_ts} in {channel}")
        message = answer.raise_for_status().json()
        block_id, element = _find_action(message.get("blocks") or [], action_id)
        response_url = self._mint_response_url(target["id"], user, message_ts)
        name = self._user_name(user)
        action = {
            "action_id": action_id,
            "block_id": block_id,
            "text": element.get("text"),
            "value": element.get("value") if value is None else value,
            "type": element["type"],
            "action_ts": f"{time.time():.6f}",
        }
        state: dict[str, Any] = {}
        if element["type"] == "static_select":  # Slack sends the chosen option, and the menu's state, instead
            chosen = _option(element, option)
            action = {key: action[key] for key in ("action_id", "block_id", "type", "action_ts")}
            action |= {"selected_option": chosen, "placeholder": element.get("placeholder")}
            state = {str(block_id): {action_id: {"type": "static_select", "selected_option": chosen}}}
        payload = {
            "type": "block_actions",
            "user": {"id": user, "username": name, "name": name, "team_id": self.workspace.team_id},
            "api_app_id": self.workspace.app_id,
            "token": self._token,
            "container": {
                "type": "message",
                "message_ts": message_ts,
                "channel_id": target["id"],
                "is_ephemeral": False,
            },
            "trigger_id": self._mint_trigger(user, trigger_age),
            "team": {"id": self.workspace.team_id, "domain": self.workspace.domain},
            "enterprise": None,
            "is_enterprise_install": False,
            "channel": {"id": target["id"], "name": target["name"]},
            "message": message,
            "state": {"values": state},
            "response_url": response_url,
            "actions": [action],
        }
        if via_socket:
            delivery = self._over_socket("interactive", payload)
        else:
            body = urlencode({"payload": orjson.dumps(payload).decode()}).encode()
            delivery = self._over_http(body, FORM, signing)
        return self._with_responses(delivery, response_url, wait_responses, expect_responses)

    def views(self, user: str = "U0ALICE") -> list[dict[str, Any]]:
        """The modals open for ``user``, root first."""
        views: list[dict[str, Any]] = (
            self._standin.get("/_standin/views", params={"user": user}).raise_for_status().json()["views"]
        )
        return views

    def view_submission(
        self,
        values: Mapping[str, str | None] | None = None,
        *,
        user: str = "U0ALICE",
        view_id: str | None = None,
        via_socket: bool = False,
        signing: Signing | None = None,
    ) -> Delivery:
        """``user`` submits their open modal (``view_id``, default the top one) with ``values`` by input block id
        (the text typed, or the value of the option picked; blocks left out keep their initial value).
        ClientRefusal for what Slack's client would not send; the delivery's ``view_outcome`` says how the
        bot's answer was applied."""
        if view_id is None:
            stack = self.views(user)
            if not stack:
                raise LookupError(f"{user} has no modal open")
            view_id = str(stack[-1]["id"])
        submitted = self._standin.post(
            f"/_standin/views/{quote(view_id)}/submission", json={"user": user, "values": dict(values or {})}
        )
        if submitted.status_code == 422:
            raise ClientRefusal(submitted.json()["error"])
        if submitted.status_code == 404:
            raise LookupError(submitted.json()["error"])
        name = self._user_name(user)
        payload = {
            "type": "view_submission",
            "team": {"id": self.workspace.team_id, "domain": self.workspace.domain},
            "user": {"id": user, "username": name, "name": name, "team_id": self.workspace.team_id},
            "api_app_id": self.workspace.app_id,
            "token": self._token,
            "trigger_id": self._mint_trigger(user, 0.0),
            "view": submitted.raise_for_status().json()["view"],
            "response_urls": [],
            "is_enterprise_install": False,
            "enterprise": None,
        }
        if via_socket:
            delivery = self._over_socket("interactive", payload)
        else:
            body = urlencode({"payload": orjson.dumps(payload).decode()}).encode()
            delivery = self._over_http(body, FORM, signing)
        if delivery.acked:
            answer = {"user": user, "ack": delivery.ack_payload}
            delivery.view_outcome = (
                self._standin.post(f"/_standin/views/{quote(view_id)}/answer", json=answer).raise_for_status().json()
            )
        return delivery

    def event(
        self,
        event: Mapping[str, Any],
        *,
        via_socket: bool = False,
        signing: Signing | None = None,
        retry: bool = True,
    ) -> EventDelivery:
        """An Events API ``event_callback`` around ``event``, retried on Slack's schedule until acked."""
        event_id = "Ev" + _random(string.ascii_uppercase + string.digits, 10)
        now = int(time.time())
        callback = {
            "token": self._token,
            "team_id": self.workspace.team_id,
            "api_app_id": self.workspace.app_id,
            "event": {"event_ts": f"{time.time():.6f}", **event},
            "type": "event_callback",
            "event_id": event_id,
            "event_time": now,
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": self.workspace.team_id,
                    "user_id": self.workspace.bot_user.id,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
            "event_context": "4-" + _random(string.ascii_letters + string.digits, 24),
        }
        attempts = [self._deliver_event(callback, via_socket, signing, 0, "")]
        for number, delay in enumerate(self.retry_delays, start=1):
            last = attempts[-1]
            if not retry or last.acked or last.no_retry:
                break
            time.sleep(delay)
            attempts.append(self._deliver_event(callback, via_socket, signing, number, _retry_reason(last)))
        return EventDelivery(event_id, attempts)

    def say(
        self,
        channel: str,
        text: str,
        *,
        user: str = "U0ALICE",
        thread_ts: str | None = None,
        via_socket: bool = False,
        signing: Signing | None = None,
    ) -> Said:
        """``user`` writes ``text`` in ``channel`` (a name or id; in ``thread_ts``'s thread), and Slack tells the
        bot as it would: a ``message`` event when the app subscribes to messages of that kind of conversation
        (``message.im``, ``message.channels``, ``message.groups``) and is in it, and an ``app_mention`` event
        when the text mentions the bot outside a DM. LookupError for an unknown channel or user, PermissionError
        when the user is not in the channel."""
        answer = self._standin.post(
            "/_standin/user_messages", json={"channel": channel, "user": user, "text": text, "thread_ts": thread_ts}
        )
        if answer.status_code == 404:
            raise LookupError(answer.json()["error"])
        if answer.status_code == 403:
            raise PermissionError(answer.json()["error"])
        said = answer.raise_for_status().json()
        subscribed = set(AppManifest.load(self.workspace.manifest).bot_events)
        event: dict[str, Any] = {
            "user": user,
            "text": text,
            "ts": said["ts"],
            "channel": said["channel"],
            "team": self.workspace.team_id,
            "client_msg_id": _random(string.hexdigits.lower(), 32),
            **({"thread_ts": said["thread_ts"]} if said["thread_ts"] else {}),
        }
        events = []
        if said["bot_member"] and MESSAGE_SUBSCRIPTIONS[said["channel_type"]] in subscribed:
            message = {"type": "message", **event, "channel_type": said["channel_type"]}
            events.append(self.event(message, via_socket=via_socket, signing=signing))
        mentioned = f"<@{self.workspace.bot_user.id}>" in text
        if mentioned and said["channel_type"] != "im" and said["bot_member"] and "app_mention" in subscribed:
            events.append(self.event({"type": "app_mention", **event}, via_socket=via_socket, signing=signing))
        return Said(said["channel"], said["ts"], said["thread_ts"], events)

    def direct_message(self, text: str, *, user: str = "U0ALICE", thread_ts: str | None = None) -> Said:
        """``user`` writes ``text`` to the app in their direct message with it (opened first if need be)."""
        channel = self.im_channel(user)
        return self.say(channel, text, user=user, thread_ts=thread_ts)

    def im_channel(self, user: str = "U0ALICE") -> str:
        """The id of ``user``'s direct message with the app (opened if it was not)."""
        opened = self._standin.post("/_standin/ims", json={"user": user})
        if opened.status_code == 404:
            raise LookupError(opened.json()["error"])
        channel: str = opened.raise_for_status().json()["channel"]
        return channel

    def url_verification(self, challenge: str | None = None, *, signing: Signing | None = None) -> Delivery:
        """The handshake Slack sends when the request URL is set; the bot must echo ``challenge``."""
        challenge = challenge or _random(string.ascii_letters + string.digits, 48)
        body = {"token": self._token, "challenge": challenge, "type": "url_verification"}
        return self._over_http(orjson.dumps(body), JSON, signing)

    # Transports.

    def _deliver_event(
        self, callback: dict[str, Any], via_socket: bool, signing: Signing | None, number: int, reason: str
    ) -> Delivery:
        if via_socket:
            delivery = self._over_socket("events_api", callback, retry_attempt=number, retry_reason=reason)
        else:
            retry_headers = {"X-Slack-Retry-Num": str(number), "X-Slack-Retry-Reason": reason} if number else {}
            delivery = self._over_http(orjson.dumps(callback), JSON, signing, retry_headers)
        delivery.retry_num, delivery.retry_reason = number, reason
        return delivery

    def _over_http(
        self, body: bytes, content_type: str, signing: Signing | None, extra_headers: Mapping[str, str] | None = None
    ) -> Delivery:
        if self._events_url is None:
            raise RuntimeError("HTTP delivery needs the bot's URL (bot_url)")
        signing = signing or Signing()
        timestamp = int(time.time()) if signing.timestamp is None else signing.timestamp
        secret = self._secret if signing.secret is None else signing.secret
        headers = {"Content-Type": content_type, "User-Agent": USER_AGENT, **(extra_headers or {})}
        headers |= signed_headers(secret, timestamp, body)
        if signing.omit_timestamp:
            del headers[TIMESTAMP_HEADER]
        if signing.omit_signature:
            del headers[SIGNATURE_HEADER]
        sent = body + b" " if signing.tamper else body
        started = time.monotonic()
        try:
            answer = self._bot.post(self._events_url, content=sent, headers=headers, timeout=self.ack_deadline)
        except httpx.TimeoutException:
            return Delivery("http", None, "", None, time.monotonic() - started, timed_out=True)
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
            return Delivery("http", None, "", None, time.monotonic() - started, timed_out=False, error=error)
        latency = time.monotonic() - started
        return Delivery(
            "http",
            answer.status_code,
            answer.text,
            _json_object(answer.content),
            latency,
            timed_out=latency > self.ack_deadline,
            no_retry=answer.headers.get("X-Slack-No-Retry") == "1",
        )

    def _over_socket(
        self,
        kind: str,
        payload: dict[str, Any],
        *,
        accepts_response_payload: bool = False,
        retry_attempt: int = 0,
        retry_reason: str = "",
    ) -> Delivery:
        envelope = {
            "type": kind,
            "payload": payload,
            "accepts_response_payload": accepts_response_payload,
            "retry_attempt": retry_attempt,
            "retry_reason": retry_reason,
        }
        pushed = self._standin.post("/_standin/socket/envelopes", json=envelope)
        if pushed.status_code == 409:
            return Delivery("socket", None, "", None, 0.0, timed_out=False, error="no Socket Mode connection")
        envelope_id = pushed.raise_for_status().json()["envelope_id"]
        ack = (
            self._standin.get(
                f"/_standin/socket/acks/{envelope_id}",
                params={"timeout": self.ack_deadline},
                timeout=self.ack_deadline + 10,
            )
            .raise_for_status()
            .json()
        )
        if not ack["acked"]:
            return Delivery("socket", None, "", None, self.ack_deadline, timed_out=True)
        return Delivery(
            "socket", None, "", ack["payload"], ack["latency"], timed_out=ack["latency"] > self.ack_deadline
        )

    # The stand-in's side.

    def _channel(self, channel: str) -> dict[str, Any]:
        answer = self._standin.get(f"/_standin/channels/{quote(channel.removeprefix('#'))}")
        if answer.status_code == 404:
            raise LookupError(f"no channel {channel} in the stand-in")
        found: dict[str, Any] = answer.raise_for_status().json()
        return found if "name" in found else {**found, "name": "directmessage"}  # as Slack names a DM in payloads

    def _mint_trigger(self, user: str, age: float) -> str:
        minted = self._standin.post("/_standin/triggers", json={"user": user, "issued_ago": age})
        trigger_id: str = minted.raise_for_status().json()["trigger_id"]
        return trigger_id

    def _mint_response_url(self, channel_id: str, user: str, message_ts: str | None = None) -> str:
        body = {"channel": channel_id, "user": user, "message_ts": message_ts}
        url: str = self._standin.post("/_standin/response_urls", json=body).raise_for_status().json()["url"]
        return url

    def _with_responses(self, delivery: Delivery, response_url: str, wait: float, expect: int) -> Delivery:
        delivery.response_url = response_url
        url_id = response_url.rsplit("/", 1)[-1]
        deadline = time.monotonic() + wait
        while True:
            recorded = self._standin.get(f"/_standin/responses/{url_id}").raise_for_status().json()["responses"]
            if len(recorded) >= expect or time.monotonic() >= deadline:
                delivery.responses = [entry["body"] for entry in recorded]
                return delivery
            time.sleep(POLL_INTERVAL)

    def _user_name(self, user_id: str) -> str:
        users = self._standin.get("/_standin/users").raise_for_status().json()["users"]
        known = {str(user["id"]): str(user["name"]) for user in users}
        if user_id not in known:
            raise UnknownUser(user_id, [(str(user["id"]), str(user["name"])) for user in users if not user["is_bot"]])
        return known[user_id]


def _find_action(blocks: list[Any], action_id: str) -> tuple[str | None, dict[str, Any]]:
    """The block id and element of the interactive element ``action_id`` (in actions blocks or accessories)."""
    for block in blocks:
        elements = block.get("elements", []) if block.get("type") == "actions" else [block.get("accessory")]
        for element in elements:
            if isinstance(element, dict) and element.get("action_id") == action_id:
                return block.get("block_id"), element
    raise LookupError(f"the message has no element with action_id {action_id!r}")


def _option(element: dict[str, Any], value: str | None) -> dict[str, Any]:
    """The option of a static select menu with ``value``, as Slack sends it."""
    for option in element.get("options") or []:
        if isinstance(option, dict) and option.get("value") == value:
            return {"text": option.get("text"), "value": value}
    raise LookupError(f"the menu {element.get('action_id')!r} has no option {value!r}")


def _retry_reason(failed: Delivery) -> str:
    if failed.transport == "socket":
        return "timeout"
    if failed.timed_out:
        return "http_timeout"
    return "connection_failed" if failed.error is not None else "http_error"


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


def _random(alphabet: str, length: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))
