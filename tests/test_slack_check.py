"""``incibot slack check`` and the Slack state in ``/readyz``, against the stand-in over real HTTP."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from pydantic import SecretStr

from bot.runtime import Runtime
from bot.settings import Route, Settings
from bot.slack.check import CheckResult, SlackUnreachable, check_settings
from bot.slack.health import SlackHealth
from bot.standin.driver import SlackDriver
from bot.standin.server import StandinServer
from bot.standin.workspace import BOT_USER_ID, ChannelSeed, Workspace
from tests.conftest import auth
from tests.processes import incibot_env, run_incibot
from tests.support import am_alert, am_group, free_port, serve_in_thread, wait_for

READ_ONLY = {"auth.test", "apps.connections.open", "conversations.list", "conversations.info", "usergroups.users.list"}
HTTP_MANIFEST = Path(__file__).resolve().parent.parent / "deploy" / "slack-manifest.yml"

StandinFactory = Callable[[Workspace], StandinServer]


@pytest.fixture
def start_standin(tmp_path: Path) -> Iterator[StandinFactory]:
    servers: list[StandinServer] = []

    def start(workspace: Workspace) -> StandinServer:
        server = StandinServer(tmp_path / f"standin-{len(servers)}.sqlite", workspace=workspace)
        servers.append(server)
        server.start()
        return server

    yield start
    for server in servers:
        server.stop()


def real_settings(standin: StandinServer, tmp_path: Path, *, socket: bool = False, **fields: Any) -> Settings:
    """Settings for real mode against ``standin``: HTTP mode (signing secret), or Socket Mode (app token)."""
    workspace = standin.workspace
    credentials: dict[str, Any] = {"slack_bot_token": SecretStr(workspace.bot_token)}
    if socket:
        credentials["slack_app_token"] = SecretStr(workspace.app_token)
    else:
        credentials["slack_signing_secret"] = SecretStr("0123456789abcdef0123456789abcdef")
    values: dict[str, Any] = {"state_dir": tmp_path / "var", "slack_mode": "real", "slack_api_url": standin.api_url}
    return Settings(**(values | credentials | fields))


def check(settings: Settings) -> CheckResult:
    return check_settings(settings)


def one(problems: list[str], text: str) -> str:
    found = [problem for problem in problems if text in problem]
    assert len(found) == 1, f"{text!r} in {problems}"
    return found[0]


# --- what it finds --------------------------------------------------------------------------------------


def test_a_set_up_workspace_passes_and_the_check_changes_nothing(start_standin: StandinFactory, tmp_path: Path) -> None:
    standin = start_standin(Workspace.default())
    before = standin.channel("incidents")
    settings = real_settings(
        standin,
        tmp_path,
        routes=(Route("team", "db", "incidents"), Route("team", "web", "C0INCIDENTS")),
        responders=frozenset({"U0ALICE", "S0ONCALL"}),
    )

    result = check(settings)

    assert result.problems == []
    assert result.ok
    assert (result.workspace, result.bot_name) == ("Incibot Stand-in", "incibot")
    methods = {call["method"] for call in standin.calls()}
    assert {"auth.test", "conversations.list", "usergroups.users.list"} <= methods
    assert methods <= READ_ONLY, f"the check called {methods - READ_ONLY}"
    assert standin.channel("incidents") == before
    assert standin.messages("incidents") == []


def test_a_fresh_install_names_each_missing_channel_with_its_fix(start_standin: StandinFactory, tmp_path: Path) -> None:
    standin = start_standin(Workspace.bare())
    settings = real_settings(
        standin, tmp_path, routes=(Route("team", "pay", "payments-incidents"), Route("team", "web", "general"))
    )

    result = check(settings)

    assert one(result.problems, "#incidents") == (
        "channel #incidents not found: create it and invite @incibot (a private channel is invisible until "
        "@incibot is invited), or set INCIBOT_ALERTS_CHANNEL"
    )
    assert one(result.problems, "#payments-incidents").endswith("or change INCIBOT_ROUTES")
    assert len(result.problems) == 2, result.problems
    # The bot is in no channel: it may post to public #general (chat:write.public) and serve joins it.
    assert one(result.warnings, "#general").startswith("@incibot is not in #general yet")
    assert {call["method"] for call in standin.calls()} <= READ_ONLY
    assert BOT_USER_ID not in (standin.channel("general") or {})["members"]


def test_a_private_channel_counts_only_once_the_bot_is_invited(start_standin: StandinFactory, tmp_path: Path) -> None:
    private = ChannelSeed("G0SECRET01", "security-incidents", ("U0ALICE",), is_private=True)
    invited = ChannelSeed("G0SECRET02", "sre-private", ("U0ALICE", BOT_USER_ID), is_private=True)
    standin = start_standin(replace(Workspace.bare(), channels=(private, invited)))

    result = check(real_settings(standin, tmp_path, alerts_channel="security-incidents"))
    assert one(result.problems, "security-incidents").startswith("channel #security-incidents not found")
    assert check(real_settings(standin, tmp_path, alerts_channel="#sre-private")).ok


def test_channels_given_by_id(start_standin: StandinFactory, tmp_path: Path) -> None:
    standin = start_standin(Workspace.default())
    assert check(real_settings(standin, tmp_path, alerts_channel="C0INCIDENTS")).ok
    result = check(real_settings(standin, tmp_path, alerts_channel="C0NOSUCH99"))
    assert one(result.problems, "C0NOSUCH99").startswith("channel C0NOSUCH99 not found")


def test_responders_resolve(start_standin: StandinFactory, tmp_path: Path) -> None:
    workspace = replace(Workspace.default(), user_groups=(("S0ONCALL", ("U0ALICE",)), ("S0EMPTY", ())))
    standin = start_standin(workspace)
    responders = frozenset({"U0ALICE", "W0ENTERPRISE", "S0ONCALL", "S0EMPTY", "S0GONE", "alice"})

    result = check(real_settings(standin, tmp_path, responders=responders))

    assert one(result.problems, "S0GONE") == "user group S0GONE (INCIBOT_RESPONDERS) not found: fix INCIBOT_RESPONDERS"
    assert one(result.problems, "'alice'").startswith("INCIBOT_RESPONDERS: 'alice' is neither a Slack user id")
    assert len(result.problems) == 2, result.problems
    assert one(result.warnings, "S0EMPTY").endswith("has no members: nobody in it can ack or resolve")


def test_missing_scopes_are_named_once_with_their_fix(start_standin: StandinFactory, tmp_path: Path) -> None:
    manifest = yaml.safe_load(HTTP_MANIFEST.read_text())
    bot_scopes = manifest["oauth_config"]["scopes"]["bot"]
    manifest["oauth_config"]["scopes"]["bot"] = [s for s in bot_scopes if s != "groups:read"] + ["users:read"]
    path = tmp_path / "manifest.yml"
    path.write_text(yaml.safe_dump(manifest))
    standin = start_standin(replace(Workspace.default(), manifest=path))

    result = check(real_settings(standin, tmp_path))

    problem = one(result.problems, "groups:read")
    assert problem.startswith("the bot token lacks the groups:read scope (")
    assert "reinstall the app" in problem
    # conversations.list (types=public_channel,private_channel) fails for the same reason: not reported twice.
    assert len(result.problems) == 1, result.problems
    assert any(call["error"] == "missing_scope" for call in standin.calls("conversations.list"))
    assert one(result.warnings, "users:read")


def test_a_refused_bot_token_stops_the_check(start_standin: StandinFactory, tmp_path: Path) -> None:
    standin = start_standin(Workspace.default())

    result = check(real_settings(standin, tmp_path, slack_bot_token=SecretStr("xoxb-not-this-one")))

    assert result.problems == [
        "SLACK_BOT_TOKEN is refused by Slack (invalid_auth): install the app to the workspace and copy the "
        "Bot User OAuth Token (xoxb-…) from OAuth & Permissions"
    ]
    assert [call["method"] for call in standin.calls()] == ["auth.test"]


def test_socket_mode_needs_an_app_token_that_can_connect(start_standin: StandinFactory, tmp_path: Path) -> None:
    standin = start_standin(Workspace.default())
    settings = real_settings(standin, tmp_path, socket=True)
    assert settings.slack_signing_secret is None
    assert check(settings).ok  # no signing secret is needed in Socket Mode
    assert standin.calls("apps.connections.open")

    swapped = check(replace_token(settings, slack_app_token=settings.slack_bot_token))
    assert one(swapped.problems, "SLACK_APP_TOKEN").startswith(
        "SLACK_APP_TOKEN cannot open a Socket Mode connection (not_allowed_token_type)"
    )
    wrong = check(replace_token(settings, slack_app_token=SecretStr("xapp-1-revoked")))
    assert one(wrong.problems, "SLACK_APP_TOKEN").startswith(
        "SLACK_APP_TOKEN cannot open a Socket Mode connection (invalid_auth)"
    )


def test_an_app_token_without_connections_write(start_standin: StandinFactory, tmp_path: Path) -> None:
    standin = start_standin(replace(Workspace.default(), app_token_scopes=("authorizations:read",)))

    result = check(real_settings(standin, tmp_path, socket=True))

    assert result.problems == [
        "SLACK_APP_TOKEN cannot open a Socket Mode connection (missing_scope): create an app-level token with "
        "the connections:write scope (Basic Information → App-Level Tokens)"
    ]


def test_no_way_to_receive_commands_is_a_problem(start_standin: StandinFactory, tmp_path: Path) -> None:
    standin = start_standin(Workspace.default())
    settings = real_settings(standin, tmp_path, slack_signing_secret=SecretStr("  "))
    assert one(check(settings).problems, "SLACK_SIGNING_SECRET").startswith(
        "neither SLACK_SIGNING_SECRET (HTTP mode) nor SLACK_APP_TOKEN (Socket Mode) is set"
    )


def test_without_a_bot_token_there_is_nothing_to_check(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path / "var", slack_bot_token=None, slack_app_token=SecretStr("xapp-1-x"))
    assert check(settings).problems == [
        "SLACK_BOT_TOKEN is not set: install the app and set its Bot User OAuth Token (xoxb-…)"
    ]


def test_slack_out_of_reach(start_standin: StandinFactory, tmp_path: Path) -> None:
    standin = start_standin(Workspace.default())
    settings = real_settings(standin, tmp_path)
    standin.add_fault("server_error", method="auth.test", status=503, times=None)
    with pytest.raises(SlackUnreachable, match=r"auth\.test answered HTTP 503"):
        check(settings)
    standin.clear_faults()
    standin.add_fault("server_error", method="conversations.list", status=500, times=None)
    with pytest.raises(SlackUnreachable, match=r"conversations\.list answered HTTP 500"):
        check(settings)
    closed = settings.model_copy(update={"slack_api_url": f"http://127.0.0.1:{free_port()}/api/"})
    with pytest.raises(SlackUnreachable, match=r"auth\.test"):
        check(closed)


def replace_token(settings: Settings, **tokens: SecretStr | None) -> Settings:
    return settings.model_copy(update=tokens)


# --- the command ------------------------------------------------------------------------------------------


def test_the_command_prints_one_line_per_problem_and_exits_by_outcome(
    start_standin: StandinFactory, tmp_path: Path
) -> None:
    default, bare = start_standin(Workspace.default()), start_standin(Workspace.bare())

    def env(standin: StandinServer, **extra: str) -> dict[str, str]:
        variables = incibot_env(tmp_path / "var", slack_mode="real", slack_api_url=standin.api_url, **extra)
        variables |= {"SLACK_BOT_TOKEN": standin.workspace.bot_token, "SLACK_SIGNING_SECRET": "s3cret-signing"}
        return variables

    passed = run_incibot("slack", "check", env=env(default))
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert passed.stdout.splitlines() == ["workspace 'Incibot Stand-in', bot @incibot, HTTP mode", "Slack set-up OK"]

    failed = run_incibot("slack", "check", env=env(bare, routes="team=web:#web-incidents"))
    assert failed.returncode == 1, failed.stdout + failed.stderr
    lines = failed.stdout.splitlines()
    assert [line for line in lines if line.startswith("problem: ")] == [
        "problem: channel #incidents not found: create it and invite @incibot (a private channel is invisible until "
        "@incibot is invited), or set INCIBOT_ALERTS_CHANNEL",
        "problem: channel #web-incidents not found: create it and invite @incibot (a private channel is invisible "
        "until @incibot is invited), or change INCIBOT_ROUTES",
    ]
    assert lines[-1] == "2 problems"
    assert "Traceback" not in failed.stderr

    unreachable = run_incibot(
        "slack", "check", env=env(default) | {"INCIBOT_SLACK_API_URL": f"http://127.0.0.1:{free_port()}/api/"}
    )
    assert unreachable.returncode == 2, unreachable.stdout + unreachable.stderr
    assert unreachable.stderr.startswith("incibot: Slack cannot be reached at http://127.0.0.1:")
    assert "Traceback" not in unreachable.stderr
    assert {call["method"] for call in default.calls()} | {call["method"] for call in bare.calls()} <= READ_ONLY


# --- /readyz ----------------------------------------------------------------------------------------------


def test_readyz_waits_for_the_first_check_then_stays_ready() -> None:
    release = threading.Event()
    outcomes: list[CheckResult | Exception] = [CheckResult(), CheckResult(problems=["channel #x not found"])]

    def slow_check() -> CheckResult:
        release.wait(10)
        outcome = outcomes.pop(0) if outcomes else SlackUnreachable("auth.test: connection refused")
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    health = SlackHealth("real", slow_check, interval=0.05, problem_interval=0.05)
    health.start()
    try:
        assert not health.ready
        assert health.status() == {"mode": "real", "ok": None, "problems": []}
        release.set()
        wait_for(lambda: health.ready)
        wait_for(lambda: health.status()["problems"] == ["Slack cannot be reached (auth.test: connection refused)"])
        assert health.ready  # whatever Slack's state once the start-up check is done
        assert health.status()["ok"] is False
    finally:
        health.stop()


def test_readyz_reports_the_slack_state_and_ingest_works_regardless(
    start_standin: StandinFactory, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    standin = start_standin(Workspace.bare())
    real = settings.model_copy(
        update={
            "slack_mode": "real",
            "slack_api_url": standin.api_url,
            "slack_bot_token": SecretStr(standin.workspace.bot_token),
            "slack_signing_secret": SecretStr("0123456789abcdef"),
        }
    )
    runtime = Runtime.build(real)
    caplog.set_level(logging.ERROR, logger="bot.slack.health")
    try:
        with serve_in_thread(runtime.asgi_app()) as url, httpx.Client(base_url=url, timeout=10) as http:
            ready = wait_for(lambda: (answer := http.get("/readyz")).status_code == 200 and answer)
            slack = ready.json()["slack"]
            assert slack["mode"] == "real"
            assert slack["ok"] is False
            assert one(slack["problems"], "#incidents").startswith("channel #incidents not found")
            accepted = http.post("/alerts/alertmanager", json=am_group([am_alert()]), headers=auth())
            assert accepted.status_code == 202, accepted.text
    finally:
        runtime.database.dispose()
    assert any(
        record.levelno == logging.ERROR and "channel #incidents not found" in record.getMessage()
        for record in caplog.records
    )


def test_socket_mode_serves_while_slack_refuses_the_connection_and_connects_later(
    start_standin: StandinFactory, settings: Settings
) -> None:
    standin = start_standin(Workspace.default())
    standin.add_fault("server_error", method="apps.connections.open", status=503, times=3)
    real = settings.model_copy(
        update={
            "slack_mode": "real",
            "slack_api_url": standin.api_url,
            "slack_bot_token": SecretStr(standin.workspace.bot_token),
            "slack_app_token": SecretStr(standin.workspace.app_token),
        }
    )
    runtime = Runtime.build(real)
    try:
        with serve_in_thread(runtime.asgi_app()) as url, httpx.Client(base_url=url, timeout=10) as http:
            accepted = http.post("/alerts/alertmanager", json=am_group([am_alert()]), headers=auth())
            assert accepted.status_code == 202, accepted.text
            assert http.get("/readyz").status_code == 503  # not connected yet
            wait_for(lambda: http.get("/readyz").status_code == 200, timeout=20, interval=0.1)
            assert runtime.slack.socket_connected()
            # The start-up check found Slack out of reach; connecting checks again at once.
            wait_for(lambda: http.get("/readyz").json()["slack"]["ok"], timeout=10, interval=0.1)
            with SlackDriver(standin.url) as driver:
                assert driver.slash_command("/incident", "list", via_socket=True).acked
    finally:
        runtime.database.dispose()


def test_readyz_in_standin_mode(settings: Settings) -> None:
    runtime = Runtime.build(settings)
    try:
        with serve_in_thread(runtime.asgi_app()) as url:
            answer = httpx.get(f"{url}/readyz", timeout=10)
            assert answer.status_code == 200, answer.text
            assert answer.json()["slack"] == {"mode": "standin", "ok": True, "problems": []}
    finally:
        runtime.database.dispose()


def test_readyz_answers_503_until_the_start_up_check_finished(settings: Settings) -> None:
    runtime = Runtime.build(settings)
    release = threading.Event()

    def held_check() -> CheckResult:
        release.wait(10)
        return CheckResult()

    runtime.slack.health = SlackHealth("standin", held_check)
    try:
        with serve_in_thread(runtime.asgi_app()) as url, httpx.Client(base_url=url, timeout=10) as http:
            starting = http.get("/readyz")
            assert starting.status_code == 503
            assert starting.json()["status"] == "starting"
            assert http.post("/alerts/alertmanager", json=am_group([am_alert()]), headers=auth()).status_code == 202
            release.set()
            wait_for(lambda: http.get("/readyz").status_code == 200)
    finally:
        release.set()
        runtime.database.dispose()
