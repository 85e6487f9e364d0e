"""``incibot changes list``: the deploys, config changes and flag flips received on ``POST /changes``."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter, ValidationError

from bot.changes.models import ChangeRecord
from bot.changes.queries import recent_changes
from bot.runtime import open_database, utc_now
from bot.settings import Duration, Settings

LIMIT = 100
_DURATIONS = TypeAdapter(Duration)  # "90m", "2h", "7d" or seconds, as in INCIBOT_ settings


def register(commands: Any) -> None:
    parser = commands.add_parser("changes", help="change events (deploys, config changes, feature-flag flips)")
    sub = parser.add_subparsers(dest="changes_command", required=True, metavar="COMMAND")
    listing = sub.add_parser("list", help=f"changes, newest first (at most {LIMIT})")
    listing.add_argument("--service", default=None, help="only changes of this service")
    listing.add_argument("--since", default=None, help="RFC 3339 time, or how long ago: 90m, 2h, 7d")
    listing.add_argument("--json", action="store_true", help="print a JSON array")
    listing.set_defaults(handler=list_changes)


def list_changes(settings: Settings, args: argparse.Namespace) -> int:
    since = parse_since(args.since) if args.since else None
    if args.since and since is None:
        print(f"incibot: --since {args.since!r} is neither an RFC 3339 time nor a duration (2h)", file=sys.stderr)
        return 2
    database = open_database(settings)
    try:
        with database.read() as session:
            rows = [_row(record) for record in recent_changes(session, service=args.service, since=since, limit=LIMIT)]
    finally:
        database.dispose()
    if args.json:
        print(json.dumps(rows, indent=2))
    elif not rows:
        print("No changes.")
    else:
        print(f"{'ID':>6}  WHEN (UTC)           {'SERVICE':<24}  {'KIND':<12}  {'VERSION':<14}  WHO")
        for row in rows:
            when = row["at"][:19].replace("T", " ")
            print(
                f"{row['id']:>6}  {when}  {row['service']:<24}  {row['kind']:<12}  "
                f"{row['version'] or '-':<14}  {row['who'] or '-'}"
            )
    return 0


def parse_since(text: str) -> datetime | None:
    """An aware RFC 3339 time, or ``utc_now()`` minus a duration; None when it is neither."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        pass
    else:
        return moment if moment.tzinfo is not None else None
    try:
        ago = _DURATIONS.validate_python(text)
    except ValidationError:
        return None
    return utc_now() - ago


def _row(record: ChangeRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "service": record.service,
        "kind": record.kind,
        "version": record.version,
        "who": record.who,
        "at": record.at.isoformat(),
        "link": record.link,
        "description": record.description,
        "source": record.source,
        "received_at": record.received_at.isoformat(),
    }
