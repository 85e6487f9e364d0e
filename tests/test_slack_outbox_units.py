"""The outbox's parts on their own: reading Slack's rate-limit answers (both forms), per-method pacing, and the
channel directory against the stand-in (pagination, ids, caching, errors)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.web import SlackResponse

from bot.slack.channels import ChannelDirectory, ChannelInfo
from bot.slack.outbox.pacing import DEFAULT_RETRY_AFTER, Pacing, retry_after
from bot.standin.server import StandinServer
from bot.standin.workspace import BOT_USER_ID, DEFAULT_BOT_TOKEN, ChannelSeed, Workspace

T0 = datetime(2026, 12, 1, 12, tzinfo=UTC)


def slack_error(status: int, data: dict[str, Any], headers: dict[str, Any] | None = None) -> SlackApiError:
    """What slack_sdk raises for an answer (the client's own type, as its HTTP layer builds it)."""
    client = WebClient(token=DEFAULT_BOT_TOKEN)
    response = SlackResponse(
        client=client,
        http_verb="POST",
        api_url="https://slack.com/api/chat.update",
        req_args={},
        data=data,
        headers=headers or {},
        status_code=status,
    )
    return SlackApiError("The request to the Slack API failed.", response)


@pytest.mark.parametrize(
    ("status", "data", "headers", "expected"),
    [
        (429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "7"}, timedelta(seconds=7)),
        (429, {"ok": False, "error": "ratelimited"}, {"retry-after": ["3"]}, timedelta(seconds=3)),
        (429, {"ok": False, "error": "ratelimited"}, {}, DEFAULT_RETRY_AFTER),
        (200, {"ok": False, "error": "ratelimited"}, {"Retry-After": "12"}, timedelta(seconds=12)),
        (200, {"ok": False, "error": "rate_limited"}, {}, DEFAULT_RETRY_AFTER),
        (200, {"ok": False, "error": "rate_limited"}, {"Retry-After": "soon"}, DEFAULT_RETRY_AFTER),
        (200, {"ok": False, "error": "channel_not_found"}, {"Retry-After": "5"}, None),
        (500, {"ok": False, "error": "fatal_error"}, {}, None),
    ],
)
def test_rate_limit_answers_in_both_forms(
    status: int, data: dict[str, Any], headers: dict[str, Any], expected: timedelta | None
) -> None:
    assert retry_after(slack_error(status, data, headers)) == expected


def test_a_pause_holds_only_its_method_and_for_posts_only_its_channel() -> None:
    pacing = Pacing(post_interval=timedelta(seconds=1), update_interval=timedelta(seconds=2))
    pacing.rate_limited("chat.update", T0 + timedelta(seconds=30))
    pacing.rate_limited("chat.postMessage", T0 + timedelta(seconds=10), channel="C0PAYMENTS")
    pacing.rate_limited("conversations.list", T0 + timedelta(seconds=60), channel="C0PAYMENTS")

    assert pacing.ready_at("chat.update", T0, message=1) == T0 + timedelta(seconds=30)
    assert pacing.ready_at("chat.postMessage", T0, channel="C0PAYMENTS") == T0 + timedelta(seconds=10)
    assert pacing.ready_at("chat.postMessage", T0, channel="C0INCIDENTS") == T0
    assert pacing.ready_at("conversations.list", T0) == T0 + timedelta(seconds=60)  # a tier is per method
    assert pacing.ready_at("conversations.history", T0, channel="C0PAYMENTS") == T0

    pacing.called("chat.postMessage", T0, channel="C0INCIDENTS")
    pacing.called("chat.update", T0 + timedelta(seconds=30), message=1)
    assert pacing.ready_at("chat.postMessage", T0, channel="C0INCIDENTS") == T0 + timedelta(seconds=1)
    assert pacing.ready_at("chat.update", T0 + timedelta(seconds=30), message=1) == T0 + timedelta(seconds=32)
    assert pacing.ready_at("chat.update", T0 + timedelta(seconds=30), message=2) == T0 + timedelta(seconds=30)
    pacing.rate_limited("chat.update", T0 + timedelta(seconds=5))  # a shorter pause never shortens a longer one
    assert pacing.ready_at("chat.update", T0, message=3) == T0 + timedelta(seconds=30)


@pytest.fixture
def directory(tmp_path: Path) -> Iterator[tuple[ChannelDirectory, StandinServer]]:
    """A workspace with 450 public channels (three pages) and a private one the bot is in, one it is not."""
    public = tuple(ChannelSeed(f"C0PUB{n:05d}", f"team-{n:03d}", ("U0ALICE",)) for n in range(450))
    mine = ChannelSeed("C0MINE00001", "ops-private", (BOT_USER_ID, "U0ALICE"), is_private=True)
    hidden = ChannelSeed("C0HIDDEN001", "hr-private", ("U0ALICE",), is_private=True)
    workspace = Workspace(channels=(*public, mine, hidden))
    with StandinServer(tmp_path / "slack.sqlite", workspace=workspace, rate_limits=False) as standin:
        client = WebClient(base_url=standin.api_url, token=DEFAULT_BOT_TOKEN, retry_handlers=[], timeout=10)
        yield ChannelDirectory(client), standin


def test_channel_directory_finds_by_name_or_id_through_pages_and_caches(
    directory: tuple[ChannelDirectory, StandinServer],
) -> None:
    channels, standin = directory
    assert channels.find("#team-420") == ChannelInfo("C0PUB00420", "team-420", is_private=False, is_member=False)
    assert len(standin.calls("conversations.list")) == 3  # paginated until found
    assert channels.find("team-007") == ChannelInfo("C0PUB00007", "team-007", is_private=False, is_member=False)
    assert channels.find("ops-private") == ChannelInfo("C0MINE00001", "ops-private", is_private=True, is_member=True)
    assert len(standin.calls("conversations.list")) == 3  # cached
    assert channels.find("C0PUB00123") == ChannelInfo("C0PUB00123", "team-123", is_private=False, is_member=False)
    assert standin.calls("conversations.info") == []  # every listed channel is cached, by id too
    assert channels.find("hr-private") is None  # private without the bot: invisible, as on Slack
    assert channels.find("#nowhere") is None
    channels.joined("C0PUB00420")
    assert channels.cached("team-420") == ChannelInfo("C0PUB00420", "team-420", is_private=False, is_member=True)
    channels.forget("#team-420")
    assert channels.cached("C0PUB00420") is None


def test_channel_directory_passes_slack_errors_to_the_caller(directory: tuple[ChannelDirectory, StandinServer]) -> None:
    channels, standin = directory
    with pytest.raises(SlackApiError) as raised:
        channels.find("C0HIDDEN001")  # conversations.info on a private channel the bot is not in
    assert raised.value.response["error"] == "channel_not_found"
    standin.add_fault("ratelimited", method="conversations.list", retry_after=9)
    with pytest.raises(SlackApiError) as limited:
        channels.find("team-001")
    assert retry_after(limited.value) == timedelta(seconds=9)
    assert channels.find("team-001") is not None  # the next try asks again
    assert channels.find("C0MINE00001") == ChannelInfo("C0MINE00001", "ops-private", is_private=True, is_member=True)
    assert [call["params"]["channel"] for call in standin.calls("conversations.info")] == ["C0HIDDEN001"]
    fresh = ChannelDirectory(WebClient(base_url=standin.api_url, token=DEFAULT_BOT_TOKEN, retry_handlers=[]))
    assert fresh.find("C0PUB00001") == ChannelInfo("C0PUB00001", "team-001", is_private=False, is_member=False)
    assert len(standin.calls("conversations.info")) == 2  # by id: conversations.info
