"""End to end: hostile values in every field of every source reach Slack inert (no ping, no link but to a
checked http(s) URL) and within Slack's limits, in the post, its edits and its thread replies; alert lines
are grouped by name in the post and in the "alerts joined" replies."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.incidents.models import Incident, IncidentStatus
from bot.settings import Settings
from bot.slack.models import OutboxItem, OutboxStatus
from tests.conftest import PD_ROUTING_KEY
from tests.slack_checks import PINGS, assert_inert, assert_within_limits, mrkdwn_texts
from tests.slack_support import SlackBot, running_bot
from tests.support import am_alert, am_group, wait_for

GOOD_URL = "https://grafana.example.com/d/abc?orgId=1&var-pod=cart-0"
URL_SETS = (
    ("javascript:alert(1)", "http://evil|http://good", "https://x.com/a>b"),
    ("https://x.com/\x07<!channel>", "https://x.com/" + "<!here>" * 200, GOOD_URL),
)
# No NUL: PostgreSQL cannot store one, and the ingest side decides what to do with it.
TEXT = " ".join(PINGS) + " <https://evil.example|click> a & b \x07\x1b[31m \u202e\n*bold*"
T0 = datetime(2026, 3, 10, 9, tzinfo=UTC)


@pytest.fixture
def bot(settings: Settings) -> Iterator[SlackBot]:
    with running_bot(settings) as running:
        yield running


def _labels(n: int, key: str) -> dict[str, str]:
    return {
        "group": key,
        "alertname": f"{TEXT[:80]} Crash",
        "severity": "critical",
        "service": TEXT,
        "namespace": TEXT,
        "pod": f"{TEXT}-pod-{n}",
    }


def _grouped(source: str, key: str, urls: tuple[str, ...], status: str, first: int) -> dict[str, Any]:
    alerts = []
    for n, url in enumerate(urls, start=first):
        alert = {
            "status": status,
            "labels": _labels(n, key),
            "annotations": {"summary": f"{TEXT} {n}", "description": TEXT * 20, "runbook_url": "javascript:alert(1)"},
            "startsAt": (T0 + timedelta(seconds=n)).isoformat(),
            "endsAt": (T0 + timedelta(hours=1)).isoformat() if status == "resolved" else "0001-01-01T00:00:00Z",
            "generatorURL": url,
        }
        if source == "grafana":
            for field in ("dashboardURL", "panelURL", "silenceURL", "imageURL"):
                alert[field] = "javascript:alert(1)"
            alert["valueString"] = TEXT
        alerts.append(alert)
    payload = am_group([am_alert()], group_key=f"{TEXT}{key}")
    payload.update(
        alerts=alerts,
        status=status,
        receiver=TEXT,
        externalURL="javascript:alert(1)",
        groupLabels={"alertname": TEXT},
        commonLabels={"service": TEXT},
        commonAnnotations={"summary": TEXT},
    )
    if source == "grafana":
        payload.update(version="1", orgId=1, title=TEXT, message=TEXT)
    return payload


def _generic(key: str, urls: tuple[str, ...], status: str, first: int) -> dict[str, Any]:
    alerts = [
        {
            "name": f"{TEXT[:80]} Crash",
            "status": status,
            "severity": "critical",
            "summary": f"{TEXT} {n}",
            "description": TEXT * 20,
            "labels": {**_labels(n, key), "alertname": "ignored"},
            "annotations": {"runbook_url": "javascript:alert(1)", "note": TEXT},
            "group_key": f"{TEXT}{key}",
            "url": url,
        }
        for n, url in enumerate(urls, start=first)
    ]
    return {"group_key": TEXT, "alerts": alerts}


def _pagerduty(url: str, action: str) -> dict[str, Any]:
    event: dict[str, Any] = {
        "routing_key": PD_ROUTING_KEY,
        "event_action": action,
        "dedup_key": f"{TEXT[:100]}{url[:60]}",
        "client": TEXT,
        "client_url": url,
        "links": [{"href": "javascript:alert(1)", "text": TEXT}, {"href": "http://evil|http://good", "text": TEXT}],
        "images": [{"src": "javascript:alert(1)", "href": "https://x.com/a>b", "alt": TEXT}],
    }
    if action == "trigger":
        event["payload"] = {
            "summary": TEXT,
            "source": TEXT,
            "severity": "critical",
            "component": TEXT,
            "group": TEXT,
            "class": TEXT,
            "custom_details": {"detail": TEXT, "url": "javascript:alert(1)"},
        }
    return event


def _send_all(bot: SlackBot, status: str, *, first: int = 0, pagerduty: str | None = None) -> None:
    for key, urls in enumerate(URL_SETS):
        for source in ("alertmanager", "grafana"):
            bot.send(_grouped(source, f"{source}{key}", urls, status, first), source=source)
        bot.send(_generic(f"generic{key}", urls, status, first), source="generic")
    if pagerduty:
        for url in (*URL_SETS[0], URL_SETS[1][0]):
            response = bot.http.post("/alerts/pagerduty/v2/enqueue", json=_pagerduty(url, pagerduty))
            assert response.status_code == 202, response.text


def _settled(bot: SlackBot) -> bool:
    with bot.runtime.database.read() as session:
        pending = session.scalar(select(func.count()).where(OutboxItem.status == OutboxStatus.PENDING))
        open_ = session.scalar(select(func.count()).where(Incident.status != IncidentStatus.RESOLVED))
    return pending == 0 and open_ == 0


def _sent(bot: SlackBot) -> list[dict[str, Any]]:
    """What the bot sent with chat.postMessage and chat.update (every post, edit and thread reply)."""
    messages = []
    for call in bot.standin.calls("chat.postMessage") + bot.standin.calls("chat.update"):
        assert call["error"] is None, call
        params = dict(call["params"])
        if isinstance(params.get("blocks"), str):
            params["blocks"] = json.loads(params["blocks"])
        if call["method"] == "chat.update":  # chat.update parses text like a client ("@channel") unless told not to
            assert params.get("parse") == "none", params.get("parse")
        messages.append(
            {"method": call["method"], "text": params.get("text", ""), "blocks": params.get("blocks") or []}
        )
    return messages


def test_hostile_values_from_every_source_reach_slack_inert_and_within_limits(bot: SlackBot) -> None:
    incidents = 2 * 3 + 4  # two groups from each grouped source, four PagerDuty events
    _send_all(bot, "firing", pagerduty="trigger")
    wait_for(lambda: len(bot.posts()) == incidents, timeout=60)
    _send_all(bot, "firing", first=len(URL_SETS[0]))  # three more alerts join each group: a grouped reply
    wait_for(lambda: sum(any("joined" in r["text"] for r in p["replies"]) for p in bot.posts()) == 6, timeout=60)
    _send_all(bot, "resolved", pagerduty="resolve")
    _send_all(bot, "resolved", first=len(URL_SETS[0]))
    wait_for(lambda: _settled(bot), timeout=60)
    wait_for(lambda: all("resolved" in post["text"] for post in bot.posts()), timeout=30)

    sent = _sent(bot)
    assert len([m for m in sent if m["method"] == "chat.update"]) >= incidents  # the edits were inspected too
    shown = "\n".join(text for message in sent for text in mrkdwn_texts(message))
    for message in sent:
        for text in mrkdwn_texts(message):
            assert_inert(text, allowed_urls={GOOD_URL})
        assert_within_limits(message)
    assert f"<{GOOD_URL.replace('&', '&amp;')}|source 3>" in shown  # a safe URL is still a link
    assert "javascript:alert(1)" in shown and "&lt;!channel&gt;" in shown  # hostile values are shown, as text
    for source in ("alertmanager", "grafana", "generic", "pagerduty"):
        assert any(source in post["text"] or source in str(post["blocks"]) for post in bot.posts())
    joined = [r["text"] for p in bot.posts() for r in p["replies"] if "alerts joined" in r["text"]]
    for text in joined:  # each reply lists its alerts as one grouped line (how many joined depends on timing)
        count = re.match(r"(\d+) alerts joined:\n(:fire:|:white_check_mark:) ", text)  # their state when posted
        assert count and text.startswith(f"{count[0]}*{count[1]} \N{MULTIPLICATION SIGN} "), text
        assert "-pod-" in text or "…-" in text  # the differing pod values, their shared prefix written once
