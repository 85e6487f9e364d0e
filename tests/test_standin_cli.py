"""``incibot standin serve`` and ``incibot standin add-user`` as people run them (real processes), and
``incibot slack command`` ending every failure in one clear line, never a traceback (defect 10)."""

from __future__ import annotations

import signal
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from slack_sdk import WebClient

from tests.processes import ServeProcess, StandinProcess, incibot_env, run_incibot
from tests.support import free_port

STATE_KEYS = {"url", "api_url", "workspace_url", "bot_token", "app_token", "signing_secret", "bot_user_id"}


@pytest.fixture
def standin(tmp_path: Path) -> Iterator[StandinProcess]:
    process = StandinProcess(tmp_path / "var")
    yield process
    process.stop(signal.SIGKILL)


def test_standin_serve_writes_its_state_file_answers_slack_sdk_and_stops_on_sigterm(
    standin: StandinProcess,
) -> None:
    info = standin.info
    assert set(info) == STATE_KEYS
    assert stat.S_IMODE(standin.state_file.stat().st_mode) == 0o600
    assert info["api_url"] == info["url"] + "/api/"
    assert f"slack stand-in: {info['url']}" in standin.log()
    assert f"local workspace: {info['url']}/" in standin.log() and info["workspace_url"] == info["url"] + "/"
    assert 'id="ws-messages"' in httpx.get(info["workspace_url"], timeout=10).text
    slack = WebClient(base_url=info["api_url"], token=info["bot_token"], retry_handlers=[])
    answer = slack.auth_test()
    assert answer["user_id"] == info["bot_user_id"]
    assert answer.headers["x-oauth-scopes"].split(",")[0] == "chat:write"
    view = httpx.get(f"{info['url']}/_standin/messages", params={"channel": "incidents"}).json()
    assert view == {"channel": "incidents", "messages": []}
    assert not list(standin.state_dir.glob(".standin.json.*"))  # no temporary file left behind
    assert standin.stop() == 0
    assert not standin.state_file.exists()


def test_standin_serve_restarts_with_its_channels_and_stops_on_sigint(tmp_path: Path) -> None:
    first = StandinProcess(tmp_path / "var", "--workspace", "bare")
    slack = WebClient(base_url=first.info["api_url"], token=first.info["bot_token"], retry_handlers=[])
    assert [channel["name"] for channel in slack.conversations_list()["channels"]] == ["general"]
    slack.conversations_create(name="made-before-restart")
    assert first.stop(signal.SIGINT) == 0
    (tmp_path / "var" / "standin.json").write_text("{}")  # a stale file, as after a crash: replaced, not trusted
    second = StandinProcess(tmp_path / "var", "--workspace", "bare")
    try:
        assert second.info["signing_secret"] != first.info["signing_secret"]
        slack = WebClient(base_url=second.info["api_url"], token=second.info["bot_token"], retry_handlers=[])
        names = sorted(channel["name"] for channel in slack.conversations_list()["channels"])
        assert names == ["general", "made-before-restart"]
    finally:
        assert second.stop() == 0


def test_standin_serve_installs_the_given_manifest(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.yml"
    manifest.write_text(yaml.safe_dump({"oauth_config": {"scopes": {"bot": ["chat:write", "channels:read"]}}}))
    process = StandinProcess(tmp_path / "var", "--manifest", str(manifest), "--port", str(free_port()))
    try:
        answer = httpx.post(
            process.info["api_url"] + "conversations.history",
            data={"channel": "C0INCIDENTS"},
            headers={"Authorization": f"Bearer {process.info['bot_token']}"},
        )
        assert answer.json() == {
            "ok": False,
            "error": "missing_scope",
            "needed": "channels:history",
            "provided": "chat:write,channels:read",
        }
    finally:
        assert process.stop() == 0


def test_standin_serve_refuses_what_it_cannot_do(tmp_path: Path) -> None:
    env = incibot_env(tmp_path / "var")
    public = run_incibot("standin", "serve", "--host", "0.0.0.0", env=env)  # noqa: S104 - must be refused
    assert public.returncode == 2
    assert public.stderr.strip().endswith("--host 0.0.0.0 is not a loopback address")
    missing = run_incibot("standin", "serve", "--manifest", str(tmp_path / "nope.yml"), env=env)
    assert missing.returncode == 2 and "cannot read the manifest" in missing.stderr
    assert "Traceback" not in public.stderr + missing.stderr
    assert not (tmp_path / "var" / "standin.json").exists()


# Defect 10: `incibot slack command` against a running bot.


def _one_line_failure(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, f"exit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("incibot: "), result.stderr
    return lines[0]


@pytest.fixture
def bot(tmp_path: Path, database_url: str) -> Iterator[dict[str, str]]:
    env = incibot_env(tmp_path / "bot-var", database_url)
    with ServeProcess(env, tmp_path / "serve.log"):
        yield env


def test_a_slash_command_from_an_unknown_user_says_who_is_known_and_how_to_add_one(bot: dict[str, str]) -> None:
    unknown = run_incibot("slack", "command", "/incident ack 1", "--user", "U0SOMEONE", env=bot)
    line = _one_line_failure(unknown)
    assert "U0SOMEONE" in line
    assert "U0ALICE (alice), U0BOB (bob), U0CAROL (carol)" in line
    assert "incibot standin add-user U0SOMEONE --name NAME" in line
    added = run_incibot("standin", "add-user", "U0SOMEONE", "--name", "someone", env=bot)
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip() == "added U0SOMEONE (someone) (member of #incidents)"
    known = run_incibot("slack", "command", "/incident list", "--user", "U0SOMEONE", env=bot)
    assert known.returncode == 0, known.stderr
    assert known.stdout.startswith("ack: HTTP 200")
    again = run_incibot("standin", "add-user", "U0SOMEONE", "--name", "someone", env=bot)
    assert (
        again.returncode == 1 and again.stderr.strip() == "incibot: the stand-in refused: user U0SOMEONE exists already"
    )


def test_every_other_slash_command_failure_is_one_line(bot: dict[str, str], tmp_path: Path) -> None:
    no_channel = run_incibot("slack", "command", "/incident list", "--channel", "nowhere", env=bot)
    assert "no channel nowhere" in _one_line_failure(no_channel)
    closed = f"http://127.0.0.1:{free_port()}"
    no_standin = run_incibot("slack", "command", "/incident list", "--standin-url", closed, env=bot)
    assert f"the Slack stand-in at {closed} failed" in _one_line_failure(no_standin)
    no_bot = run_incibot("slack", "command", "/incident list", "--bot-url", closed, env=bot)
    assert "no ack" in _one_line_failure(no_bot)
    forged = run_incibot("slack", "command", "/incident list", "--signing-secret", "forged", env=bot)
    assert "refused the signature" in forged.stderr and forged.returncode == 1
    nothing = run_incibot("slack", "command", "/incident list", env=incibot_env(tmp_path / "empty"))
    assert nothing.returncode == 2 and "no running stand-in found" in nothing.stderr
    add_nowhere = run_incibot("standin", "add-user", "U0X", "--name", "x", env=incibot_env(tmp_path / "empty"))
    assert add_nowhere.returncode == 2 and "no running stand-in found" in add_nowhere.stderr
