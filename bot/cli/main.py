"""``incibot``: serve the bot, migrate the database, and work incidents from a shell.

Commands that read or change incidents talk to the database from settings and need no running server.
Exit status: 0 success, 1 the action was refused or failed (the message says why), 2 bad usage.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from pydantic import ValidationError
from sqlalchemy.exc import OperationalError, ProgrammingError

from bot.cli import (
    audit,
    changes,
    deliveries,
    demo,
    incidents,
    knowledge,
    models,
    replay,
    serve,
    slack,
    standin,
    test_alert,
    worker,
)
from bot.settings import Settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="incibot", description=__doc__.splitlines()[0] if __doc__ else None)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve.register(commands)
    db = commands.add_parser("db", help="database schema")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="COMMAND")
    db_commands.add_parser("upgrade", help="migrate the schema to the newest revision").set_defaults(
        handler=serve.upgrade_database
    )
    incidents.register(commands)
    deliveries.register(commands)
    changes.register(commands)
    test_alert.register(commands)
    slack.register(commands)
    worker.register(commands)
    knowledge.register(commands)
    standin.register(commands)
    replay.register(commands)
    models.register(commands)
    audit.register(commands)
    demo.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            name = "INCIBOT_" + "_".join(str(part) for part in error["loc"]).upper()
            print(f"incibot: invalid setting {name}: {error['msg']}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for chatty in ("apscheduler", "alembic", "httpx"):
        logging.getLogger(chatty).setLevel(max(logging.WARNING, logging.getLogger().level))
    try:
        result: int = args.handler(settings, args)
    except (OperationalError, ProgrammingError) as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        hint = "; run `incibot db upgrade`" if "no such table" in reason or "does not exist" in reason else ""
        print(f"incibot: database unavailable: {reason}{hint}", file=sys.stderr)
        return 1
    return result
