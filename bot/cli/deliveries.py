"""``incibot deliveries list|retry``: the ingest queue, and a way back for failed deliveries."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from sqlalchemy import select, update

from bot.ingest.models import Delivery, DeliveryStatus
from bot.runtime import open_database
from bot.settings import Settings


def register(commands: Any) -> None:
    parser = commands.add_parser("deliveries", help="stored webhook deliveries")
    sub = parser.add_subparsers(dest="deliveries_command", required=True, metavar="COMMAND")
    listing = sub.add_parser("list", help="deliveries, newest first (at most 100)")
    listing.add_argument("--failed", action="store_true", help="only deliveries that failed processing")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=list_deliveries)
    retry = sub.add_parser("retry", help="queue a failed delivery for processing again")
    retry.add_argument("id", type=int)
    retry.set_defaults(handler=retry_delivery)


def list_deliveries(settings: Settings, args: argparse.Namespace) -> int:
    query = select(Delivery).order_by(Delivery.id.desc()).limit(100)
    if args.failed:
        query = query.where(Delivery.status == DeliveryStatus.FAILED)
    database = open_database(settings)
    try:
        with database.read() as session:
            rows: list[dict[str, Any]] = [
                {
                    "id": d.id,
                    "source": d.source,
                    "status": str(d.status),
                    "received_at": d.received_at.isoformat(),
                    "alerts": d.alert_count,
                    "attempts": d.attempts,
                    "last_error": d.last_error,
                }
                for d in session.scalars(query)
            ]
    finally:
        database.dispose()
    if args.json:
        print(json.dumps(rows, indent=2))
    elif not rows:
        print("No deliveries.")
    else:
        print(f"{'ID':>7}  {'SOURCE':<12}  {'STATUS':<8}  {'ALERTS':>6}  {'ATTEMPTS':>8}  RECEIVED (UTC)       ERROR")
        for row in rows:
            received = row["received_at"][:19].replace("T", " ")
            print(
                f"{row['id']:>7}  {row['source']:<12}  {row['status']:<8}  {row['alerts']:>6}  "
                f"{row['attempts']:>8}  {received}  {row['last_error'] or ''}"
            )
    return 0


def retry_delivery(settings: Settings, args: argparse.Namespace) -> int:
    database = open_database(settings)
    try:
        with database.write() as session:
            delivery = session.get(Delivery, args.id)
            if delivery is None:
                print(f"incibot: there is no delivery {args.id}", file=sys.stderr)
                return 1
            if delivery.status != DeliveryStatus.FAILED:
                print(
                    f"incibot: delivery {args.id} is {delivery.status}, not failed; nothing to retry", file=sys.stderr
                )
                return 1
            session.execute(
                update(Delivery)
                .where(Delivery.id == args.id)
                .values(status=DeliveryStatus.PENDING, attempts=0, next_attempt_at=None)
            )
    finally:
        database.dispose()
    print(f"Delivery {args.id} queued for processing again.")
    return 0
