"""For the remediation tests: the recording HTTP target on loopback (every remediation test uses this one), a
catalogue pointing at it, an incident, and the service with its runner as the runtime wires them (real executor,
real database)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from bot.db.database import Database
from bot.incidents.models import Incident
from bot.remediation.catalogue import Catalogue
from bot.remediation.executors import CatalogueExecutor
from bot.remediation.runner import Notice, Runner
from bot.remediation.service import Mode, RemediationService
from tests.support import T0, FakeClock, reply_json, serve_handler

REQUESTER, ALICE, BOB, CAROL, MALLORY = "U0REQUESTER", "U0ALICE", "U0BOB", "U0CAROL", "U0MALLORY"
ONCALL = "S0ONCALL"  # a user group: its members come from the resolver


@dataclass(frozen=True)
class TargetCall:
    """One request the target received, as it arrived (header names lower-cased)."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def key(self) -> str | None:
        return self.headers.get("idempotency-key")

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Target:
    """A loopback HTTP endpoint (POST and PUT) that records every call. It answers with ``replies`` in turn
    (status, delay), then with ``status`` after ``delay``; its JSON answer echoes the Authorization header, so
    that a test can see the caller redact it."""

    url: str = ""
    calls: list[TargetCall] = field(default_factory=list)
    replies: list[tuple[int, float]] = field(default_factory=list)
    status: int = 200
    delay: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)
    active: int = 0
    most_active: int = 0  # the most calls it was ever answering at once

    def count(self) -> int:
        with self.lock:
            return len(self.calls)


@contextmanager
def recording_target() -> Iterator[Target]:
    target = Target()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {name.lower(): value for name, value in self.headers.items()}
            with target.lock:
                target.calls.append(TargetCall(self.command, self.path, headers, body))
                status, delay = target.replies.pop(0) if target.replies else (target.status, target.delay)
                target.active += 1
                target.most_active = max(target.most_active, target.active)
            time.sleep(delay)
            with target.lock:
                target.active -= 1
            payload = json.dumps({"ok": status < 300, "echo": headers.get("authorization")}).encode()
            reply_json(self, status, payload)

        do_PUT = do_POST

        def log_message(self, *_args: Any) -> None:
            pass

    with serve_handler(Handler) as url:
        target.url = f"{url}/hooks/restart"
        yield target


def catalogue_text(url: str, *, idempotent: bool = False) -> str:
    """Three http actions on one target URL: no approval (low), one (medium), two (high)."""
    actions = []
    for name, risk, approvals in (("flush-cache", "low", 0), ("restart", "medium", 1), ("failover", "high", 2)):
        actions.append(
            f"""
  - name: {name}
    description: {name} a service
    executor: {{type: http, url: "{url}", body: {{service: "{{service}}", replicas: "{{replicas}}"}}}}
    params:
      service: {{type: string, pattern: "[a-z0-9-]{{1,40}}", default: "{{labels.service}}"}}
      replicas: {{type: integer, min: 1, max: 10, default: 2}}
    target: "{{service}}"
    risk: {risk}
    approvals: {approvals}
    approvers: [{ALICE}, {BOB}, {ONCALL}]
    expiry: 15m
    timeout: 1s
    idempotent: {str(idempotent).lower()}
"""
        )
    return "actions:" + "".join(actions)


def write_catalogue(directory: Path, url: str, *, idempotent: bool = False) -> Path:
    path = directory / "actions.yml"
    path.write_text(catalogue_text(url, idempotent=idempotent))
    return path


def add_incident(database: Database) -> int:
    with database.write() as session:
        incident = Incident(
            title="checkout 5xx", severity="critical", source="generic", group_key="g", opened_at=T0, last_alert_at=T0
        )
        session.add(incident)
        session.flush()
        return incident.id


@dataclass
class Flow:
    """A service and runner on one database, with a settable group membership and the notices received."""

    service: RemediationService
    runner: Runner
    clock: FakeClock
    members: set[str]
    notices: list[Notice]


def build_flow(database: Database, catalogue_path: Path, *, mode: Mode = "on", clock: FakeClock | None = None) -> Flow:
    catalogue = Catalogue.load(catalogue_path)
    members = {CAROL}
    notices: list[Notice] = []
    clock = clock or FakeClock()
    service = RemediationService(
        database,
        clock=clock,
        catalogue=catalogue,
        executor=CatalogueExecutor.build(catalogue),
        mode=mode,
        resolve_group=lambda group: set(members) if group == ONCALL else set(),
    )
    runner = Runner(service, notices.append, workers=2, poll=0.05)
    service.on_approved = runner.wake
    return Flow(service, runner, clock, members, notices)
