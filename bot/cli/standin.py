"""``incibot standin serve``: the Slack stand-in on its own, for developing Slack features and for tests of
real mode (``incibot serve`` with ``INCIBOT_SLACK_MODE=real`` and ``INCIBOT_SLACK_API_URL`` pointing at it).
``incibot standin add-user``: add a member to a running stand-in's workspace.

``serve`` runs until SIGTERM or SIGINT (exit 0). Once it accepts connections it writes
``<state dir>/standin.json`` (mode 0600, atomically) with ``url`` (its base URL, for ``/_standin/…``),
``api_url`` (the value for ``INCIBOT_SLACK_API_URL``), ``workspace_url`` (the local workspace page),
``bot_token``, ``app_token``, ``signing_secret`` (fresh each start, for signing requests to a bot in HTTP mode)
and ``bot_user_id``; it removes the file on exit.
Channels and messages are kept in ``<state dir>/standin.sqlite`` across restarts. With ``--bot-url`` (a bot in
HTTP mode with that signing secret) or a bot connected over Socket Mode, the page's actions reach that bot.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import secrets
import signal
import sys
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx

from bot.ingest import token_file
from bot.loopback import is_loopback
from bot.settings import Settings
from bot.standin.manifest import AppManifest, ManifestError
from bot.standin.server import HOST, StandinServer
from bot.standin.workspace import WORKSPACES
from bot.standin.workspace.actions import BotLink
from bot.state_files import read_json, write_private_json

log = logging.getLogger(__name__)

STATE_FILE = "standin.json"
DATABASE_FILE = "standin.sqlite"


def register(commands: Any) -> None:
    parser = commands.add_parser("standin", help="run the local Slack stand-in on its own")
    sub = parser.add_subparsers(dest="standin_command", required=True, metavar="COMMAND")
    serve = sub.add_parser("serve", help="serve the stand-in until SIGTERM/SIGINT")
    serve.add_argument("--host", default=HOST, help=f"a loopback address (default {HOST})")
    serve.add_argument("--port", type=int, default=0, help="port (default 0: a free one)")
    serve.add_argument("--state-dir", type=Path, default=None, help="for standin.json (default: INCIBOT_STATE_DIR)")
    serve.add_argument(
        "--workspace",
        choices=sorted(WORKSPACES),
        default="default",
        help="default: #incidents with the bot in it; bare: a fresh install, #general only",
    )
    serve.add_argument("--manifest", type=Path, default=None, help="app manifest (default deploy/slack-manifest.yml)")
    serve.add_argument(
        "--bot-url", default=None, help="a bot in HTTP mode that the workspace page sends to (signed with this secret)"
    )
    serve.set_defaults(handler=serve_standin)
    add_user = sub.add_parser("add-user", help="add a member to the running stand-in's workspace")
    add_user.add_argument("user_id", help="a Slack user id, e.g. U0DAVE")
    add_user.add_argument("--name", required=True, help="the user's handle, e.g. dave")
    add_user.add_argument("--real-name", default=None)
    add_user.add_argument(
        "--channel",
        action="append",
        default=None,
        help="make them a member (repeatable; default #incidents if it exists)",
    )
    add_user.add_argument("--standin-url", default=None, help="default: from runtime.json or standin.json")
    add_user.set_defaults(handler=add_standin_user)


def serve_standin(settings: Settings, args: argparse.Namespace) -> int:
    if not is_loopback(args.host):
        print(
            f"incibot: the stand-in serves loopback only; --host {args.host} is not a loopback address", file=sys.stderr
        )
        return 2
    if not 0 <= args.port <= 65535:
        print(f"incibot: --port {args.port} is not a port number", file=sys.stderr)
        return 2
    try:
        manifest = AppManifest.load(args.manifest)
    except ManifestError as exc:
        print(f"incibot: {exc}", file=sys.stderr)
        return 2
    state_dir: Path = args.state_dir or settings.state_dir
    state_dir.mkdir(parents=True, exist_ok=True)
    state_file = state_dir / STATE_FILE
    secret = secrets.token_hex(16)
    workspace = WORKSPACES[args.workspace]()
    if args.manifest is not None:
        workspace = replace(workspace, manifest=args.manifest)
    server = StandinServer(state_dir / DATABASE_FILE, port=args.port, host=args.host, workspace=workspace)
    server.link_bot(BotLink(args.bot_url, secret, lambda: token_file.alertmanager_token(settings)))
    stop = threading.Event()
    originals = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            url = server.start()
        except (RuntimeError, OSError) as exc:
            print(f"incibot: the stand-in did not start: {exc}", file=sys.stderr)
            return 1
        log.info("slack stand-in: %s", url)
        log.info("local workspace: %s/", url)
        log.info("installed from %s with bot scopes %s", manifest.source, ",".join(manifest.bot_scopes))
        write_private_json(state_file, _state(server, secret))
        stop.wait()
    finally:
        for sig, handler in originals.items():
            signal.signal(sig, handler)
        server.stop()
        with contextlib.suppress(FileNotFoundError):
            state_file.unlink()
    return 0


def add_standin_user(settings: Settings, args: argparse.Namespace) -> int:
    url = args.standin_url or standin_url(settings)
    if url is None:
        print(
            "incibot: no running stand-in found; start `make run` or `incibot standin serve`, or pass --standin-url",
            file=sys.stderr,
        )
        return 2
    body: dict[str, Any] = {"id": args.user_id, "name": args.name, "real_name": args.real_name or args.name}
    try:
        with httpx.Client(base_url=url, timeout=10) as client:
            channels = args.channel
            if channels is None:
                channels = ["incidents"] if client.get("/_standin/channels/incidents").status_code == 200 else []
            answer = client.post("/_standin/users", json=body | {"channels": channels})
    except httpx.HTTPError as exc:
        print(f"incibot: cannot reach the stand-in at {url}: {exc}", file=sys.stderr)
        return 1
    if answer.status_code != 200:
        print(f"incibot: the stand-in refused: {_error_of(answer)}", file=sys.stderr)
        return 1
    where = f" (member of {', '.join('#' + c.lstrip('#') for c in channels)})" if channels else ""
    print(f"added {args.user_id} ({args.name}){where}")
    return 0


def standin_url(settings: Settings) -> str | None:
    """The base URL of the stand-in running from the state dir: ``make run``'s (runtime.json), else
    ``incibot standin serve``'s (standin.json)."""
    for name, key in (("runtime.json", "standin_url"), (STATE_FILE, "url")):
        info = read_json(settings.state_dir / name)
        if isinstance(info.get(key), str):
            return str(info[key])
    return None


def _error_of(answer: httpx.Response) -> str:
    try:
        return str(answer.json().get("error", answer.text))
    except ValueError:
        return answer.text


def _state(server: StandinServer, secret: str) -> dict[str, str]:
    workspace = server.workspace
    return {
        "url": server.url,
        "api_url": server.api_url,
        "workspace_url": f"{server.url}/",
        "bot_token": workspace.bot_token,
        "app_token": workspace.app_token,
        "signing_secret": secret,
        "bot_user_id": workspace.bot_user.id,
    }
