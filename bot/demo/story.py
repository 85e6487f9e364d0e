"""What the demo plays, written for it: the workspace's people, the shop's topology, the action catalogue, three
past incidents, and the outage (a database failure cascading into its callers, then an unrelated certificate
warning). Data only; :mod:`bot.demo.player` plays it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bot.standin.workspace import BOT_USER_ID, ChannelSeed, User, Workspace

CLUSTER, NAMESPACE = "prod-eu-1", "shop"

ALICE, BOB, CAROL, DANA = "U0ALICE", "U0BOB", "U0CAROL", "U0DANA"
ONCALL = "S0ONCALL"  # the stand-in's default user group: Alice and Carol
RESPONDERS = frozenset({ONCALL, BOB})  # Dana, from customer service, is an end user
REQUESTER, APPROVER, END_USER = ALICE, BOB, DANA


HISTORY_LABEL, HISTORY_CHANNEL = ("demo", "history"), "incident-history"  # the seeded past goes to its own channel


def workspace() -> Workspace:
    """The stand-in's default workspace plus Dana; everyone is in ``#incidents`` and ``#incident-history``."""
    dana = User(DANA, "dana", "Dana Diaz", "dana (customer service)")
    base = Workspace.default()
    members = (BOT_USER_ID, ALICE, BOB, CAROL, DANA)
    channels = (ChannelSeed("C0INCIDENTS", "incidents", members), ChannelSeed("C0HISTORY", HISTORY_CHANNEL, members))
    return Workspace(users=(*base.users, dana), channels=channels)


def _service(name: str, kind: str, depends_on: list[str], pods: list[tuple[str, str]]) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": NAMESPACE,
        "type": kind,
        "depends_on": depends_on,
        "pods": [{"name": pod, "node": node} for pod, node in pods],
    }


TOPOLOGY: dict[str, Any] = {
    "clusters": [
        {
            "name": CLUSTER,
            "nodes": [{"name": "worker-a"}, {"name": "worker-b"}, {"name": "worker-c"}],
            "services": [
                _service("frontend", "web", ["checkout", "catalog"], [("frontend-5f7c9d-k2x8q", "worker-a")]),
                _service(
                    "checkout",
                    "api",
                    ["orders-db", "payments"],
                    [("checkout-6b8d4f-7hq2m", "worker-a"), ("checkout-6b8d4f-p9z4t", "worker-b")],
                ),
                _service("payments", "api", ["orders-db"], [("payments-7d9c5b-w4n6r", "worker-b")]),
                _service("catalog", "api", [], [("catalog-59f6d8-c3v7b", "worker-c")]),
                _service("orders-db", "database", [], [("orders-db-0", "worker-c"), ("orders-db-1", "worker-b")]),
            ],
        }
    ]
}

ACTIONS_YAML = f"""\
# The demo's action catalogue (INCIBOT_REMEDIATION=dry-run: nothing is ever called).
actions:
  - name: rollback-release
    description: Roll a service back to its previous release (CI job)
    executor:
      type: http
      url: https://ci.example.com/hooks/rollback
      body: {{service: "{{service}}"}}
    params:
      service: {{type: string, pattern: "[a-z0-9-]{{1,63}}", default: "{{labels.service}}"}}
    target: "ci:rollback/{{service}}"
    applies_to:
      categories: [database, application]
    risk: medium
    approvals: 1
    approvers: [{BOB}, {CAROL}]
    expiry: 2h  # time for the visitor to approve it
    timeout: 20s
    idempotent: false

  - name: restart-deployment
    description: Rolling restart of a deployment
    executor:
      type: http
      url: https://deploy.example.com/hooks/restart
      body: {{namespace: "{{namespace}}", deployment: "{{deployment}}"}}
    params:
      namespace: {{type: string, pattern: "[a-z0-9-]{{1,63}}", default: "{{labels.namespace}}"}}
      deployment: {{type: string, pattern: "[a-z0-9-]{{1,63}}", default: "{{labels.service}}"}}
    applies_to:
      alertnames: [HighHTTPErrorRate, KubernetesPodCrashLooping]
    risk: medium
    approvers: [{BOB}, {CAROL}]
    timeout: 30s
    idempotent: true
"""


@dataclass(frozen=True)
class ScriptedAlert:
    """One alert: ``started`` minutes into its episode it began; ``sent`` minutes in it reaches incibot
    (Alertmanager's ``for:`` and group wait: a root cause's alert often arrives after its symptoms')."""

    name: str
    service: str
    severity: str
    summary: str
    description: str
    started: float
    sent: float
    labels: dict[str, str] = field(default_factory=dict)

    def as_alertmanager(self, starts_at: str, *, resolved_at: str | None = None) -> dict[str, Any]:
        labels = {"alertname": self.name, "cluster": CLUSTER, "namespace": NAMESPACE, "service": self.service}
        return {
            "status": "resolved" if resolved_at else "firing",
            "labels": {**labels, "severity": self.severity, **self.labels},
            "annotations": {"summary": self.summary, "description": self.description},
            "startsAt": starts_at,
            "endsAt": resolved_at or "0001-01-01T00:00:00Z",
            "generatorURL": f"http://prometheus.demo.invalid/graph?g0.expr={self.name}",
        }


@dataclass(frozen=True)
class PastIncident:
    """A resolved incident of the seeded history: its alert, when, and how it was resolved."""

    days_ago: float
    alert: ScriptedAlert
    lasted_minutes: int
    cause: str
    note: str


HISTORY = (
    PastIncident(
        9,
        ScriptedAlert(
            "PostgresTooManyConnections",
            "orders-db",
            "critical",
            "orders-db refuses new connections",
            "orders-db-0 has used 100% of max_connections for 3 minutes; new clients get 'too many clients'.",
            0,
            0,
            {"pod": "orders-db-0", "demo": "history"},
        ),
        34,
        "orders-db",
        "A reporting export opened hundreds of connections; killed it and capped its pool at 10.",
    ),
    PastIncident(
        5,
        ScriptedAlert(
            "KubernetesPodCrashLooping",
            "checkout",
            "critical",
            "checkout pods are crash looping",
            "checkout-6b8d4f-7hq2m restarted 6 times in 10 minutes (CrashLoopBackOff).",
            0,
            0,
            {"pod": "checkout-6b8d4f-7hq2m", "demo": "history"},
        ),
        18,
        "checkout",
        "Release 2.30 shipped a malformed config map; rolled back to 2.29.",
    ),
    PastIncident(
        2,
        ScriptedAlert(
            "CertificateExpiringSoon",
            "api-gateway",
            "warning",
            "TLS certificate of shop.example.com expires in 6 days",
            "The certificate served by api-gateway for shop.example.com expires in 6 days.",
            0,
            0,
            {"host": "shop.example.com", "namespace": "ingress", "demo": "history"},
        ),
        45,
        "api-gateway",
        "cert-manager could not renew (DNS challenge blocked); fixed the DNS record and renewed.",
    ),
)


OUTAGE_MINUTES = 6.0  # how long the outage lasts in its own time; played over a few tens of seconds

OUTAGE = (
    ScriptedAlert(
        "HighHTTPErrorRate",
        "checkout",
        "critical",
        "checkout returns many 5xx errors",
        "12% of checkout requests failed with 503 over the last 5 minutes.",
        1.0,
        1.2,
    ),
    ScriptedAlert(
        "HighHTTPErrorRate",
        "frontend",
        "error",
        "frontend returns many 5xx errors",
        "7% of frontend page loads failed with 502 over the last 5 minutes.",
        1.2,
        1.5,
    ),
    ScriptedAlert(
        "HighRequestLatency",
        "checkout",
        "warning",
        "checkout p99 latency above 2 s",
        "p99 latency of POST /checkout is 4.8 s (threshold 2 s).",
        1.3,
        1.8,
    ),
    ScriptedAlert(
        "PaymentsDatabaseErrors",
        "payments",
        "error",
        "payments cannot reach its database",
        "payments logged 230 'connection refused' errors to orders-db in 5 minutes.",
        1.4,
        2.1,
        {"pod": "payments-7d9c5b-w4n6r"},
    ),
    ScriptedAlert(
        "PostgresDown",
        "orders-db",
        "critical",
        "orders-db primary is down",
        "pg_up is 0 on orders-db-0 for 2 minutes: the primary does not accept connections.",
        0.5,
        2.5,
        {"pod": "orders-db-0"},
    ),
    ScriptedAlert(
        "KubernetesPodNotReady",
        "checkout",
        "warning",
        "checkout pod not ready",
        "checkout-6b8d4f-p9z4t has failed its readiness probe for 2 minutes.",
        1.8,
        2.8,
        {"pod": "checkout-6b8d4f-p9z4t"},
    ),
    ScriptedAlert(
        "PostgresReplicationLagHigh",
        "orders-db",
        "warning",
        "orders-db replica is 90 s behind",
        "orders-db-1 replays WAL 90 seconds behind the primary.",
        2.0,
        3.1,
        {"pod": "orders-db-1"},
    ),
    ScriptedAlert(
        "HighHTTPErrorRate",
        "payments",
        "error",
        "payments returns many 5xx errors",
        "9% of payment authorisations failed with 500 over the last 5 minutes.",
        2.2,
        3.4,
    ),
    ScriptedAlert(
        "KubernetesPodCrashLooping",
        "checkout",
        "critical",
        "checkout pod is crash looping",
        "checkout-6b8d4f-7hq2m restarted 4 times in 5 minutes: its liveness probe times out on the database.",
        2.6,
        3.8,
        {"pod": "checkout-6b8d4f-7hq2m"},
    ),
    ScriptedAlert(
        "HighRequestLatency",
        "frontend",
        "warning",
        "frontend p99 latency above 3 s",
        "p99 latency of GET / is 6.1 s (threshold 3 s).",
        3.0,
        4.2,
    ),
    ScriptedAlert(
        "BlackboxProbeFailed",
        "frontend",
        "critical",
        "shop.example.com/checkout probe fails",
        "The synthetic checkout journey failed 3 times in a row (HTTP 502).",
        3.2,
        4.5,
        {"instance": "https://shop.example.com/checkout"},
    ),
)

UNRELATED = ScriptedAlert(
    "CertificateExpiringSoon",
    "api-gateway",
    "warning",
    "TLS certificate of api.example.com expires in 9 days",
    "The certificate served by api-gateway for api.example.com expires in 9 days.",
    5.0,
    5.5,
    {"host": "api.example.com", "namespace": "ingress"},
)

QUIET_MINUTES = 10.0  # the demo clock jumps ahead before the unrelated alert: it comes well after the cascade
CHANGE_MINUTES_BEFORE = 4.0  # the deploy, before the outage's first alert began
CHANGE: dict[str, Any] = {
    "service": "orders-db",
    "kind": "config",
    "version": "pg-config-41",
    "who": "dmitri",
    "link": "https://ci.example.com/pipelines/8812",
    "description": "max_connections 400 -> 100, shared_buffers 8GB -> 2GB",
}

REMEDIATION = ("rollback-release", "service=orders-db")  # what Alice asks for, once the incident is posted
QUESTION = "is checkout down?"  # what Dana asks the bot in a DM
