"""The Slack stand-in over real loopback HTTP: slack_sdk's own clients against its Web API and Socket Mode,
its faults, persistence and response URLs, and the driver's signed requests checked by slack_sdk's verifier."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.error import URLError
from urllib.parse import parse_qs

import httpx
import orjson
import pytest
import yaml
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import Clock, SignatureVerifier
from slack_sdk.socket_mode.builtin import SocketModeClient
from slack_sdk.socket_mode.client import BaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.slack.scopes import METHODS
from bot.standin import signing
from bot.standin.app import Standin, build_app
from bot.standin.blocks_limits import ContentError, check_message
from bot.standin.driver import Signing, SlackDriver
from bot.standin.grants import accepted
from bot.standin.server import StandinServer
from bot.standin.workspace import BOT_USER_ID, DEFAULT_APP_TOKEN, DEFAULT_BOT_TOKEN, ChannelSeed, Workspace
from tests.support import serve_in_thread, wait_for

SECRET = "standin-test-signing-secret"
FAST_RETRIES = (0.01, 0.02, 0.03)
WORKSPACE = Workspace(
    channels=(
        ChannelSeed("C0INCIDENTS", "incidents", (BOT_USER_ID, "U0ALICE", "U0BOB")),
        ChannelSeed("C0RANDOM", "random", ("U0ALICE", "U0BOB")),
        ChannelSeed("C0SECRET", "secret-ops", ("U0CAROL",), is_private=True),
    )
)


@pytest.fixture(scope="module")
def every_scope(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A manifest granting every bot scope of every method the stand-in answers: these tests check the
    methods' answers; scopes have their own tests (tests/test_standin_rules.py)."""
    scopes = sorted({scope for method, entry in METHODS.items() if not entry.app_token for scope in accepted(method)})
    path = tmp_path_factory.mktemp("manifest") / "every-scope.yml"
    path.write_text(yaml.safe_dump({"oauth_config": {"scopes": {"bot": scopes}}}))
    return path


@pytest.fixture
def standin(tmp_path: Path, every_scope: Path) -> Iterator[StandinServer]:
    workspace = replace(WORKSPACE, manifest=every_scope)
    with StandinServer(tmp_path / "standin.sqlite", workspace=workspace, rate_limits=False) as server:
        yield server


@pytest.fixture
def slack(standin: StandinServer) -> WebClient:
    return WebClient(base_url=standin.api_url, token=DEFAULT_BOT_TOKEN, retry_handlers=[], timeout=10)


def error_of(call: Any, *args: Any, **kwargs: Any) -> SlackApiError:
    with pytest.raises(SlackApiError) as caught:
        call(*args, **kwargs)
    return caught.value


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


# The Web API, through slack_sdk.


def test_auth_test_answers_for_the_bot(slack: WebClient) -> None:
    answer = slack.auth_test()
    assert answer["ok"] is True
    assert (answer["user_id"], answer["user"], answer["team_id"]) == (BOT_USER_ID, "incibot", WORKSPACE.team_id)


def test_post_by_name_and_by_id_lands_in_the_same_channel(standin: StandinServer, slack: WebClient) -> None:
    first = slack.chat_postMessage(channel="incidents", text="by name")
    second = slack.chat_postMessage(channel="#incidents", text="by #name", blocks=[section("*hi*")])
    third = slack.chat_postMessage(channel="C0INCIDENTS", text="by id")
    assert first["channel"] == second["channel"] == third["channel"] == "C0INCIDENTS"
    assert first["ts"] < second["ts"] < third["ts"]
    assert second["message"]["blocks"] == [section("*hi*")]
    assert second["message"]["user"] == BOT_USER_ID

    view = httpx.get(f"{standin.url}/_standin/messages", params={"channel": "incidents"}).json()
    assert view["channel"] == "incidents"
    assert [message["text"] for message in view["messages"]] == ["by name", "by #name", "by id"]
    assert set(view["messages"][0]) == {"ts", "user", "text", "blocks", "metadata", "edits", "replies"}
    assert view["messages"] == standin.messages("C0INCIDENTS")


def test_update_keeps_the_previous_versions(standin: StandinServer, slack: WebClient) -> None:
    posted = slack.chat_postMessage(channel="incidents", text="v1", blocks=[section("one")])
    updated = slack.chat_update(channel=posted["channel"], ts=posted["ts"], text="v2")
    slack.chat_update(channel=posted["channel"], ts=posted["ts"], text="v3", blocks=[])
    assert updated["ts"] == posted["ts"]
    assert updated["message"]["blocks"] == [section("one")]  # omitted blocks are kept, as at Slack
    assert updated["message"]["edited"]["user"] == BOT_USER_ID

    (message,) = standin.messages("incidents")
    assert (message["text"], message["blocks"]) == ("v3", None)
    assert [(edit["text"], edit["blocks"]) for edit in message["edits"]] == [
        ("v1", [section("one")]),
        ("v2", [section("one")]),
    ]
    history = slack.conversations_history(channel="C0INCIDENTS")
    assert history["messages"][0]["edited"]["ts"] > posted["ts"]


def test_thread_replies_nest_under_their_parent(standin: StandinServer, slack: WebClient) -> None:
    parent = slack.chat_postMessage(channel="incidents", text="incident opened")
    reply = slack.chat_postMessage(channel="incidents", text="update 1", thread_ts=parent["ts"])
    slack.chat_postMessage(channel="incidents", text="update 2", thread_ts=reply["ts"])  # joins the parent's thread
    slack.chat_postMessage(channel="incidents", text="unrelated")

    top = standin.messages("incidents")
    assert [message["text"] for message in top] == ["incident opened", "unrelated"]
    assert [reply["text"] for reply in top[0]["replies"]] == ["update 1", "update 2"]
    history = slack.conversations_history(channel="C0INCIDENTS")["messages"]
    assert [message["text"] for message in history] == ["unrelated", "incident opened"]  # newest first
    assert history[1]["reply_count"] == 2
    thread = slack.conversations_replies(channel="C0INCIDENTS", ts=parent["ts"])["messages"]
    assert [message["text"] for message in thread] == ["incident opened", "update 1", "update 2"]
    assert (
        error_of(slack.chat_postMessage, channel="incidents", text="x", thread_ts="1.000001").response["error"]
        == "thread_not_found"
    )


def test_metadata_round_trips_and_history_shows_it_on_request(standin: StandinServer, slack: WebClient) -> None:
    metadata = {"event_type": "incident_opened", "event_payload": {"incident_id": 42, "severity": "critical"}}
    posted = slack.chat_postMessage(channel="incidents", text="INC-42", metadata=metadata)
    assert posted["message"]["metadata"] == metadata

    assert "metadata" not in slack.conversations_history(channel="C0INCIDENTS")["messages"][0]
    with_metadata = slack.conversations_history(channel="C0INCIDENTS", include_all_metadata=True)
    assert with_metadata["messages"][0]["metadata"] == metadata
    assert standin.messages("incidents")[0]["metadata"] == metadata
    bad = error_of(slack.chat_postMessage, channel="incidents", text="x", metadata={"event_type": "x"})
    assert bad.response["error"] == "invalid_metadata_format"


def test_history_pages_with_cursor_and_bounds(slack: WebClient) -> None:
    stamps = [slack.chat_postMessage(channel="incidents", text=f"m{n}")["ts"] for n in range(5)]
    first = slack.conversations_history(channel="C0INCIDENTS", limit=2)
    assert [message["text"] for message in first["messages"]] == ["m4", "m3"]
    assert first["has_more"] is True
    second = slack.conversations_history(
        channel="C0INCIDENTS", limit=2, cursor=first["response_metadata"]["next_cursor"]
    )
    assert [message["text"] for message in second["messages"]] == ["m2", "m1"]

    texts = [
        message["text"]
        for page in slack.conversations_history(channel="C0INCIDENTS", limit=2)
        for message in page["messages"]
    ]
    assert texts == ["m4", "m3", "m2", "m1", "m0"]  # slack_sdk's own pagination follows next_cursor

    window = slack.conversations_history(channel="C0INCIDENTS", oldest=stamps[1], latest=stamps[3])
    assert [message["text"] for message in window["messages"]] == ["m2"]
    inclusive = slack.conversations_history(channel="C0INCIDENTS", oldest=stamps[1], latest=stamps[3], inclusive=True)
    assert [message["text"] for message in inclusive["messages"]] == ["m3", "m2", "m1"]
    assert (
        error_of(slack.conversations_history, channel="C0INCIDENTS", cursor="bm9wZQ==").response["error"]
        == "invalid_cursor"
    )


def test_channels_users_and_membership(standin: StandinServer, slack: WebClient) -> None:
    created = slack.conversations_create(name="inc-42-checkout")["channel"]
    assert created["name"] == "inc-42-checkout" and created["is_member"] is True
    assert slack.conversations_info(channel=created["id"])["channel"]["name"] == "inc-42-checkout"
    slack.conversations_invite(channel=created["id"], users="U0ALICE,U0BOB")
    view = standin.channel("inc-42-checkout")
    assert view is not None and view["members"] == [BOT_USER_ID, "U0ALICE", "U0BOB"]
    slack.chat_postMessage(channel=created["id"], text="war room")

    carol = slack.users_info(user="U0CAROL")["user"]
    assert (carol["real_name"], carol["profile"]["display_name"]) == ("Carol Chen", "carol.c")

    assert error_of(slack.chat_postMessage, channel="random", text="hi").response["error"] == "not_in_channel"
    assert slack.conversations_join(channel="C0RANDOM")["channel"]["is_member"] is True
    slack.chat_postMessage(channel="random", text="hi")
    assert error_of(slack.conversations_join, channel="C0SECRET").response["error"] == "channel_not_found"


@pytest.mark.parametrize(
    ("method", "kwargs", "error"),
    [
        ("chat_postMessage", {"channel": "nowhere", "text": "x"}, "channel_not_found"),
        ("chat_postMessage", {"channel": "C0SECRET", "text": "x"}, "channel_not_found"),
        ("chat_update", {"channel": "incidents", "ts": "1.0", "text": "x"}, "channel_not_found"),  # ids only
        ("chat_postMessage", {"channel": "incidents", "text": "x" * 40_001}, "msg_too_long"),
        ("conversations_create", {"name": "incidents"}, "name_taken"),
        ("conversations_create", {"name": "Bad Name!"}, "invalid_name_specials"),
        ("conversations_create", {"name": "x" * 81}, "invalid_name_maxlength"),
        ("users_info", {"user": "U0NOBODY"}, "user_not_found"),
        ("conversations_invite", {"channel": "C0INCIDENTS", "users": "U0NOBODY"}, "user_not_found"),
        ("chat_postEphemeral", {"channel": "incidents", "user": "U0CAROL", "text": "x"}, "user_not_in_channel"),
        ("conversations_history", {"channel": "C0RANDOM"}, "not_in_channel"),
        ("apps_connections_open", {"app_token": DEFAULT_BOT_TOKEN}, "not_allowed_token_type"),
    ],
)
def test_slack_error_codes(slack: WebClient, method: str, kwargs: dict[str, Any], error: str) -> None:
    failure = error_of(getattr(slack, method), **kwargs)
    assert failure.response.status_code == 200
    assert failure.response["ok"] is False
    assert failure.response["error"] == error


def test_bad_or_missing_token(standin: StandinServer) -> None:
    wrong = WebClient(base_url=standin.api_url, token="xoxb-not-this-one", retry_handlers=[])
    assert error_of(wrong.auth_test).response["error"] == "invalid_auth"
    assert error_of(WebClient(base_url=standin.api_url, retry_handlers=[]).auth_test).response["error"] == "not_authed"
    form = httpx.post(f"{standin.url}/api/auth.test", data={"token": DEFAULT_BOT_TOKEN}).json()
    assert form["ok"] is True  # a form body may carry the token, as at Slack
    (call, *_) = [call for call in standin.calls("auth.test") if call["error"] == "invalid_auth"]
    assert "token" not in call["params"]


def test_message_not_found_after_delete(standin: StandinServer, slack: WebClient) -> None:
    posted = slack.chat_postMessage(channel="incidents", text="doomed")
    assert httpx.get(f"{standin.url}/_standin/messages/incidents/{posted['ts']}").json() == posted["message"]
    deleted = httpx.delete(f"{standin.url}/_standin/messages/incidents/{posted['ts']}")
    assert deleted.status_code == 200
    failure = error_of(slack.chat_update, channel="C0INCIDENTS", ts=posted["ts"], text="too late")
    assert failure.response["error"] == "message_not_found"
    assert standin.messages("incidents") == []
    assert httpx.delete(f"{standin.url}/_standin/messages/incidents/{posted['ts']}").status_code == 404

    again = slack.chat_postMessage(channel="incidents", text="doomed too")
    assert standin.message("incidents", again["ts"]) == again["message"]
    assert standin.delete_message("#incidents", again["ts"]) is True
    assert standin.message("incidents", again["ts"]) is None


def test_block_kit_limits_give_invalid_blocks(standin: StandinServer, slack: WebClient) -> None:
    too_many = error_of(slack.chat_postMessage, channel="incidents", text="x", blocks=[section("b")] * 51)
    assert too_many.response["error"] == "invalid_blocks"
    assert too_many.response["response_metadata"]["messages"] == [
        "[ERROR] must be less than 51 items [json-pointer:/blocks]"
    ]
    too_long = error_of(slack.chat_postMessage, channel="incidents", text="x", blocks=[section("y" * 3001)])
    assert too_long.response["error"] == "invalid_blocks"
    slack.chat_postMessage(channel="incidents", text="x", blocks=[section("y" * 3000)] * 50)
    assert len(standin.messages("incidents")) == 1
    as_form = httpx.post(
        f"{standin.url}/api/chat.postMessage",
        data={"channel": "incidents", "blocks": "[not json"},
        headers={"Authorization": f"Bearer {DEFAULT_BOT_TOKEN}"},
    ).json()
    assert as_form["error"] == "invalid_blocks_format"
    empty = httpx.post(
        f"{standin.url}/api/chat.postMessage",
        json={"channel": "incidents"},
        headers={"Authorization": f"Bearer {DEFAULT_BOT_TOKEN}"},
    ).json()
    assert empty == {"ok": False, "error": "no_text"}


def button(action_id: str, value: str = "v", text: str = "Go") -> dict[str, Any]:
    return {"type": "button", "action_id": action_id, "value": value, "text": {"type": "plain_text", "text": text}}


@pytest.mark.parametrize(
    "block",
    [
        {"type": "header", "text": {"type": "plain_text", "text": "h" * 151}},
        {"type": "header", "text": {"type": "mrkdwn", "text": "h"}},
        {"type": "actions", "elements": [button(f"a{n}") for n in range(26)]},
        {"type": "actions", "elements": [button("a", value="v" * 2001)]},
        {"type": "actions", "elements": [button("a", text="t" * 76)]},
        {"type": "actions", "elements": [button("same"), button("same")]},
        {"type": "section", "text": {"type": "mrkdwn", "text": ""}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": "f"}] * 11},
        {"type": "section", "text": {"type": "mrkdwn", "text": "s"}, "accessory": button("a", value="v" * 2001)},
        {"type": "context", "elements": []},
        {"type": "markdown", "text": "m" * 12_001},
        {"type": "carousel"},
        {"type": "divider", "block_id": "x" * 256},
        {"type": "section", "text": {"type": "plain_text", "text": "s", "verbatim": True}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "s", "emoji": True}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "s", "verbatim": "yes"}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": "c", "style": "bold"}]},
    ],
)
def test_block_kit_limit_rules(block: dict[str, Any]) -> None:
    with pytest.raises(ContentError) as caught:
        check_message("fallback", [block], None)
    assert caught.value.error == "invalid_blocks"
    check_message("fallback", [{"type": "divider", "block_id": "a"}, section("ok")], None)
    check_message(  # each text type with its own flag is fine
        "fallback",
        [
            {"type": "header", "text": {"type": "plain_text", "text": "h", "emoji": True}},
            {"type": "section", "text": {"type": "mrkdwn", "text": "s", "verbatim": True}},
        ],
        None,
    )


def test_ratelimited_fault_hits_only_its_channel(standin: StandinServer, slack: WebClient) -> None:
    slack.conversations_join(channel="C0RANDOM")
    standin.add_fault("ratelimited", method="chat.postMessage", channel="incidents", retry_after=2)
    limited = error_of(slack.chat_postMessage, channel="C0INCIDENTS", text="a")  # by id: still the channel
    assert limited.response.status_code == 429
    assert limited.response.headers["Retry-After"] == "2"
    assert limited.response["error"] == "ratelimited"
    slack.chat_postMessage(channel="random", text="b")
    slack.chat_postMessage(channel="incidents", text="c")  # times=1: spent
    standin.add_fault("ratelimited", times=None)
    assert error_of(slack.auth_test).response.status_code == 429
    standin.clear_faults()
    assert [message["text"] for message in standin.messages("incidents")] == ["c"]
    calls = standin.calls("chat.postMessage")
    assert httpx.get(f"{standin.url}/_standin/calls", params={"method": "chat.postMessage"}).json()["calls"] == calls
    assert [(call["status"], call["error"], call["fault"]) for call in calls] == [
        (429, "ratelimited", "ratelimited"),
        (200, None, None),
        (200, None, None),
    ]


def test_server_error_and_latency_faults_over_http(standin: StandinServer, slack: WebClient) -> None:
    added = httpx.post(f"{standin.url}/_standin/faults", json={"fault": "server_error", "status": 503, "times": 2})
    (fault,) = added.json()["faults"]
    assert (fault["fault"], fault["status"], fault["times"], fault["method"]) == ("server_error", 503, 2, None)
    for _ in range(2):
        failure = error_of(slack.auth_test)
        assert failure.response.status_code == 503
    slack.auth_test()

    httpx.post(f"{standin.url}/_standin/faults", json={"fault": "server_error", "times": None})
    assert error_of(slack.auth_test).response.status_code == 500
    httpx.delete(f"{standin.url}/_standin/faults")
    slack.auth_test()

    httpx.post(f"{standin.url}/_standin/faults", json={"method": "auth.test", "fault": "latency", "seconds": 0.3})
    started = time.monotonic()
    slack.auth_test()
    assert time.monotonic() - started >= 0.3
    refused = httpx.post(f"{standin.url}/_standin/faults", json={"fault": "meteor"})
    assert refused.status_code == 400


def test_error_fault_refuses_in_the_body_with_http_200(standin: StandinServer, slack: WebClient) -> None:
    added = httpx.post(
        f"{standin.url}/_standin/faults", json={"fault": "error", "error": "rate_limited", "method": "chat.postMessage"}
    )
    assert added.status_code == 200, added.text
    refused = error_of(lambda: slack.chat_postMessage(channel="incidents", text="too many"))
    assert (refused.response.status_code, refused.response["error"]) == (200, "rate_limited")
    assert "Retry-After" not in refused.response.headers
    assert standin.messages("incidents") == []  # nothing was done
    slack.chat_postMessage(channel="incidents", text="once")  # it fired once
    assert [call["error"] for call in standin.calls("chat.postMessage")] == ["rate_limited", None]
    bad = httpx.post(f"{standin.url}/_standin/faults", json={"fault": "error", "error": "not <a> code"})
    assert bad.status_code == 400


def test_accept_then_drop_stores_the_message_but_never_answers(standin: StandinServer, slack: WebClient) -> None:
    standin.add_fault("accept_then_drop", method="chat.postMessage")
    with pytest.raises((URLError, ConnectionError)):
        slack.chat_postMessage(channel="incidents", text="did it post?")
    assert [message["text"] for message in standin.messages("incidents")] == ["did it post?"]

    standin.add_fault("accept_then_drop", method="chat.postMessage")
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.post(
            f"{standin.url}/api/chat.postMessage",
            json={"channel": "incidents", "text": "again"},
            headers={"Authorization": f"Bearer {DEFAULT_BOT_TOKEN}"},
        )
    assert [message["text"] for message in standin.messages("incidents")] == ["did it post?", "again"]
    assert [call["fault"] for call in standin.calls("chat.postMessage")] == ["accept_then_drop"] * 2


def test_a_restart_keeps_channels_messages_and_calls(tmp_path: Path) -> None:
    path = tmp_path / "state" / "standin.sqlite"
    with StandinServer(path) as first:
        slack = WebClient(base_url=first.api_url, token=DEFAULT_BOT_TOKEN, retry_handlers=[])
        channel = slack.conversations_create(name="inc-7")["channel"]["id"]
        parent = slack.chat_postMessage(channel=channel, text="before")
        slack.chat_postMessage(channel=channel, text="reply", thread_ts=parent["ts"])
        slack.chat_update(channel=channel, ts=parent["ts"], text="before, edited")
    with StandinServer(path) as second:
        slack = WebClient(base_url=second.api_url, token=DEFAULT_BOT_TOKEN, retry_handlers=[])
        after = slack.chat_postMessage(channel="inc-7", text="after")
        (kept, new) = second.messages("inc-7")
        assert (kept["text"], kept["edits"][0]["text"], kept["replies"][0]["text"]) == (
            "before, edited",
            "before",
            "reply",
        )
        assert new["text"] == "after" and after["ts"] > kept["replies"][0]["ts"]
        assert error_of(slack.conversations_create, name="inc-7").response["error"] == "name_taken"
        assert [call["method"] for call in second.calls()][:2] == ["conversations.create", "chat.postMessage"]


def test_only_loopback_clients_are_served(tmp_path: Path) -> None:
    standin = Standin.open(tmp_path / "standin.sqlite", Workspace())
    app = build_app(standin, lambda _scope: None)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    def status_for(client: str) -> int:
        sent.clear()
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": "/_standin/calls",
            "raw_path": b"/_standin/calls",
            "root_path": "",
            "query_string": b"",
            "headers": [(b"host", b"127.0.0.1")],
            "client": (client, 50000),
            "server": ("127.0.0.1", 80),
        }
        asyncio.run(app(scope, receive, send))  # type: ignore[arg-type]
        return int(sent[0]["status"])

    try:
        assert status_for("192.0.2.7") == 403
        assert status_for("::1") == 200
    finally:
        standin.store.close()


# Response URLs.


def test_response_url_round_trip(standin: StandinServer, slack: WebClient) -> None:
    original = slack.chat_postMessage(channel="incidents", text="INC-1 firing", blocks=[section("INC-1")])
    url = standin.mint_response_url("incidents", "U0ALICE", original["ts"])
    assert url.startswith(f"{standin.url}/_standin/response/")

    assert httpx.post(url, json={"text": "only you see this"}).json() == {"ok": True}
    assert httpx.post(url, json={"text": "for everyone", "response_type": "in_channel"}).status_code == 200
    assert httpx.post(url, json={"text": "INC-1 acknowledged", "replace_original": True}).status_code == 200
    assert httpx.post(url, json={"text": "x", "blocks": [section("y" * 3001)]}).status_code == 400

    recorded = httpx.get(f"{standin.url}/_standin/responses/{url.rsplit('/', 1)[-1]}").json()
    assert (recorded["channel"], recorded["user"], recorded["message_ts"]) == ("C0INCIDENTS", "U0ALICE", original["ts"])
    assert [entry["body"]["text"] for entry in recorded["responses"]] == [
        "only you see this",
        "for everyone",
        "INC-1 acknowledged",
        "x",
    ]
    assert recorded["responses"][-1]["error"] == "invalid_blocks"
    assert standin.responses(url) == recorded["responses"]
    messages = standin.messages("incidents")
    assert [(message["text"], len(message["edits"])) for message in messages] == [
        ("INC-1 acknowledged", 1),
        ("for everyone", 0),
    ]
    assert [ephemeral["text"] for ephemeral in standin.ephemerals("incidents")] == ["only you see this"]

    assert httpx.post(url, json={"delete_original": True}).status_code == 200
    assert [message["text"] for message in standin.messages("incidents")] == ["for everyone"]
    assert httpx.post(f"{standin.url}/_standin/response/unknown", json={"text": "x"}).status_code == 404


# Socket Mode, with slack_sdk's own client.


def test_socket_mode_client_connects_and_acks_what_the_driver_pushes(standin: StandinServer) -> None:
    received: list[SocketModeRequest] = []

    def on_request(client: BaseSocketModeClient, request: SocketModeRequest) -> None:
        received.append(request)
        if request.type == "events_api" and request.retry_attempt == 0:
            return  # this first delivery goes unacked
        client.send_socket_mode_response(SocketModeResponse(request.envelope_id, {"text": "on it"}))

    nobody = httpx.post(
        f"{standin.url}/_standin/socket/envelopes",
        json={"type": "slash_commands", "payload": {}, "connect_timeout": 0.1},
    )
    assert nobody.status_code == 409  # no client connected yet: the envelope cannot be delivered

    web = WebClient(base_url=standin.api_url, retry_handlers=[])
    client = SocketModeClient(app_token=DEFAULT_APP_TOKEN, web_client=web, auto_reconnect_enabled=False)
    client.socket_mode_request_listeners.append(on_request)
    client.connect()
    try:
        with SlackDriver(standin.url, ack_deadline=0.5, retry_delays=FAST_RETRIES) as driver:
            delivery = driver.slash_command("/incident", "ack 42", via_socket=True)
            assert delivery.acked and delivery.transport == "socket"
            assert delivery.ack_payload == {"text": "on it"}
            (request,) = received
            assert (request.type, request.accepts_response_payload) == ("slash_commands", True)
            assert request.payload["command"] == "/incident" and request.payload["text"] == "ack 42"
            assert request.payload["channel_id"] == "C0INCIDENTS" and request.payload["user_name"] == "alice"
            assert request.payload["response_url"] == delivery.response_url

            event = driver.event({"type": "app_mention", "text": "hi"}, via_socket=True)
        assert event.acked
        assert [(a.timed_out, a.retry_num, a.retry_reason) for a in event.attempts] == [
            (True, 0, ""),
            (False, 1, "timeout"),
        ]
        assert [(r.retry_attempt, r.retry_reason, r.payload["event_id"]) for r in received[1:]] == [
            (0, "", event.event_id),
            (1, "timeout", event.event_id),
        ]

        envelope_id = standin.push_envelope("interactive", {"type": "block_actions", "actions": []})
        ack = standin.wait_for_ack(envelope_id, timeout=3)
        assert ack is not None and ack.envelope_id == envelope_id and ack.payload == {"text": "on it"}
        unacked = standin.push_envelope("events_api", {"type": "event_callback", "event_id": "Ev0"})
        assert standin.wait_for_ack(unacked, timeout=0.2) is None
    finally:
        standin.stop()  # first, so that the client's blocking receive ends at once
        client.close()


def test_socket_mode_needs_an_app_token_and_a_valid_ticket(standin: StandinServer) -> None:
    app = WebClient(base_url=standin.api_url, token=DEFAULT_APP_TOKEN, retry_handlers=[])
    url = app.apps_connections_open(app_token=DEFAULT_APP_TOKEN)["url"]
    assert url.startswith(f"ws://127.0.0.1:{standin.url.rsplit(':', 1)[1]}/_standin/socket?ticket=")
    bot = WebClient(base_url=standin.api_url, token=DEFAULT_BOT_TOKEN, retry_handlers=[])
    assert error_of(bot.apps_connections_open, app_token="xapp-wrong").response["error"] == "invalid_auth"
    assert error_of(app.auth_test).response["error"] == "not_allowed_token_type"
    forged = httpx.get(
        f"{standin.url}/_standin/socket?ticket=forged",
        headers={
            "Connection": "Upgrade",
            "Upgrade": "websocket",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        },
    )
    assert forged.status_code == 403


# The driver: signatures, acks, retries.

SLACK_DOC_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
SLACK_DOC_TIMESTAMP = 1531420618
SLACK_DOC_BODY = (
    b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
    b"&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
    b"&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
    b"&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
)
SLACK_DOC_SIGNATURE = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"


def test_signature_matches_slacks_documented_example() -> None:
    assert signing.signature(SLACK_DOC_SECRET, SLACK_DOC_TIMESTAMP, SLACK_DOC_BODY) == SLACK_DOC_SIGNATURE
    expected = hmac.new(SECRET.encode(), b"v0:1700000000:{}", hashlib.sha256).hexdigest()
    assert signing.signed_headers(SECRET, 1700000000, b"{}") == {
        "X-Slack-Request-Timestamp": "1700000000",
        "X-Slack-Signature": "v0=" + expected,
    }


class FixedClock(Clock):
    def __init__(self, now: float) -> None:
        self._now = now

    def now(self) -> float:
        return self._now


def test_slack_sdks_verifier_accepts_our_signatures() -> None:
    verifier = SignatureVerifier(SLACK_DOC_SECRET, clock=FixedClock(SLACK_DOC_TIMESTAMP))
    assert verifier.is_valid(SLACK_DOC_BODY, str(SLACK_DOC_TIMESTAMP), SLACK_DOC_SIGNATURE)
    body = orjson.dumps({"type": "event_callback", "event": {"type": "app_mention", "text": "héllo ✓"}})
    now = int(time.time())
    assert SignatureVerifier(SECRET).is_valid_request(body, signing.signed_headers(SECRET, now, body))
    assert not SignatureVerifier(SECRET).is_valid_request(body + b" ", signing.signed_headers(SECRET, now, body))


class Bot:
    """A minimal bot endpoint: verifies with slack_sdk, records, acks as scripted, answers response URLs."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.script: list[tuple[int, float, dict[str, str]]] = []  # status, delay, headers per request
        self._verifier = SignatureVerifier(SECRET)
        self._lock = threading.Lock()

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.script.clear()

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/slack/events", self.events, methods=["POST"])])

    async def events(self, request: Request) -> Response:
        body = await request.body()
        with self._lock:
            self.requests.append((dict(request.headers), body))
            status, delay, headers = self.script.pop(0) if self.script else (200, 0.0, {})
        if not self._verifier.is_valid_request(body, dict(request.headers)):
            return JSONResponse({"error": "invalid signature"}, status_code=401)
        await asyncio.sleep(delay)  # a slow handler
        if request.headers["content-type"] == "application/json":
            payload = orjson.loads(body)
            if payload["type"] == "url_verification":
                return JSONResponse({"challenge": payload["challenge"]})
            return Response(status_code=status, headers=headers)
        form = {key: values[0] for key, values in parse_qs(body.decode(), keep_blank_values=True).items()}
        if "payload" in form:
            action = orjson.loads(form["payload"])
            reply = {"replace_original": True, "text": f"acked by {action['user']['name']}"}
            return Response(status_code=status, background=BackgroundTask(_post, action["response_url"], reply))
        reply = {"response_type": "in_channel", "text": f"{form['command']} {form['text']}: done"}
        return Response(status_code=status, background=BackgroundTask(_post, form["response_url"], reply))


def _post(url: str, body: dict[str, Any]) -> None:
    httpx.post(url, json=body).raise_for_status()


@pytest.fixture(scope="module")
def bot_server() -> Iterator[tuple[Bot, str]]:
    bot = Bot()
    with serve_in_thread(bot.app()) as url:
        yield bot, url


@pytest.fixture
def bot(bot_server: tuple[Bot, str]) -> Bot:
    bot_server[0].reset()
    return bot_server[0]


@pytest.fixture
def driver(standin: StandinServer, bot_server: tuple[Bot, str]) -> Iterator[SlackDriver]:
    with SlackDriver(
        standin.url, bot_url=bot_server[1], signing_secret=SECRET, workspace=WORKSPACE, retry_delays=FAST_RETRIES
    ) as driving:
        yield driving


def test_slash_command_is_signed_acked_and_answered_on_its_response_url(
    standin: StandinServer, driver: SlackDriver, bot: Bot
) -> None:
    delivery = driver.slash_command("/incident", "open db down", user="U0BOB", wait_responses=5)
    assert delivery.acked and delivery.status == 200
    assert delivery.responses == [{"response_type": "in_channel", "text": "/incident open db down: done"}]
    assert [message["text"] for message in standin.messages("incidents")] == ["/incident open db down: done"]

    headers, body = bot.requests[0]
    form = {key: values[0] for key, values in parse_qs(body.decode()).items()}
    assert set(form) >= {"token", "team_id", "channel_id", "user_id", "command", "response_url", "trigger_id"}
    assert (form["user_id"], form["user_name"], form["channel_name"]) == ("U0BOB", "bob", "incidents")
    assert headers["x-slack-signature"] == signing.signature(SECRET, headers["x-slack-request-timestamp"], body)


@pytest.mark.parametrize(
    "options",
    [
        Signing(secret="not-the-secret"),
        Signing(timestamp=int(time.time()) - 600),
        Signing(tamper=True),
        Signing(omit_signature=True),
        Signing(omit_timestamp=True),
    ],
)
def test_broken_signatures_are_refused_by_slack_sdks_verifier(driver: SlackDriver, options: Signing) -> None:
    delivery = driver.slash_command("/incident", "list", signing=options)
    assert delivery.status == 401 and not delivery.acked


def test_block_action_clicks_a_real_button(
    standin: StandinServer, slack: WebClient, driver: SlackDriver, bot: Bot
) -> None:
    blocks = [section("INC-9 firing"), {"type": "actions", "block_id": "incident-9", "elements": [button("ack", "9")]}]
    posted = slack.chat_postMessage(channel="incidents", text="INC-9", blocks=blocks)
    delivery = driver.block_action("incidents", posted["ts"], "ack", user="U0CAROL", wait_responses=5)
    assert delivery.acked and delivery.responses == [{"replace_original": True, "text": "acked by carol"}]

    payload = orjson.loads(parse_qs(bot.requests[0][1].decode())["payload"][0])
    assert payload["type"] == "block_actions"
    (action,) = payload["actions"]
    assert (action["action_id"], action["block_id"], action["value"], action["type"]) == (
        "ack",
        "incident-9",
        "9",
        "button",
    )
    assert payload["container"] == {
        "type": "message",
        "message_ts": posted["ts"],
        "channel_id": "C0INCIDENTS",
        "is_ephemeral": False,
    }
    assert payload["message"]["blocks"] == blocks
    (message,) = standin.messages("incidents")
    assert message["text"] == "acked by carol" and message["edits"][0]["text"] == "INC-9"
    with pytest.raises(LookupError):
        driver.block_action("incidents", posted["ts"], "no-such-button")


def test_events_are_retried_on_slacks_schedule_with_the_same_id(driver: SlackDriver, bot: Bot) -> None:
    bot.script = [(500, 0.0, {}), (200, 0.5, {}), (200, 0.0, {})]
    driver.ack_deadline = 0.3
    delivered = driver.event({"type": "app_mention", "user": "U0ALICE", "text": "<@U0BOTINCIBOT> status"})
    assert delivered.acked
    assert [(a.status, a.timed_out, a.retry_num, a.retry_reason) for a in delivered.attempts] == [
        (500, False, 0, ""),
        (None, True, 1, "http_error"),
        (200, False, 2, "http_timeout"),
    ]
    wait_for(lambda: len(bot.requests) == 3)
    bodies = [orjson.loads(body) for _headers, body in bot.requests]
    assert {body["event_id"] for body in bodies} == {delivered.event_id}
    assert bodies[0]["type"] == "event_callback" and bodies[0]["event"]["type"] == "app_mention"
    assert "x-slack-retry-num" not in bot.requests[0][0]
    assert [(h["x-slack-retry-num"], h["x-slack-retry-reason"]) for h, _ in bot.requests[1:]] == [
        ("1", "http_error"),
        ("2", "http_timeout"),
    ]


def test_event_retries_stop_at_three_or_on_no_retry(driver: SlackDriver, bot: Bot) -> None:
    bot.script = [(503, 0.0, {})] * 4
    failed = driver.event({"type": "app_mention", "text": "x"})
    assert not failed.acked and [a.retry_num for a in failed.attempts] == [0, 1, 2, 3]

    bot.script = [(500, 0.0, {"X-Slack-No-Retry": "1"})]
    refused = driver.event({"type": "app_mention", "text": "x"})
    assert len(refused.attempts) == 1 and refused.attempts[0].no_retry


def test_url_verification_echoes_the_challenge(driver: SlackDriver) -> None:
    delivery = driver.url_verification("3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P")
    assert delivery.acked
    assert delivery.ack_payload == {"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}


def test_an_unreachable_bot_is_a_connection_failure(standin: StandinServer) -> None:
    with SlackDriver(standin.url, bot_url="http://127.0.0.1:9", signing_secret=SECRET, retry_delays=FAST_RETRIES) as d:
        delivered = d.event({"type": "app_mention", "text": "x"})
    assert not delivered.acked
    assert [a.retry_reason for a in delivered.attempts] == [
        "",
        "connection_failed",
        "connection_failed",
        "connection_failed",
    ]
    assert delivered.attempts[0].error is not None
