"""``incibot models list|promote|rollback|drift|data export``: the registry's versions and champions, drift, and
the training data people made (``incibot models train`` is in :mod:`bot.cli.models`)."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from bot.registry import drift
from bot.registry.data import export_lines, json_line
from bot.registry.models import ModelVersion
from bot.registry.store import DEFAULT_VERSION, KINDS, RegistryError, champion, promote, rollback, versions
from bot.runtime import open_database, utc_now
from bot.settings import Settings
from knowledge.correlation.features import FEATURES


def register(model_commands: Any) -> None:
    """The registry's subcommands of ``incibot models``."""
    listing = model_commands.add_parser("list", help="registered versions, their metrics, and each kind's champion")
    listing.add_argument("--json", action="store_true", help="one JSON document instead of lines for people")
    listing.set_defaults(handler=list_models)
    promoting = model_commands.add_parser("promote", help="make a registered version its kind's champion")
    promoting.add_argument("kind", choices=KINDS)
    promoting.add_argument("version", help=f"a registered version, or {DEFAULT_VERSION} for the packaged default")
    promoting.add_argument("--by", default=getpass.getuser(), help="who promotes it (default: this user)")
    promoting.set_defaults(handler=promote_command)
    rolling = model_commands.add_parser("rollback", help="retire the champion: the previous one serves again")
    rolling.add_argument("kind", choices=KINDS)
    rolling.set_defaults(handler=rollback_command)
    drifting = model_commands.add_parser(
        "drift", help="this period's confidence and abstention beside the champion's evaluation"
    )
    drifting.add_argument("--days", type=float, default=7.0, help="the period, in days back from now (default 7)")
    drifting.set_defaults(handler=drift_command)
    data = model_commands.add_parser("data", help="the training data people made")
    data_commands = data.add_subparsers(dest="data_command", required=True, metavar="COMMAND")
    export = data_commands.add_parser("export", help="people's corrections as JSON Lines (FORMATS.md shapes)")
    export.add_argument("--out", type=Path, default=None, help="file to write (default: standard output)")
    export.set_defaults(handler=export_command)


def list_models(settings: Settings, args: argparse.Namespace) -> int:
    rows, champions = _registered(settings)
    listing = [_entry(kind, rows, champions) for kind in KINDS]
    if args.json:
        print(json.dumps([item for entries in listing for item in entries], indent=1))
        return 0
    for entries in listing:
        for item in entries:
            mark = "* " if item["champion"] else "  "
            label = "shipped default" if item["version"] == DEFAULT_VERSION else item["version"]
            print(f"{mark}{label}: {item['summary']}")
    return 0


def promote_command(settings: Settings, args: argparse.Namespace) -> int:
    database = open_database(settings)
    try:
        with database.write() as session:
            if args.version == DEFAULT_VERSION:
                while champion(session, args.kind) is not None:
                    rollback(session, args.kind, now=utc_now())
            else:
                promote(session, args.kind, args.version, actor=args.by, now=utc_now(), note=f"promoted by {args.by}")
    except RegistryError as exc:
        print(f"incibot: {exc}", file=sys.stderr)
        return 1
    finally:
        database.dispose()
    print(f"{args.kind}: {args.version} is the champion; workers load it when they start")
    return 0


def rollback_command(settings: Settings, args: argparse.Namespace) -> int:
    database = open_database(settings)
    try:
        with database.write() as session:
            retired, now_serving = rollback(session, args.kind, now=utc_now())
            serving = now_serving.version if now_serving is not None else f"{DEFAULT_VERSION} (the packaged default)"
    except RegistryError as exc:
        print(f"incibot: {exc}", file=sys.stderr)
        return 1
    finally:
        database.dispose()
    print(f"{args.kind}: rolled back {retired.version}; the champion is {serving}; workers load it when they start")
    return 0


def drift_command(settings: Settings, args: argparse.Namespace) -> int:
    if args.days <= 0:
        print("incibot: --days must be more than 0", file=sys.stderr)
        return 2
    database = open_database(settings)
    try:
        with database.read() as session:
            since = utc_now() - timedelta(days=args.days)
            champions = drift.champions(session)
            for kind in KINDS:
                observed = drift.observe(session, kind, since)
                print(drift.compare(kind, champions[kind], observed, drift.baseline(session, kind), args.days))
    finally:
        database.dispose()
    return 0


def export_command(settings: Settings, args: argparse.Namespace) -> int:
    database = open_database(settings)
    try:
        with database.read() as session:
            lines = list(export_lines(session, FEATURES))
    finally:
        database.dispose()
    text = "".join(json_line(line) for line in lines)
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.write_text(text, encoding="utf-8")
    print(f"{len(lines)} corrections exported", file=sys.stderr)
    return 0


def _registered(settings: Settings) -> tuple[list[ModelVersion], set[int]]:
    """Every registered version and the ids of the champions (none, with a note, where the registry cannot be
    read)."""
    database = open_database(settings)
    try:
        with database.read() as session:
            rows = versions(session)
            champions = {row.id for kind in KINDS if (row := champion(session, kind)) is not None}
            session.expunge_all()
    except SQLAlchemyError as exc:
        print(f"incibot: registry unavailable ({str(exc).splitlines()[0]}): packaged defaults only", file=sys.stderr)
        return [], set()
    finally:
        database.dispose()
    return rows, champions


def _entry(kind: str, rows: list[ModelVersion], champions: set[int]) -> list[dict[str, Any]]:
    """A kind's versions for ``list``, newest first, then its packaged default (version 0)."""
    entries = [
        {
            "kind": kind,
            "version": row.version,
            "champion": row.id in champions,
            "path": row.path,
            "created_at": row.created_at.isoformat(),
            "promoted_at": row.promoted_at.isoformat() if row.promoted_at else None,
            "promoted_by": row.promoted_by,
            "rolled_back_at": row.rolled_back_at.isoformat() if row.rolled_back_at else None,
            "metrics": row.metrics,
            "note": row.note,
            "summary": _summary(row),
        }
        for row in reversed(rows)
        if row.kind == kind
    ]
    default = {
        "kind": kind,
        "version": DEFAULT_VERSION,
        "champion": not any(entry["champion"] for entry in entries),
        "path": None,
        "summary": _default_summary(kind),
    }
    return [*entries, default]


def _summary(row: ModelVersion) -> str:
    scores = row.metrics.get("challenger") or {}
    shown = ", ".join(f"{name} {value:g}" for name, value in scores.items() if isinstance(value, float | int))
    state = "rolled back" if row.rolled_back_at else "promoted" if row.promoted_at else "not promoted"
    return f"{row.kind} {row.version} ({state}; created {row.created_at:%Y-%m-%d %H:%M}): {shown}; {row.note}"


def _default_summary(kind: str) -> str:
    """The packaged default's own summary (its card's), or why it cannot be read."""
    try:
        if kind == "correlate":
            from bot.registry import correlate

            return str(correlate.load(None).card.summary())
        from knowledge.classify.model import load_classifier

        return f"model {load_classifier(None, None).card.version}"
    except (ImportError, ValueError) as exc:
        return f"unusable: {exc}"
