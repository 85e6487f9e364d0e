"""``incibot slack check``: is the configured Slack set-up usable, checked against the live Web API?

Read-only by design: it calls ``auth.test``, ``apps.connections.open`` (which only hands out a socket URL),
``conversations.list`` and ``usergroups.users.list``, and never posts, joins, creates or invites. Each
problem comes with its fix; warnings are things that work but may surprise. ``serve`` runs the same check
at start-up and every few minutes (:mod:`bot.slack.health`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler, RateLimitErrorRetryHandler

from bot.settings import Settings, secret_value
from bot.slack.channels import ChannelDirectory, ChannelInfo, is_channel_id
from bot.slack.scopes import BOT_SCOPES

CHECK_TIMEOUT = 10.0  # seconds per Web API call
MANIFESTS = "deploy/slack-manifest.yml (HTTP) or deploy/slack-manifest-socket.yml (Socket Mode)"
_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
_GROUP_ID = re.compile(r"^S[A-Z0-9]{2,}$")
_REFUSED_TOKEN = {"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired"}


class SlackUnreachable(Exception):
    """The Web API did not answer (connection refused, timeout, 5xx, rate limited past our retries)."""


@dataclass
class CheckResult:
    """What the check found; ``ok`` when there is no problem (warnings do not count)."""

    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    workspace: str | None = None  # the team name, once auth.test answered
    receiver: str = "HTTP mode"  # or "Socket Mode": how slash commands and buttons reach incibot
    bot_name: str = "incibot"

    @property
    def ok(self) -> bool:
        return not self.problems


def check_client(api_url: str, token: str) -> WebClient:
    """A Web API client for checking: short timeouts, retries on dropped connections and 429, no log noise."""
    logger = logging.getLogger(__name__ + ".client")
    logger.setLevel(logging.CRITICAL)  # failures are reported by the check itself, once, with their fix
    return WebClient(
        base_url=api_url,
        token=token,
        timeout=int(CHECK_TIMEOUT),
        logger=logger,
        retry_handlers=[ConnectionErrorRetryHandler(), RateLimitErrorRetryHandler(max_retry_count=2)],
    )


def check_settings(settings: Settings) -> CheckResult:
    """The check as ``incibot slack check`` runs it: with the tokens and API URL of ``settings``."""
    bot_token, app_token = secret_value(settings.slack_bot_token), secret_value(settings.slack_app_token)
    if bot_token is None:
        return CheckResult(
            problems=["SLACK_BOT_TOKEN is not set: install the app and set its Bot User OAuth Token (xoxb-…)"]
        )
    client = check_client(settings.slack_api_url, bot_token)
    app_client = check_client(settings.slack_api_url, app_token) if app_token else None
    http_mode = secret_value(settings.slack_signing_secret) is not None
    return check_slack(settings, client, app_client=app_client, http_mode=http_mode)


def check_slack(
    settings: Settings,
    client: WebClient,
    *,
    app_client: WebClient | None = None,
    http_mode: bool,
    socket_connected: Callable[[], bool] | None = None,
) -> CheckResult:
    """Check the set-up ``settings`` describe with ``client`` (the bot token's) and, in Socket Mode,
    ``app_client`` (the app-level token's); ``http_mode``: a signing secret lets ``/slack/events`` receive;
    ``socket_connected``: the running bot's Socket Mode connection is up, which proves the app token without
    opening another (``apps.connections.open`` is Tier 1: about one a minute). Raises :class:`SlackUnreachable`
    when Slack does not answer."""
    return _Check(settings, client, app_client, http_mode, socket_connected).run()


class _Check:
    def __init__(
        self,
        settings: Settings,
        client: WebClient,
        app_client: WebClient | None,
        http_mode: bool,
        socket_connected: Callable[[], bool] | None,
    ) -> None:
        self._settings = settings
        self._socket_connected = socket_connected
        self._http_mode = http_mode
        self._client = client
        self._app_client = app_client
        self._result = CheckResult(receiver="Socket Mode" if app_client is not None else "HTTP mode")
        self._missing_scopes: set[str] = set()
        self._granted: set[str] | None = None

    def run(self) -> CheckResult:
        self._receivers()
        if self._identity():
            self._scopes()
            self._socket_mode()
            self._channels()
            self._responders()
        return self._result

    def _problem(self, text: str) -> None:
        self._result.problems.append(text)

    def _warning(self, text: str) -> None:
        self._result.warnings.append(text)

    def _receivers(self) -> None:
        if self._app_client is None and not self._http_mode:
            self._problem(
                "neither SLACK_SIGNING_SECRET (HTTP mode) nor SLACK_APP_TOKEN (Socket Mode) is set: slash commands "
                "and buttons cannot reach incibot; set one (Basic Information → App Credentials / App-Level Tokens)"
            )

    def _identity(self) -> bool:
        """``auth.test`` with the bot token; False when the token is refused (nothing else can be checked)."""
        try:
            answer = _call(self._client, "auth.test")
        except SlackApiError as exc:
            error = _error(exc)
            if error in _REFUSED_TOKEN:
                self._problem(
                    f"SLACK_BOT_TOKEN is refused by Slack ({error}): install the app to the workspace and copy the "
                    "Bot User OAuth Token (xoxb-…) from OAuth & Permissions"
                )
            elif error == "not_allowed_token_type":
                self._problem(
                    "SLACK_BOT_TOKEN is not a bot token: use the Bot User OAuth Token (xoxb-…) from "
                    "OAuth & Permissions, not the app-level token (xapp-…)"
                )
            else:
                self._problem(f"auth.test failed ({error}): check SLACK_BOT_TOKEN")
            return False
        self._result.workspace = str(answer.get("team") or answer.get("team_id") or "")
        self._result.bot_name = str(answer.get("user") or "incibot")
        if not answer.get("bot_id"):
            self._problem(
                "SLACK_BOT_TOKEN is not a bot token (auth.test names no bot): use the Bot User OAuth Token "
                "(xoxb-…) from OAuth & Permissions"
            )
        self._granted = _granted_scopes(answer.headers)
        return True

    def _scopes(self) -> None:
        if self._granted is None:
            self._warning("Slack did not report the token's scopes (no x-oauth-scopes header): scopes not checked")
            return
        for scope, why in BOT_SCOPES.items():
            if scope not in self._granted:
                self._missing_scopes.add(scope)
                self._problem(
                    f"the bot token lacks the {scope} scope ({why}): add it under OAuth & Permissions → Bot Token "
                    f"Scopes (or re-create the app from {MANIFESTS}) and reinstall the app"
                )
        extra = sorted(self._granted - set(BOT_SCOPES))
        if extra:
            self._warning(f"scopes incibot does not use: {', '.join(extra)} (you may remove them)")

    def _socket_mode(self) -> None:
        if self._app_client is None or (self._socket_connected is not None and self._socket_connected()):
            return
        try:
            _call(self._app_client, "apps.connections.open")
        except SlackApiError as exc:
            error = _error(exc)
            if error == "missing_scope":
                fix = (
                    "create an app-level token with the connections:write scope (Basic Information → App-Level Tokens)"
                )
            elif error == "not_allowed_token_type":
                fix = "SLACK_APP_TOKEN must be an app-level token (xapp-…), not the bot token"
            elif error in _REFUSED_TOKEN:
                fix = "copy a current app-level token (xapp-…) from Basic Information → App-Level Tokens"
            else:
                fix = "check that Socket Mode is enabled for the app and SLACK_APP_TOKEN is its app-level token"
            self._problem(f"SLACK_APP_TOKEN cannot open a Socket Mode connection ({error}): {fix}")

    def _channels(self) -> None:
        directory = ChannelDirectory(self._client)
        wanted = {self._settings.alerts_channel.lstrip("#"): "set INCIBOT_ALERTS_CHANNEL"}
        for route in self._settings.routes:
            wanted.setdefault(route.channel, "change INCIBOT_ROUTES")
        bot = self._result.bot_name
        for ref, setting in wanted.items():
            label = ref if is_channel_id(ref) else f"#{ref}"
            try:
                channel = _lookup(directory, ref)
            except SlackApiError as exc:
                if _error(exc) != "channel_not_found":  # that one: an id the bot cannot see
                    if not self._explained(exc):
                        self._problem(f"cannot look up channel {label} ({_error(exc)}): fix the problems above")
                    continue
                channel = None
            if channel is None:
                self._problem(
                    f"channel {label} not found: create it and invite @{bot} (a private channel is invisible until "
                    f"@{bot} is invited), or {setting}"
                )
            elif not channel.is_member and channel.is_private:
                self._problem(f"@{bot} is not in the private channel #{channel.name}: invite it (/invite @{bot})")
            elif not channel.is_member:
                self._warning(
                    f"@{bot} is not in #{channel.name} yet: `incibot serve` joins it at start-up (or /invite @{bot})"
                )

    def _responders(self) -> None:
        for responder in sorted(self._settings.responders):
            if _GROUP_ID.match(responder):
                self._user_group(responder)
            elif not _USER_ID.match(responder):
                self._problem(
                    f"INCIBOT_RESPONDERS: {responder!r} is neither a Slack user id (U…/W…) nor a user group id "
                    "(S…): copy the member ID from the person's profile (⋯ → Copy member ID)"
                )

    def _user_group(self, group: str) -> None:
        try:
            answer = _call(self._client, "usergroups.users.list", usergroup=group)
        except SlackApiError as exc:
            error = _error(exc)
            if error in ("no_such_subteam", "subteam_not_found", "invalid_usergroup"):
                self._problem(f"user group {group} (INCIBOT_RESPONDERS) not found: fix INCIBOT_RESPONDERS")
            elif not self._explained(exc):
                self._problem(f"cannot read user group {group} ({error}): fix INCIBOT_RESPONDERS or the app's scopes")
            return
        if not answer.get("users"):
            self._warning(f"user group {group} (INCIBOT_RESPONDERS) has no members: nobody in it can ack or resolve")

    def _explained(self, exc: SlackApiError) -> bool:
        """A ``missing_scope`` refusal whose scope is already reported missing."""
        needed = set(str(exc.response.get("needed") or "").split(","))
        return _error(exc) == "missing_scope" and bool(needed & self._missing_scopes)


@dataclass(frozen=True)
class _Answer:
    data: dict[str, Any]
    headers: dict[str, Any]

    def get(self, key: str) -> Any:
        return self.data.get(key)


def _call(client: WebClient, method: str, **params: str) -> _Answer:
    """One Web API call; SlackApiError for Slack's refusals, SlackUnreachable when Slack did not answer."""
    try:
        response = client.api_call(method, params=params or None)
    except (SlackApiError, OSError) as exc:
        raise _unreachable(exc, method) or exc from None
    return _Answer(response.data if isinstance(response.data, dict) else {}, dict(response.headers))


def _lookup(directory: ChannelDirectory, ref: str) -> ChannelInfo | None:
    try:
        return directory.find(ref)
    except (SlackApiError, OSError) as exc:
        raise _unreachable(exc, "conversations.list") or exc from None


def _unreachable(exc: Exception, method: str) -> SlackUnreachable | None:
    """``exc`` as SlackUnreachable when it means Slack did not answer (no connection, 5xx, 429, not JSON)."""
    if isinstance(exc, OSError):
        return SlackUnreachable(f"{method}: {exc}")
    if isinstance(exc, SlackApiError):
        status = exc.response.status_code
        data = exc.response.data
        if status >= 500 or status == 429 or not isinstance(data, dict) or "error" not in data:
            return SlackUnreachable(f"{method} answered HTTP {status}")
    return None


def _error(exc: SlackApiError) -> str:
    return str(exc.response.get("error") or "unknown_error")


def _granted_scopes(headers: dict[str, Any]) -> set[str] | None:
    """The scopes Slack says the token has (``x-oauth-scopes``), or None when it did not say."""
    for name, value in headers.items():
        if name.lower() == "x-oauth-scopes":
            return {scope.strip() for scope in str(value).split(",") if scope.strip()}
    return None
