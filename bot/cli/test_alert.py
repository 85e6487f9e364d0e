"""``incibot send-test-alert``: one realistic Alertmanager group (3 alerts), firing or resolved.

The group's ``startsAt`` is remembered in the state dir until the group is resolved: sending it again
re-sends the same alerts (as Alertmanager does), and ``--resolve`` resolves the very alerts it opened.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bot.ingest import token_file
from bot.settings import Settings

GROUP_KEY = '{}/{severity="critical"}:{alertname="KubePodCrashLooping", namespace="checkout"}'
PODS = ("checkout-api-7d9f8b6c5d-2xk4p", "checkout-api-7d9f8b6c5d-9qj7z", "checkout-api-7d9f8b6c5d-tm3wv")


def register(commands: Any) -> None:
    parser = commands.add_parser("send-test-alert", help="post a sample Alertmanager group to a running bot")
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="the bot's base URL")
    parser.add_argument("--token", default=None, help="ingest token (default: configured or the token file)")
    parser.add_argument("--resolve", action="store_true", help="send the same group, resolved")
    parser.set_defaults(handler=send_test_alert)


def send_test_alert(settings: Settings, args: argparse.Namespace) -> int:
    token = args.token or token_file.alertmanager_token(settings)
    if token is None:
        print(
            "incibot: no ingest token: pass --token, set INCIBOT_INGEST_TOKENS, or run `make run` once", file=sys.stderr
        )
        return 2
    remembered = settings.state_dir / "test-alert-starts-at"
    starts_at = _starts_at(remembered)
    payload = test_group(starts_at, resolved=args.resolve)
    url = args.url.rstrip("/") + "/alerts/alertmanager"
    try:
        response = httpx.post(url, json=payload, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    except httpx.HTTPError as exc:
        print(f"incibot: cannot reach {url}: {exc}", file=sys.stderr)
        return 1
    print(f"{response.status_code} {response.text}")
    if not response.is_success:
        return 1
    if args.resolve:
        remembered.unlink(missing_ok=True)
    return 0


def test_group(starts_at: datetime, *, resolved: bool = False) -> dict[str, Any]:
    """An Alertmanager v4 webhook body: three crash-looping pods of one deployment."""
    status = "resolved" if resolved else "firing"
    ends_at = datetime.now(UTC).isoformat() if resolved else "0001-01-01T00:00:00Z"
    common = {
        "alertname": "KubePodCrashLooping",
        "namespace": "checkout",
        "severity": "critical",
        "service": "checkout-api",
        "job": "kube-state-metrics",
    }
    alerts = [
        {
            "status": status,
            "labels": {**common, "pod": pod, "container": "api"},
            "annotations": {
                "summary": "Pod is crash looping.",
                "description": f"Pod checkout/{pod} (api) is in waiting state (reason: CrashLoopBackOff).",
                "runbook_url": "https://runbooks.example.com/kubernetes/kubepodcrashlooping",
            },
            "startsAt": starts_at.isoformat(),
            "endsAt": ends_at,
            "generatorURL": "http://prometheus.example.com/graph?g0.expr=kube_pod_container_status_waiting_reason",
        }
        for pod in PODS
    ]
    return {
        "version": "4",
        "groupKey": GROUP_KEY,
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "incibot",
        "groupLabels": {"alertname": "KubePodCrashLooping", "namespace": "checkout"},
        "commonLabels": common,
        "commonAnnotations": {"summary": "Pod is crash looping."},
        "externalURL": "http://alertmanager.example.com",
        "alerts": alerts,
    }


def _starts_at(path: Path) -> datetime:
    try:
        return datetime.fromisoformat(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        pass
    starts_at = datetime.now(UTC).replace(microsecond=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(starts_at.isoformat() + "\n")
    return starts_at
