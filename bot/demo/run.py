"""Runs the demo: a fresh state dir, the bot with every part on (search, learned correlation, classification,
root cause with the demo's topology, remediation in dry-run with the demo's catalogue, the virtual agent) and its
local workspace, then the story played once; the bot keeps serving until Ctrl-C unless told to stop."""

from __future__ import annotations

import json
import logging
import secrets
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import uvicorn
from pydantic import SecretStr
from sqlalchemy import func, select

from bot.db import migrate
from bot.demo import story
from bot.demo.clock import DemoClock
from bot.demo.player import Player, Probes, StoryError
from bot.incidents.models import Incident
from bot.knowledge.models import IncidentDocument
from bot.runtime import ALL_ROLES, Runtime, open_database
from bot.settings import Route, Settings
from bot.slack.models import OutboxItem, OutboxStatus
from bot.standin.driver import SlackDriver
from bot.state_files import read_json
from knowledge.embeddings import Embedder

log = logging.getLogger(__name__)

START_TIMEOUT = 120.0  # seconds for the bot to start (it loads its models first)


@dataclass(frozen=True)
class DemoOptions:
    host: str = "127.0.0.1"
    port: int = 8080
    state_dir: Path | None = None  # None: a new temporary directory
    speed: float = 10.0  # story seconds per wall second: the six-minute outage plays in 36 s
    stay: bool = True  # keep serving once the story is played (False: stop; tests)


class NotFresh(ValueError):
    """The state dir holds a database already: the demo seeds its own history into an empty one."""


def prepare_state_dir(state_dir: Path | None) -> Path:
    """The demo's state dir, with its topology and action catalogue written; NotFresh if it was used before."""
    path = state_dir or Path(tempfile.mkdtemp(prefix="incibot-demo-"))
    if (path / "incibot.db").exists():
        raise NotFresh(f"{path} holds an incibot database already; the demo needs a fresh state dir")
    path.mkdir(parents=True, exist_ok=True)
    (path / "topology.json").write_text(json.dumps(story.TOPOLOGY, indent=2) + "\n")
    (path / "actions.yml").write_text(story.ACTIONS_YAML)
    return path


def demo_settings(base: Settings, state_dir: Path, token: str) -> Settings:
    """``base`` (the environment's log level, model threads, LLM…) with everything the demo shows turned on."""
    return base.model_copy(
        update={
            "state_dir": state_dir,
            "database_url": None,
            "ingest_tokens": ((None, SecretStr(token)),),
            "slack_mode": "standin",
            "standin_port": 0,
            "alerts_channel": "incidents",
            "routes": (Route(*story.HISTORY_LABEL, story.HISTORY_CHANNEL),),
            "min_severity": "info",
            "responders": story.RESPONDERS,
            "knowledge": True,
            "correlation": "learned",
            "classification": True,
            "topology_file": state_dir / "topology.json",
            "remediation": "dry-run",
            "actions_file": state_dir / "actions.yml",
            "agent": True,
            "help_channel": None,
            "nightly_training": None,
            "process_deliveries": True,
        }
    )


def run_demo(
    base: Settings, options: DemoOptions, *, embedder: Embedder | None = None, say: Callable[[str], None] = print
) -> int:
    """Serve the demo on ``options.host:options.port`` and play the story; 0 once stopped, 1 if the story failed."""
    state_dir = prepare_state_dir(options.state_dir)
    token = secrets.token_urlsafe(24)
    settings = demo_settings(base, state_dir, token)
    database = open_database(settings)
    migrate.upgrade(database)
    clock = DemoClock(start_behind=timedelta(days=max(past.days_ago for past in story.HISTORY)))
    bot_url = f"http://{options.host}:{options.port}"
    runtime = Runtime.build(
        settings,
        clock=clock,
        database=database,
        bot_url=bot_url,
        embedder=embedder,
        standin_workspace=story.workspace(),
    )
    config = uvicorn.Config(
        runtime.asgi_app(ALL_ROLES),
        host=options.host,
        port=options.port,
        lifespan="on",
        log_config=None,
        access_log=False,
    )
    server = uvicorn.Server(config)
    outcome: list[int] = []

    def play() -> None:
        try:
            outcome.append(_play(server, runtime, clock, token, options, say))
        finally:
            if not options.stay or outcome != [0]:
                server.should_exit = True

    say(f"incibot demo: starting in {state_dir} (loading models: a few seconds)")
    threading.Thread(target=play, name="demo-story", daemon=True).start()
    server.run()
    return outcome[0] if outcome else 1


def _play(
    server: uvicorn.Server,
    runtime: Runtime,
    clock: DemoClock,
    token: str,
    options: DemoOptions,
    say: Callable[[str], None],
) -> int:
    if not _wait_started(server):
        say("incibot demo: the bot did not start (see the log above)")
        return 1
    standin = runtime.slack.standin
    assert standin is not None, "the demo runs in stand-in mode"
    state_dir, bot_url = runtime.settings.state_dir, runtime.bot_url or ""
    info = read_json(state_dir / "runtime.json")
    say(f"local workspace: {info.get('workspace_url') or standin.url + '/'}")
    signing_secret = runtime.slack.signing_secret or ""
    headers = {"Authorization": f"Bearer {token}"}
    with (
        httpx.Client(base_url=bot_url, headers=headers, timeout=30) as http,
        httpx.Client(base_url=standin.url, timeout=30) as standin_http,
        SlackDriver(standin.url, bot_url=bot_url, signing_secret=signing_secret, workspace=story.workspace()) as driver,
    ):
        player = Player(http, standin_http, driver, clock, _probes(runtime), speed=options.speed, say=say)
        try:
            incident = player.play()
        except (StoryError, httpx.HTTPError) as exc:
            say(f"incibot demo: the story stopped: {exc}")
            return 1
    say(
        f"the story is played: incident #{incident} holds the cascade; approve the rollback as bob in the page, "
        f"or ask the bot something as dana. State dir: {state_dir}"
        + (" (Ctrl-C stops the demo)" if options.stay else "")
    )
    return 0


def _wait_started(server: uvicorn.Server) -> bool:
    deadline = time.monotonic() + START_TIMEOUT
    while not server.started and not server.should_exit and time.monotonic() < deadline:
        time.sleep(0.05)
    return bool(server.started)


def _probes(runtime: Runtime) -> Probes:
    def latest_incident() -> int | None:
        with runtime.database.read() as session:
            value: int | None = session.scalar(select(func.max(Incident.id)))
            return value

    def outbox_idle() -> bool:
        pending = select(func.count()).select_from(OutboxItem).where(OutboxItem.status == OutboxStatus.PENDING)
        with runtime.database.read() as session:
            return not session.scalar(pending)

    def history_indexed() -> bool:
        pending = select(func.count()).select_from(IncidentDocument).where(IncidentDocument.pending)
        with runtime.database.read() as session:
            return not session.scalar(pending)

    agent = runtime.slack.services.agent
    warm_agent = agent.service.knowledge.index if agent is not None else lambda: None
    return Probes(latest_incident, outbox_idle, history_indexed, warm_agent)
