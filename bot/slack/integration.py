"""Assembles the Slack side from settings: real Slack or the local stand-in, the Bolt app, the outbox.

Mode ``auto`` talks to real Slack when ``SLACK_BOT_TOKEN`` is set and to the built-in stand-in
otherwise; ``real`` refuses to start without credentials; ``standin`` always uses the stand-in. HTTP mode
(``/slack/events``) needs ``SLACK_SIGNING_SECRET``; without one only Socket Mode receives, and no verifier exists.
"""

from __future__ import annotations

import logging
import secrets
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from slack_bolt import App
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_sdk import WebClient

from bot.db.database import Database
from bot.incidents.corrections import Corrections
from bot.incidents.service import IncidentService
from bot.ingest import token_file
from bot.knowledge.service import KnowledgeService
from bot.remediation.runner import Notice
from bot.remediation.service import RemediationService
from bot.settings import Settings, secret_value
from bot.slack.app import build_bolt_app
from bot.slack.health import SlackHealth, slack_health
from bot.slack.http import SlackEventsEndpoint
from bot.slack.outbox import OutboxWorker
from bot.slack.remediation import RemediationThread, post_actions
from bot.slack.services import Permissions, SlackServices
from bot.slack.suggester import Suggester
from bot.slack.verification import RequestVerifier
from bot.standin.server import StandinServer
from bot.standin.workspace import Workspace
from bot.standin.workspace.actions import BotLink
from bot.state_files import write_private_json
from bot.threads import NamedThread

log = logging.getLogger(__name__)

SOCKET_RETRY_FIRST, SOCKET_RETRY_MAX = 1.0, 60.0  # seconds between Socket Mode connection tries


class SlackConfigurationError(Exception):
    """The Slack settings cannot work (e.g. ``real`` mode without credentials)."""


@dataclass
class SlackIntegration:
    mode: str  # "real" or "standin"
    api_url: str
    signing_secret: str | None  # None: HTTP mode is off (Socket Mode only)
    client: WebClient
    app: App
    outbox: OutboxWorker
    endpoint: SlackEventsEndpoint
    standin: StandinServer | None
    app_token: str | None
    runtime_file: Path
    services: SlackServices
    socket_handler: SocketModeHandler | None = None
    ingest_token: Callable[[], str | None] = lambda: None  # for the workspace page's test alerts
    health: SlackHealth = field(init=False)  # the set-up check, for /readyz
    _stopping: threading.Event = field(default_factory=threading.Event, init=False)

    @classmethod
    def build(
        cls,
        settings: Settings,
        database: Database,
        incidents: IncidentService,
        corrections: Corrections,
        clock: Callable[[], datetime],
        knowledge: KnowledgeService | None = None,
        standin_workspace: Workspace | None = None,
    ) -> SlackIntegration:
        """``standin_workspace``: what the stand-in starts with (default: :meth:`Workspace.default`, what an
        admin has after set-up); the bot never creates channels there that it would not create on Slack."""
        mode = _resolve_mode(settings)
        standin: StandinServer | None = None
        signing_secret: str | None
        app_token = secret_value(settings.slack_app_token)
        if mode == "standin":
            workspace = standin_workspace or Workspace.default()
            port = settings.standin_port or _free_port()
            standin = StandinServer(settings.state_dir / "standin.sqlite", port=port, workspace=workspace)
            api_url = f"http://127.0.0.1:{port}/api/"
            token, signing_secret = workspace.bot_token, secrets.token_hex(16)
            app_token = workspace.app_token if app_token else None
        else:
            api_url = settings.slack_api_url
            token = secret_value(settings.slack_bot_token) or ""  # never empty: _resolve_mode checked it
            signing_secret = secret_value(settings.slack_signing_secret)
        # Writes go through the outbox only; its client never retries by itself (a blind re-post after a
        # dropped connection is how people get duplicate messages).
        outbox_client = WebClient(base_url=api_url, token=token, retry_handlers=[])
        routed = [route.channel for route in settings.routes]
        suggester = Suggester(database, knowledge, clock) if knowledge is not None else None
        services_box: list[SlackServices] = []  # the post's actions need the services built below
        outbox = OutboxWorker(
            database,
            outbox_client,
            clock,
            responders=settings.responders,
            channels=(settings.alerts_channel, *routed),
            echo=mode == "standin",
            suggester=suggester,
            actions=lambda session, incident: post_actions(services_box[0].remediation, session, incident),
        )
        if suggester is not None:
            suggester.on_stored = outbox.wake
        listener_client = WebClient(base_url=api_url, token=token)
        permissions = Permissions(settings.responders, listener_client)
        services = SlackServices(
            database,
            incidents,
            corrections,
            permissions,
            clock,
            outbox.wake,
            knowledge,
            route_channels=frozenset(name.lstrip("#") for name in (settings.alerts_channel, *routed)),
            remediation_thread=RemediationThread(database, clock, outbox.wake),
        )
        services_box.append(services)
        app = build_bolt_app(listener_client, services)
        integration = cls(
            services=services,
            mode=mode,
            api_url=api_url,
            signing_secret=signing_secret,
            client=listener_client,
            app=app,
            outbox=outbox,
            endpoint=SlackEventsEndpoint(app, RequestVerifier(signing_secret) if signing_secret else None),
            standin=standin,
            app_token=app_token,
            runtime_file=settings.state_dir / "runtime.json",
            ingest_token=lambda: token_file.alertmanager_token(settings),
        )
        integration.health = slack_health(
            mode,
            settings,
            api_url=api_url,
            bot_token=token,
            app_token=app_token,
            http_mode=signing_secret is not None,
            connected=integration.socket_connected if app_token else None,
        )
        return integration

    def attach_remediation(self, service: RemediationService) -> None:
        """Offer ``service``'s actions in posts, the modal, the buttons and ``/incident run``."""
        self.services.remediation = service

    def resolve_group(self, group: str) -> frozenset[str]:
        """A user group's members now (``usergroups.users.list``, never cached: a removal counts at once);
        raises when Slack cannot say (an approver group that cannot be read approves no one)."""
        return frozenset(self.client.usergroups_users_list(usergroup=group).get("users") or [])

    def remediation_notice(self, notice: Notice) -> None:
        """The remediation runner's hook: results and unknown outcomes go to the incident's thread."""
        assert self.services.remediation_thread is not None
        self.services.remediation_thread.notify(notice)

    @property
    def standin_port(self) -> int | None:
        return int(self.api_url.removesuffix("/api/").rpartition(":")[2]) if self.standin is not None else None

    def start_web(self, bot_url: str | None) -> None:
        """The receiving side: the stand-in (in stand-in mode) and Socket Mode."""
        if self.standin is not None:
            url = self.api_url.removesuffix("/api/")
            log.warning("Slack: using the built-in stand-in, NOT real Slack (set SLACK_BOT_TOKEN for real Slack)")
            log.info("slack stand-in: %s", url)
            self.standin.start()
            self.standin.link_bot(BotLink(bot_url, self.signing_secret, self.ingest_token))
            log.info("local workspace: %s/", url)
            self._write_runtime_file(bot_url, url)
        if self.signing_secret is None:
            log.info("Slack: Socket Mode only; /slack/events answers 404 (SLACK_SIGNING_SECRET turns HTTP mode on)")
        if self.app_token:
            self._stopping.clear()
            self.socket_handler = SocketModeHandler(self.app, self.app_token, web_client=self.client)
            if not self._connect_socket():  # ingest must not wait for Slack: keep trying in the background
                NamedThread(target=self._keep_connecting, name="slack-socket", daemon=True).start()
        self.health.start()  # the set-up check, logged; /readyz waits for it

    def _connect_socket(self) -> bool:
        """One try at the Socket Mode connection; False (logged) when Slack refuses it or cannot be reached."""
        assert self.socket_handler is not None
        try:
            self.socket_handler.connect()  # type: ignore[no-untyped-call]
        except Exception as exc:  # whatever Slack's state, serve goes on taking alerts
            log.error("Slack Socket Mode cannot connect (%s); retrying", str(exc).splitlines()[0] if str(exc) else exc)
            return False
        log.info("Slack Socket Mode connected")
        return True

    def _keep_connecting(self) -> None:
        delay = SOCKET_RETRY_FIRST
        while not self._stopping.wait(delay):
            if self._connect_socket():
                self.health.recheck()  # the start-up check may only have found Slack out of reach
                return
            delay = min(delay * 2, SOCKET_RETRY_MAX)

    def socket_connected(self) -> bool:
        return self.socket_handler is not None and bool(self.socket_handler.client.is_connected())

    def start_worker(self) -> None:
        """The sending side: the outbox worker."""
        self.outbox.start()

    def stop(self) -> None:
        self._stopping.set()
        self.health.stop()
        if self.socket_handler is not None:
            self.socket_handler.close()  # type: ignore[no-untyped-call]
            self.socket_handler = None
        self.outbox.stop()
        if self.standin is not None:
            self.standin.stop()

    def _write_runtime_file(self, bot_url: str | None, standin_url: str) -> None:
        info = {
            "bot_url": bot_url,
            "standin_url": standin_url,
            "workspace_url": f"{standin_url}/",
            "signing_secret": self.signing_secret,
        }
        write_private_json(self.runtime_file, info)


def _resolve_mode(settings: Settings) -> str:
    has_token = secret_value(settings.slack_bot_token) is not None
    receivers = (settings.slack_signing_secret, settings.slack_app_token)
    has_receiver = any(secret_value(credential) is not None for credential in receivers)
    if settings.slack_mode == "standin" or (settings.slack_mode == "auto" and not has_token):
        return "standin"
    if not has_token or not has_receiver:
        raise SlackConfigurationError(
            "real Slack needs SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET (HTTP) or SLACK_APP_TOKEN (Socket Mode)"
        )
    return "real"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
