"""Slack configurations, against the stand-in over loopback: Socket Mode without a signing secret builds,
connects and answers over the socket, while ``/slack/events`` (HTTP mode, not configured) answers 404 and runs
nothing; stand-in mode creates no channel that the bot would not create on Slack."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import func, select

from bot.incidents.models import Incident
from bot.runtime import Runtime
from bot.settings import Route, Settings
from bot.slack.models import SeenRequest
from bot.standin.driver import SlackDriver
from bot.standin.server import StandinServer
from bot.standin.signing import signed_headers
from bot.standin.workspace import Workspace
from tests.support import serve_in_thread, wait_for

pytestmark = pytest.mark.db


@pytest.fixture
def standin(tmp_path: Path) -> Iterator[StandinServer]:
    """A stand-in of its own, playing real Slack for a bot in ``real`` mode."""
    with StandinServer(tmp_path / "slack.sqlite") as server:
        yield server


def socket_mode_settings(settings: Settings, standin: StandinServer, secret: SecretStr | None = None) -> Settings:
    """What ``deploy/slack-manifest-socket.yml`` prescribes: a bot token and an app token, no signing secret."""
    workspace = Workspace()
    return settings.model_copy(
        update={
            "slack_mode": "real",
            "slack_api_url": standin.api_url,
            "slack_bot_token": SecretStr(workspace.bot_token),
            "slack_app_token": SecretStr(workspace.app_token),
            "slack_signing_secret": secret,
        }
    )


@pytest.mark.parametrize("unset", [None, SecretStr(""), SecretStr("  ")], ids=["unset", "empty", "blank"])
def test_socket_mode_without_a_signing_secret_builds_and_serves_over_the_socket(
    settings: Settings, standin: StandinServer, unset: SecretStr | None
) -> None:
    runtime = Runtime.build(socket_mode_settings(settings, standin, unset))
    assert (runtime.slack.mode, runtime.slack.signing_secret) == ("real", None)
    with serve_in_thread(runtime.asgi_app()) as url:
        assert runtime.slack.socket_handler is not None
        with SlackDriver(standin.url, bot_url=url, signing_secret="unused") as driver:
            delivery = driver.slash_command("/incident", "declare Checkout is down", via_socket=True, wait_responses=3)
        assert delivery.transport == "socket" and delivery.acked
        [incident] = wait_for(lambda: _incidents(runtime))
        assert incident.title == "Checkout is down"


@pytest.mark.parametrize("secret", ["", "some-secret"])
def test_slack_events_is_404_and_runs_nothing_without_http_mode(
    settings: Settings, standin: StandinServer, secret: str
) -> None:
    """Signed with an empty key (what an old slack-sdk accepted) or any other: nobody gets through."""
    runtime = Runtime.build(socket_mode_settings(settings, standin))
    body = urlencode({"command": "/incident", "text": "declare forged", "user_id": "U0ALICE"}).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if secret:
        headers |= signed_headers(secret, int(time.time()), body)
    else:
        headers |= {"X-Slack-Request-Timestamp": str(int(time.time())), "X-Slack-Signature": "v0=" + "0" * 64}
    with serve_in_thread(runtime.asgi_app()) as url:  # its shutdown releases the database
        answer = httpx.post(f"{url}/slack/events", content=body, headers=headers, timeout=10)
        assert answer.status_code == 404
        assert "SLACK_SIGNING_SECRET" in answer.json()["error"]
        assert _incidents(runtime) == []
        with runtime.database.read() as session:
            assert session.scalar(select(func.count()).select_from(SeenRequest)) == 0


def _incidents(runtime: Runtime) -> list[Incident]:
    with runtime.database.read() as session:
        return list(session.scalars(select(Incident)))


def test_standin_mode_creates_no_channel_the_settings_name(settings: Settings) -> None:
    """Slack has no channel because a setting names it: the stand-in starts as an admin left it, and a channel
    that does not exist stays missing (and is reported), never conjured up."""
    configured = settings.model_copy(
        update={"alerts_channel": "#ops-alerts", "routes": (Route("team", "payments", "payments"),)}
    )
    runtime = Runtime.build(configured)
    with serve_in_thread(runtime.asgi_app()):
        standin = runtime.slack.standin
        assert standin is not None
        assert standin.channel("ops-alerts") is None
        assert standin.channel("payments") is None
        incidents = standin.channel("incidents")  # the default workspace: #incidents, the bot invited
        assert incidents is not None
