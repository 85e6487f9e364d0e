"""``incibot incidents list|show|ack|resolve|merge|split|classify``."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from typing import Any

from sqlalchemy.orm import Session

from bot.classification import picks
from bot.incidents import views
from bot.incidents.corrections import build_corrections
from bot.incidents.errors import IncidentError
from bot.incidents.service import Outcome
from bot.rootcause import feedback
from bot.rootcause.ranking import ranking_json, ranking_lines, stored_ranking
from bot.runtime import build_incident_service, open_database
from bot.settings import Settings
from knowledge.classify.categories import CATEGORY_KEYS


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "incidents", help="list, show, acknowledge, resolve, merge, split and classify incidents"
    )
    sub = parser.add_subparsers(dest="incidents_command", required=True, metavar="COMMAND")

    listing = sub.add_parser("list", help="incidents, newest first")
    listing.add_argument("--status", choices=views.STATUS_FILTERS, default="all")
    listing.add_argument("--json", action="store_true", help="print a JSON array")
    listing.set_defaults(handler=list_incidents)

    show = sub.add_parser("show", help="one incident with its alerts and timeline")
    show.add_argument("id", type=int)
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=show_incident)

    ack = sub.add_parser("ack", help="acknowledge an incident")
    ack.add_argument("id", type=int)
    ack.add_argument("--by", default=None, help="who acknowledges (default: cli:$USER)")
    ack.set_defaults(handler=acknowledge)

    resolve_parser = sub.add_parser("resolve", help="resolve an incident")
    resolve_parser.add_argument("id", type=int)
    resolve_parser.add_argument("--note", default=None, help="resolution note")
    resolve_parser.add_argument("--by", default=None, help="who resolves (default: cli:$USER)")
    resolve_parser.add_argument(
        "--cause", default=None, help="the confirmed cause (a service or node), also on an incident already resolved"
    )
    resolve_parser.set_defaults(handler=resolve)

    merge_parser = sub.add_parser(
        "merge", help="move incident B's alerts into A (stored as a lesson for the correlator)"
    )
    merge_parser.add_argument("target", type=int, metavar="A", help="the incident that keeps the alerts")
    merge_parser.add_argument("merged", type=int, metavar="B", help="the incident merged into A")
    merge_parser.add_argument("--by", default=None, help="who merges (default: cli:$USER)")
    merge_parser.set_defaults(handler=merge)

    split_parser = sub.add_parser(
        "split", help="move alerts of an incident to a new incident (stored as a lesson for the correlator)"
    )
    split_parser.add_argument("id", type=int)
    split_parser.add_argument("selector", metavar="ALERTNAME|ALERT_ID", help="the alerts of that name, or that alert")
    split_parser.add_argument("--by", default=None, help="who splits (default: cli:$USER)")
    split_parser.set_defaults(handler=split)

    classify_parser = sub.add_parser(
        "classify", help="set an incident's category (routes it; stored for the classifier to learn from)"
    )
    classify_parser.add_argument("id", type=int)
    classify_parser.add_argument("category", choices=CATEGORY_KEYS, metavar="CATEGORY", help=", ".join(CATEGORY_KEYS))
    classify_parser.add_argument("--by", default=None, help="who classifies (default: cli:$USER)")
    classify_parser.set_defaults(handler=classify)


def list_incidents(settings: Settings, args: argparse.Namespace) -> int:
    database = open_database(settings)
    try:
        with database.read() as session:
            rows = [views.summary(incident) for incident in views.list_incidents(session, args.status)]
    finally:
        database.dispose()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("No incidents.")
        return 0
    print(f"{'ID':>5}  {'STATUS':<12}  {'SEVERITY':<8}  {'ALERTS':>6}  {'OPENED (UTC)':<16}  TITLE")
    for row in rows:
        opened = row["opened_at"][:16].replace("T", " ")
        print(
            f"{row['id']:>5}  {row['status']:<12}  {row['severity']:<8}  {row['alert_count']:>6}  {opened:<16}  "
            f"{row['title']}"
        )
    return 0


def show_incident(settings: Settings, args: argparse.Namespace) -> int:
    database = open_database(settings)
    try:
        with database.read() as session:
            incident = views.get_incident(session, args.id)
            data = views.detail(incident, views.links(session, args.id), views.audit_of(session, args.id))
            causes = stored_ranking(session, args.id)
            data["root_cause"] = ranking_json(causes)
    except IncidentError as exc:
        print(f"incibot: {exc.message}", file=sys.stderr)
        return 1
    finally:
        database.dispose()
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    print(f"Incident {data['id']}: {data['title']}")
    for label, value in views.facts(data):
        print(f"  {label}: {value}")
    print("Likely causes:")
    for line in ranking_lines(causes):
        print(f"  {line}")
    print("Alerts:")
    for alert in data["alerts"]:
        line = f"  [{alert['status']}] {alert['alertname']} {alert['severity']} {alert['fingerprint']}"
        print(f"{line} (alert {alert['id']})")
        if alert.get("decision"):
            p = "" if alert["probability"] is None else f", p = {alert['probability']:.2f}"
            print(f"      {alert['decision']}{p}: {alert['reason']}")
        if alert.get("shadow_reason"):
            print(f"      shadow: {alert['shadow_reason']}")
    print("Timeline:")
    for entry in data["timeline"]:
        print(f"  {entry['at'][:19].replace('T', ' ')}  {entry['actor']}: {entry['text']}")
    return 0


def acknowledge(settings: Settings, args: argparse.Namespace) -> int:
    service = build_incident_service(settings)
    return _act(settings, lambda session: service.acknowledge(session, args.id, _actor(args)))


def resolve(settings: Settings, args: argparse.Namespace) -> int:
    service = build_incident_service(settings)

    def act(session: Session) -> Outcome:
        outcome = service.resolve(session, args.id, _actor(args), args.note)
        if args.cause is None:
            return outcome
        confirmed = feedback.confirm(service, session, args.id, args.cause, _actor(args), _actor(args), args.note)
        return Outcome(True, f"{outcome.message} Cause recorded: {confirmed.name}.")

    return _act(settings, act)


def merge(settings: Settings, args: argparse.Namespace) -> int:
    corrections = build_corrections(build_incident_service(settings), settings)
    return _act(settings, lambda session: corrections.merge(session, args.target, args.merged, _actor(args)))


def split(settings: Settings, args: argparse.Namespace) -> int:
    corrections = build_corrections(build_incident_service(settings), settings)
    return _act(settings, lambda session: corrections.split(session, args.id, args.selector, _actor(args)))


def classify(settings: Settings, args: argparse.Namespace) -> int:
    service = build_incident_service(settings)
    return _act(settings, lambda session: picks.pick(service, session, args.id, args.category, _actor(args)))


def _act(settings: Settings, action: Any) -> int:
    database = open_database(settings)
    try:
        with database.write() as session:
            outcome = action(session)
    except IncidentError as exc:
        print(f"incibot: {exc.message}", file=sys.stderr)
        return 1
    finally:
        database.dispose()
    print(outcome.message, file=sys.stdout if outcome.changed else sys.stderr)
    return 0 if outcome.changed else 1


def _actor(args: argparse.Namespace) -> str:
    return str(args.by or f"cli:{getpass.getuser()}")
