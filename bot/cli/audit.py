"""``incibot audit [--incident ID] [--json]``: the remediation audit log, oldest first."""

from __future__ import annotations

import argparse
from typing import Any

from bot.remediation import audit
from bot.runtime import open_database
from bot.settings import Settings


def register(commands: Any) -> None:
    parser = commands.add_parser("audit", help="the remediation audit log (requests, approvals, runs, results)")
    parser.add_argument("--incident", type=int, metavar="ID", help="only this incident's entries")
    parser.add_argument("--json", action="store_true", help="a JSON array instead of lines")
    parser.set_defaults(handler=show_audit)


def show_audit(settings: Settings, args: argparse.Namespace) -> int:
    database = open_database(settings)
    try:
        with database.read() as session:
            selected = audit.entries(session, args.incident)
            if args.json:
                print(audit.dumps(selected))
            elif not selected:
                print(
                    "No audit entries." if args.incident is None else f"No audit entries for incident #{args.incident}."
                )
            else:
                for entry in selected:
                    print(audit.as_line(entry))
    finally:
        database.dispose()
    return 0
