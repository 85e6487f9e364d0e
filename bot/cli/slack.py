"""``incibot slack command "/incident list" [--user U]``: talk to a running bot as Slack would;
``incibot slack check``: check the Slack set-up against the Web API, changing nothing.

Reads ``<state dir>/runtime.json`` (written by ``serve`` in stand-in mode) for the bot's URL, the
stand-in's URL and the signing secret; flags override it. The request is signed exactly as Slack signs.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import httpx

from bot.settings import Settings
from bot.slack.check import SlackUnreachable, check_settings
from bot.standin.driver import SlackDriver, UnknownUser
from bot.state_files import read_json

WAIT_SECONDS = 5.0


def register(commands: Any) -> None:
    parser = commands.add_parser("slack", help="act as Slack against a running bot (stand-in mode)")
    sub = parser.add_subparsers(dest="slack_command", required=True, metavar="COMMAND")
    command = sub.add_parser("command", help='send a signed slash command, e.g. "/incident list"')
    command.add_argument("text", help='the command line, e.g. "/incident ack 3"')
    command.add_argument("--user", default="U0ALICE", help="Slack user id (default U0ALICE)")
    command.add_argument("--channel", default="incidents", help="channel it is typed in")
    command.add_argument("--bot-url", default=None)
    command.add_argument("--standin-url", default=None)
    command.add_argument("--signing-secret", default=None)
    command.set_defaults(handler=send_command)
    check = sub.add_parser("check", help="check the Slack app, tokens, scopes, channels and responders (read-only)")
    check.set_defaults(handler=check_setup)


def send_command(settings: Settings, args: argparse.Namespace) -> int:
    info = read_json(settings.state_dir / "runtime.json")
    bot_url = args.bot_url or info.get("bot_url")
    standin_url = args.standin_url or info.get("standin_url")
    secret = args.signing_secret or info.get("signing_secret")
    if not (bot_url and standin_url and secret):
        print(
            "incibot: no running stand-in found; start `make run` or pass --bot-url, --standin-url and "
            "--signing-secret",
            file=sys.stderr,
        )
        return 2
    name, _, text = args.text.strip().partition(" ")
    if not name.startswith("/"):
        print(f"incibot: {args.text!r} is not a slash command", file=sys.stderr)
        return 2
    try:
        with SlackDriver(standin_url, bot_url=bot_url, signing_secret=secret) as driver:
            delivery = driver.slash_command(
                name, text, user=args.user, channel=args.channel, wait_responses=WAIT_SECONDS
            )
    except UnknownUser as exc:
        hint = f"add one with `incibot standin add-user {exc.user_id} --name NAME`, or pass --user with a known id"
        print(f"incibot: {exc}; {hint}", file=sys.stderr)
        return 1
    except LookupError as exc:
        print(f"incibot: {exc}", file=sys.stderr)
        return 1
    except httpx.HTTPError as exc:
        print(f"incibot: the Slack stand-in at {standin_url} failed: {exc}", file=sys.stderr)
        return 1
    if delivery.error is not None or delivery.timed_out:
        print(f"incibot: no ack within {driver.ack_deadline:g} s ({delivery.error or 'timed out'})", file=sys.stderr)
        return 1
    print(f"ack: HTTP {delivery.status} in {delivery.latency * 1000:.0f} ms {delivery.body}".rstrip())
    if delivery.status == 401:
        print("incibot: the bot refused the signature (401)", file=sys.stderr)
        return 1
    if not delivery.acked:
        print(f"incibot: the bot answered HTTP {delivery.status}, not an ack", file=sys.stderr)
        return 1
    for response in delivery.responses:
        kind = response.get("response_type", "ephemeral")
        print(f"[{kind}] {response.get('text', '')}")
    return 0


def check_setup(settings: Settings, _args: argparse.Namespace) -> int:
    """``incibot slack check``: one line per problem with its fix; exit 0 (none), 1 (problems), 2 (unreachable)."""
    try:
        result = check_settings(settings)
    except SlackUnreachable as exc:
        print(f"incibot: Slack cannot be reached at {settings.slack_api_url} ({exc})", file=sys.stderr)
        return 2
    if result.workspace is not None:
        print(f"workspace {result.workspace!r}, bot @{result.bot_name}, {result.receiver}")
    for problem in result.problems:
        print(f"problem: {problem}")
    for warning in result.warnings:
        print(f"warning: {warning}")
    count = len(result.problems)
    print("Slack set-up OK" if result.ok else f"{count} problem{'s' if count > 1 else ''}")
    return 0 if result.ok else 1
