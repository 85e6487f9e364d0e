"""Real mode, as a user runs it: ``incibot serve`` with ``INCIBOT_SLACK_MODE=real`` against ``incibot standin serve``
(a separate process, reached only through ``INCIBOT_SLACK_API_URL`` and the tokens, as Slack is), in HTTP mode and
in Socket Mode, from a fresh install (``bare``) and from a set-up workspace (``default``): ``incibot slack check``,
start-up, a post, a button, a slash command and a CLI resolve reaching the post.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.slack.blocks import ACK_ACTION
from bot.standin.driver import SlackDriver
from tests.conftest import TOKEN, auth
from tests.processes import ServeProcess, StandinProcess, incibot_env, run_incibot
from tests.support import am_alert, am_group, wait_for

SIGNING_SECRET = "8f2b6c0d4e1a7f3b9c5d2e8a6b4f1c7d"  # the secret this test gives both sides


def bot_env(tmp_path: Path, database_url: str, standin: dict[str, Any], *, socket: bool) -> dict[str, str]:
    """The settings a user sets for real Slack, pointed at the stand-in."""
    env = incibot_env(
        tmp_path / "var", database_url, slack_mode="real", slack_api_url=standin["api_url"], ingest_tokens=TOKEN
    )
    env["SLACK_BOT_TOKEN"] = standin["bot_token"]
    if socket:
        env["SLACK_APP_TOKEN"] = standin["app_token"]
    else:
        env["SLACK_SIGNING_SECRET"] = SIGNING_SECRET
    return env


def posts(standin: dict[str, Any], channel: str = "incidents") -> list[dict[str, Any]]:
    answer = httpx.get(f"{standin['url']}/_standin/messages", params={"channel": channel}, timeout=10)
    return list(answer.json()["messages"]) if answer.status_code == 200 else []


def calls(standin: dict[str, Any], method: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{standin['url']}/_standin/calls", params={"method": method}, timeout=10).json()
    found: list[dict[str, Any]] = answer["calls"]
    return found


def wait_for_post(bot: ServeProcess, standin: dict[str, Any], text: str) -> dict[str, Any]:
    """The post in #incidents whose text has ``text``, once it is there."""
    try:
        post: dict[str, Any] = wait_for(
            lambda: next((post for post in posts(standin) if text in post["text"]), None), timeout=20
        )
    except AssertionError:
        raise AssertionError(f"no post with {text!r} in #incidents: {posts(standin)}\n{bot.log()}") from None
    return post


def ready_slack_state(bot: ServeProcess) -> dict[str, Any]:
    """``/readyz``'s Slack state, once it answers 200 (the start-up check has finished)."""
    with httpx.Client(base_url=bot.url, timeout=5) as http:
        ready = wait_for(lambda: (answer := http.get("/readyz")).status_code == 200 and answer, timeout=20)
    slack: dict[str, Any] = ready.json()["slack"]
    return slack


def work_an_incident(bot: ServeProcess, standin: dict[str, Any], env: dict[str, str], *, socket: bool) -> None:
    """An alert → its post; the Ack button; ``/incident list``; ``incibot incidents resolve`` → the post."""
    alert = am_alert("KubePodCrashLooping", pod="cart-0")
    accepted = httpx.post(f"{bot.url}/alerts/alertmanager", json=am_group([alert]), headers=auth(), timeout=10)
    assert accepted.status_code == 202, accepted.text
    post = wait_for_post(bot, standin, "KubePodCrashLooping")

    bot_url = None if socket else bot.url
    with SlackDriver(standin["url"], bot_url=bot_url, signing_secret=SIGNING_SECRET) as driver:
        click = driver.block_action("incidents", str(post["ts"]), ACK_ACTION, user="U0BOB", via_socket=socket)
        assert click.acked, click
        acknowledged = wait_for_post(bot, standin, "acknowledged")
        assert acknowledged["ts"] == post["ts"]

        listed = driver.slash_command("/incident", "list", via_socket=socket, wait_responses=10)
        assert listed.acked, listed
        assert any("KubePodCrashLooping" in str(response) for response in [listed.body, *listed.responses]), listed

    resolved = run_incibot("incidents", "resolve", "1", "--note", "rolled back the deploy", "--by", "carol", env=env)
    assert resolved.returncode == 0, resolved.stdout + resolved.stderr
    assert wait_for_post(bot, standin, "resolved")["ts"] == post["ts"]
    assert len(posts(standin)) == 1


@pytest.mark.parametrize("socket", [False, True], ids=["http", "socket"])
@pytest.mark.parametrize("workspace", ["bare", "default"])
def test_real_mode(tmp_path: Path, database_url: str, workspace: str, socket: bool) -> None:
    process = StandinProcess(tmp_path / "standin", "--workspace", workspace)
    standin = process.info
    try:
        env = bot_env(tmp_path, database_url, standin, socket=socket)

        check = run_incibot("slack", "check", env=env)
        if workspace == "bare":  # a fresh install: #general only, the bot in no channel
            assert check.returncode == 1, check.stdout + check.stderr
            assert "problem: channel #incidents not found: create it and invite @incibot" in check.stdout
            # What the admin does next: create #incidents with the bot in it (here, the bot creates it).
            created = httpx.post(
                f"{standin['api_url']}conversations.create",
                data={"name": "incidents"},
                headers={"Authorization": f"Bearer {standin['bot_token']}"},
                timeout=10,
            ).json()
            assert created["ok"], created
            check = run_incibot("slack", "check", env=env)
        assert check.returncode == 0, check.stdout + check.stderr
        assert check.stdout.splitlines()[-1] == "Slack set-up OK"
        assert ("Socket Mode" if socket else "HTTP mode") in check.stdout

        opened = len(calls(standin, "apps.connections.open"))
        with ServeProcess(env, tmp_path / "serve.log") as bot:
            slack = ready_slack_state(bot)
            assert slack == {"mode": "real", "ok": True, "problems": []}, bot.log()
            # One connection; the start-up check takes the live socket as proof of the app token instead of
            # opening another (apps.connections.open is Tier 1: after the user's checks it would be refused).
            assert len(calls(standin, "apps.connections.open")) == opened + socket
            work_an_incident(bot, standin, env, socket=socket)
            assert bot.terminate() == 0
    finally:
        process.stop()
