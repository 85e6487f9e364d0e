"""The stand-in is as strict as Slack: scopes from the installed manifest (``missing_scope`` with ``needed`` and
``provided``, the ``x-oauth-scopes`` headers), the ``bare`` and ``default`` workspaces, ``chat:write.public``,
``response_url`` uses and expiry, ``chat.update``'s text limit, ``conversations.invite`` with and without
``force``, tombstones, per-method rate limits and Socket Mode refreshes. Through slack_sdk over loopback HTTP."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from slack_bolt import App
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.slack.scopes import BOT_SCOPES, METHODS
from bot.standin.manifest import DEFAULT_MANIFEST, AppManifest
from bot.standin.ratelimits import METHOD_TIERS
from bot.standin.server import StandinServer
from bot.standin.workspace import BOT_USER_ID, DEFAULT_APP_TOKEN, DEFAULT_BOT_TOKEN, WORKSPACES, User, Workspace
from tests.support import wait_for


def _manifest(tmp_path: Path, *scopes: str) -> Path:
    path = tmp_path / "manifest.yml"
    path.write_text(yaml.safe_dump({"oauth_config": {"scopes": {"bot": list(scopes)}}}))
    return path


def _client(server: StandinServer) -> WebClient:
    return WebClient(base_url=server.api_url, token=DEFAULT_BOT_TOKEN, retry_handlers=[], timeout=10)


def _error(call: Any, **kwargs: Any) -> dict[str, Any]:
    with pytest.raises(SlackApiError) as caught:
        call(**kwargs)
    data: dict[str, Any] = caught.value.response.data  # type: ignore[assignment]
    return data


@pytest.fixture
def default(tmp_path: Path) -> Iterator[StandinServer]:
    """The default workspace with the shipped manifest; rate limits off (tests of them turn them on)."""
    with StandinServer(tmp_path / "standin.sqlite", rate_limits=False) as server:
        yield server


# Scopes from the manifest.


def test_every_method_the_stand_in_answers_has_slacks_scopes_and_rate_limit(default: StandinServer) -> None:
    methods = default._parts.api.methods
    assert methods <= set(METHODS)
    assert methods - {"chat.postMessage"} <= set(METHOD_TIERS)


def test_the_default_manifest_is_the_shipped_http_manifest() -> None:
    manifest = AppManifest.load()
    assert manifest.source == str(DEFAULT_MANIFEST)
    assert Path(__file__).resolve().parents[1] / "deploy" / "slack-manifest.yml" == DEFAULT_MANIFEST
    assert set(manifest.bot_scopes) == set(BOT_SCOPES)


def test_a_method_without_its_scope_answers_missing_scope_as_slack_does(default: StandinServer) -> None:
    granted = AppManifest.load().bot_scopes
    answer = _error(_client(default).users_info, user="U0ALICE")
    assert answer == {"ok": False, "error": "missing_scope", "needed": "users:read", "provided": ",".join(granted)}


def test_private_channels_need_the_groups_scopes(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path, "channels:read", "channels:history", "chat:write")
    with StandinServer(tmp_path / "s.sqlite", workspace=Workspace(manifest=manifest), rate_limits=False) as server:
        slack = _client(server)
        assert slack.conversations_list(types="public_channel")["channels"][0]["name"] == "incidents"
        answer = _error(slack.conversations_list, types="public_channel,private_channel")
        assert (answer["error"], answer["needed"]) == ("missing_scope", "groups:read")
        assert answer["provided"] == "channels:read,channels:history,chat:write"
        created = _error(slack.conversations_create, name="inc-1")
        assert created["needed"] == "channels:manage"
        assert server.calls("conversations.create")[0]["error"] == "missing_scope"


def test_every_answer_carries_the_granted_and_accepted_scopes(default: StandinServer) -> None:
    granted = ",".join(AppManifest.load().bot_scopes)
    history = _client(default).conversations_history(channel="C0INCIDENTS")
    assert history.headers["x-oauth-scopes"] == granted
    assert history.headers["x-accepted-oauth-scopes"] == "channels:history,groups:history,im:history,mpim:history"
    refused = httpx.post(f"{default.api_url}users.info", headers={"Authorization": f"Bearer {DEFAULT_BOT_TOKEN}"})
    assert refused.headers["x-oauth-scopes"] == granted
    assert refused.headers["x-accepted-oauth-scopes"] == "users:read"
    app = _client(default).apps_connections_open(app_token=DEFAULT_APP_TOKEN)
    assert app.headers["x-oauth-scopes"] == "connections:write"
    unauthenticated = httpx.post(f"{default.api_url}auth.test", headers={"Authorization": "Bearer xoxb-wrong"})
    assert unauthenticated.json()["error"] == "invalid_auth"
    assert "x-oauth-scopes" not in unauthenticated.headers


def test_an_app_token_without_connections_write_cannot_open_a_socket(tmp_path: Path) -> None:
    workspace = Workspace(app_token_scopes=())
    with StandinServer(tmp_path / "s.sqlite", workspace=workspace, rate_limits=False) as server:
        answer = _error(_client(server).apps_connections_open, app_token=DEFAULT_APP_TOKEN)
        assert answer == {"ok": False, "error": "missing_scope", "needed": "connections:write", "provided": ""}


# Workspaces and channel membership.


def test_bare_workspace_is_a_fresh_install(tmp_path: Path) -> None:
    with StandinServer(tmp_path / "s.sqlite", workspace=WORKSPACES["bare"](), rate_limits=False) as server:
        slack = _client(server)
        channels = slack.conversations_list(types="public_channel,private_channel")["channels"]
        assert [(c["name"], c["is_member"], c["is_general"]) for c in channels] == [("general", False, True)]
        assert _error(slack.chat_postMessage, channel="general", text="hi")["error"] == "not_in_channel"
        assert _error(slack.conversations_history, channel="C0GENERAL")["error"] == "not_in_channel"
        assert _error(slack.chat_postMessage, channel="incidents", text="hi")["error"] == "channel_not_found"
        slack.conversations_join(channel="C0GENERAL")
        slack.chat_postMessage(channel="C0GENERAL", text="hi")
        assert [m["text"] for m in slack.conversations_history(channel="C0GENERAL")["messages"]] == ["hi"]


def test_default_workspace_has_incidents_with_the_bot_and_no_messages(default: StandinServer) -> None:
    incidents = default.channel("incidents")
    assert incidents is not None and BOT_USER_ID in incidents["members"] and incidents["is_member"]
    assert default.messages("incidents") == []
    assert WORKSPACES["default"]() == Workspace.default() == Workspace()


def test_chat_write_public_posts_where_the_bot_is_not_but_reading_there_is_refused(tmp_path: Path) -> None:
    scopes = [*AppManifest.load().bot_scopes, "chat:write.public"]
    workspace = replace(Workspace.bare(), manifest=_manifest(tmp_path, *scopes))
    with StandinServer(tmp_path / "s.sqlite", workspace=workspace, rate_limits=False) as server:
        slack = _client(server)
        posted = slack.chat_postMessage(channel="general", text="posted without joining")
        assert posted["channel"] == "C0GENERAL"
        assert _error(slack.conversations_history, channel="C0GENERAL")["error"] == "not_in_channel"
        assert _error(slack.conversations_replies, channel="C0GENERAL", ts=posted["ts"])["error"] == "not_in_channel"
        assert _error(slack.chat_update, channel="C0GENERAL", ts=posted["ts"], text="x")["error"] == "not_in_channel"


# Messages.


def test_chat_update_text_is_limited_to_4000_characters(default: StandinServer) -> None:
    slack = _client(default)
    posted = slack.chat_postMessage(channel="C0INCIDENTS", text="x" * 5000)  # posts take up to 40,000
    too_long = _error(slack.chat_update, channel="C0INCIDENTS", ts=posted["ts"], text="y" * 4001)
    assert too_long == {"ok": False, "error": "msg_too_long"}
    slack.chat_update(channel="C0INCIDENTS", ts=posted["ts"], text="y" * 4000)
    assert default.messages("incidents")[0]["text"] == "y" * 4000


def test_deleting_a_parent_with_replies_leaves_a_tombstone(default: StandinServer) -> None:
    slack = _client(default)
    parent = slack.chat_postMessage(channel="C0INCIDENTS", text="parent")["ts"]
    reply = slack.chat_postMessage(channel="C0INCIDENTS", text="reply", thread_ts=parent)["ts"]
    alone = slack.chat_postMessage(channel="C0INCIDENTS", text="alone")["ts"]
    assert default.delete_message("incidents", parent) and default.delete_message("incidents", alone)
    history = slack.conversations_history(channel="C0INCIDENTS")["messages"]
    assert history == [
        {
            "type": "message",
            "subtype": "tombstone",
            "user": "USLACKBOT",
            "text": "This message was deleted.",
            "hidden": True,
            "ts": parent,
            "is_locked": False,
            "thread_ts": parent,
            "reply_count": 1,
            "reply_users_count": 1,
            "latest_reply": reply,
            "reply_users": [BOT_USER_ID],
        }
    ]
    thread = slack.conversations_replies(channel="C0INCIDENTS", ts=parent)["messages"]
    assert [m.get("subtype") for m in thread] == ["tombstone", None] and thread[1]["text"] == "reply"
    assert _error(slack.chat_update, channel="C0INCIDENTS", ts=parent, text="back")["error"] == "message_not_found"
    assert not default.delete_message("incidents", parent)  # a tombstone is deleted already
    assert default.messages("incidents")[0]["subtype"] == "tombstone"


def test_invite_fails_whole_on_one_bad_user_unless_forced(default: StandinServer) -> None:
    slack = _client(default)
    channel = slack.conversations_create(name="inc-7-disk")["channel"]["id"]
    refused = _error(slack.conversations_invite, channel=channel, users="U0ALICE,U0NOBODY,U0BOB")
    assert refused == {
        "ok": False,
        "error": "user_not_found",
        "errors": [{"user": "U0NOBODY", "ok": False, "error": "user_not_found"}],
    }
    assert default.channel(channel)["members"] == [BOT_USER_ID]  # type: ignore[index]
    forced = slack.conversations_invite(channel=channel, users="U0ALICE,U0NOBODY,U0BOB", force=True)
    assert forced["ok"] is True
    assert forced["errors"] == [{"user": "U0NOBODY", "ok": False, "error": "user_not_found"}]
    assert default.channel(channel)["members"] == [BOT_USER_ID, "U0ALICE", "U0BOB"]  # type: ignore[index]
    only_bad = _error(slack.conversations_invite, channel=channel, users="U0NOBODY", force=True)
    assert only_bad["error"] == "user_not_found"
    assert _error(slack.conversations_invite, channel=channel, users="U0ALICE")["error"] == "already_in_channel"


# response_url.


def test_response_url_takes_five_posts_then_refuses(default: StandinServer) -> None:
    url = default.mint_response_url("incidents", "U0ALICE")
    answers = [httpx.post(url, json={"text": f"answer {n}"}) for n in range(6)]
    assert [answer.status_code for answer in answers] == [200] * 5 + [404]
    assert answers[-1].json() == {"ok": False, "error": "used_url"}
    assert len(default.responses(url)) == 5
    assert len(default.ephemerals("incidents")) == 5


def test_response_url_expires_after_30_minutes(default: StandinServer) -> None:
    url = default.mint_response_url("incidents", "U0ALICE")
    default.advance_clock(29 * 60)
    assert httpx.post(url, json={"text": "in time"}).status_code == 200
    httpx.post(f"{default.url}/_standin/clock", json={"advance": 61}).raise_for_status()
    late = httpx.post(url, json={"text": "too late"})
    assert (late.status_code, late.json()["error"]) == (404, "expired_url")
    assert [entry["body"]["text"] for entry in default.responses(url)] == ["in time"]


# Rate limits.


def test_rate_limits_are_per_method_tier_with_retry_after(tmp_path: Path) -> None:
    with StandinServer(tmp_path / "s.sqlite") as server:  # on by default
        slack = _client(server)
        for _ in range(20):  # conversations.list is Tier 2: 20 per minute
            slack.conversations_list()
        limited = httpx.post(
            f"{server.api_url}conversations.list", headers={"Authorization": f"Bearer {DEFAULT_BOT_TOKEN}"}
        )
        assert limited.status_code == 429 and limited.json() == {"ok": False, "error": "ratelimited"}
        assert int(limited.headers["Retry-After"]) == 3  # one call's worth of a 20-per-minute refill
        slack.conversations_history(channel="C0INCIDENTS")  # another method has its own limit
        server.advance_clock(3)
        slack.conversations_list()
        assert [call["status"] for call in server.calls("conversations.list")][-3:] == [200, 429, 200]


def test_posts_are_limited_per_channel_with_a_short_burst(tmp_path: Path) -> None:
    with StandinServer(tmp_path / "s.sqlite") as server:
        slack = _client(server)
        slack.conversations_create(name="other")
        for n in range(3):
            slack.chat_postMessage(channel="incidents", text=f"burst {n}")
        with pytest.raises(SlackApiError) as caught:
            slack.chat_postMessage(channel="C0INCIDENTS", text="one too many")
        assert caught.value.response.status_code == 429
        assert caught.value.response.headers["Retry-After"] == "1"
        slack.chat_postMessage(channel="other", text="another channel")
        server.advance_clock(1)
        slack.chat_postMessage(channel="incidents", text="a second later")
        assert len(server.messages("incidents")) == 4


def test_rate_limits_can_be_turned_off_for_tests_that_measure_something_else(tmp_path: Path) -> None:
    with StandinServer(tmp_path / "s.sqlite") as server:
        off = httpx.post(f"{server.url}/_standin/ratelimits", json={"enabled": False}).json()
        assert off == {"ok": True, "enabled": False}
        slack = _client(server)
        for n in range(30):
            slack.chat_postMessage(channel="incidents", text=f"{n}")
        assert httpx.post(f"{server.url}/_standin/ratelimits", json={"enabled": "no"}).status_code == 400
        server.set_rate_limits(True)
        assert httpx.get(f"{server.url}/_standin/ratelimits").json()["enabled"] is True


# Users.


def test_users_can_be_added_and_listed(default: StandinServer) -> None:
    added = httpx.post(
        f"{default.url}/_standin/users", json={"id": "U0DAVE", "name": "dave", "channels": ["incidents"]}
    )
    assert added.status_code == 200
    assert [user["id"] for user in added.json()["users"]] == [BOT_USER_ID, "U0ALICE", "U0BOB", "U0CAROL", "U0DAVE"]
    assert "U0DAVE" in default.channel("incidents")["members"]  # type: ignore[index]
    again = httpx.post(f"{default.url}/_standin/users", json={"id": "U0DAVE", "name": "dave"})
    assert again.status_code == 409
    bad = httpx.post(f"{default.url}/_standin/users", json={"id": "dave", "name": "dave"})
    assert bad.status_code == 400 and "Slack user id" in bad.json()["error"]
    default.add_user(User("U0ERIN", "erin", "Erin"))
    assert httpx.post(
        f"{default.url}/_standin/response_urls", json={"channel": "incidents", "user": "U0ERIN"}
    ).is_success


# Socket Mode.


def test_socket_mode_refresh_requested_makes_bolt_reconnect(default: StandinServer) -> None:
    received: list[str] = []
    app = App(client=_client(default), token_verification_enabled=False, logger=logging.getLogger("refresh-test"))

    @app.event("app_mention")
    def on_mention(event: dict[str, Any]) -> None:
        received.append(event["text"])

    handler = SocketModeHandler(app, DEFAULT_APP_TOKEN, web_client=_client(default))
    handler.connect()  # type: ignore[no-untyped-call]
    try:
        wait_for(lambda: default.socket_connections == 1)
        assert default.disconnect_socket("refresh_requested") == 1
        wait_for(lambda: len(default.calls("apps.connections.open")) == 2)
        wait_for(lambda: default.socket_connections == 1, timeout=10)  # the old one closed, the new one open
        envelope = default.push_envelope("events_api", {"type": "event_callback", "event": _mention("after")})
        assert default.wait_for_ack(envelope) is not None
        wait_for(lambda: received == ["after"])
    finally:
        handler.close()  # type: ignore[no-untyped-call]


def _mention(text: str) -> dict[str, Any]:
    return {"type": "app_mention", "user": "U0ALICE", "text": text, "ts": "1.000001", "channel": "C0INCIDENTS"}


def test_socket_disconnect_hook_checks_the_reason(default: StandinServer) -> None:
    hook = f"{default.url}/_standin/socket/disconnect"
    assert httpx.post(hook, json={"reason": "because"}).status_code == 400
    assert httpx.post(hook, json={}).json() == {"ok": True, "connections": 0}
