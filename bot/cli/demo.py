"""``incibot demo``: the bot on a fresh state dir with its local workspace, seeded history and a scripted outage
(see :mod:`bot.demo`); it prints the page's URL first and serves until Ctrl-C."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from bot.demo.run import DemoOptions, NotFresh, run_demo
from bot.loopback import is_loopback
from bot.settings import Settings


def register(commands: Any) -> None:
    parser = commands.add_parser("demo", help="play a scripted outage on a fresh bot, in the local workspace")
    parser.add_argument("--host", default="127.0.0.1", help="a loopback address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="the bot's port (default 8080)")
    parser.add_argument("--state-dir", type=Path, default=None, help="a fresh folder (default: a new temporary one)")
    parser.add_argument(
        "--speed", type=float, default=10.0, help="story seconds per second (default 10: the outage takes 36 s)"
    )
    parser.add_argument("--exit", action="store_true", help="stop once the story is played (default: serve on)")
    parser.set_defaults(handler=run)


def run(settings: Settings, args: argparse.Namespace) -> int:
    if not is_loopback(args.host):
        print(f"incibot: the demo serves loopback only; {args.host} is not a loopback address", file=sys.stderr)
        return 2
    if args.speed <= 0:
        print("incibot: --speed must be positive", file=sys.stderr)
        return 2
    if not 1 <= args.port <= 65535:
        print(
            f"incibot: --port must be 1-65535 (the stand-in is told the bot's URL before it starts), not {args.port}",
            file=sys.stderr,
        )
        return 2
    options = DemoOptions(args.host, args.port, args.state_dir, args.speed, stay=not args.exit)
    try:
        return run_demo(settings, options, say=lambda line: print(line, flush=True))
    except NotFresh as exc:
        print(f"incibot: {exc}", file=sys.stderr)
        return 2
