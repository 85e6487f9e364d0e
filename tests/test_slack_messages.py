"""The message builders: outside strings only through ``bot.slack.mrkdwn``, alert lines grouped by name, and
every message within Slack's limits whatever the alerts carry."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from bot.incidents.models import Incident
from bot.knowledge.suggestions import RunbookHit, SimilarIncident, Suggestions
from bot.runtime import Runtime
from bot.slack import mrkdwn
from bot.slack.alert_groups import AlertLine, compact_list, group_alerts
from bot.slack.blocks import (
    ALERTS_SHOWN,
    MAX_SECTION_CHARS,
    TIMES,
    IncidentCard,
    alert_list,
    incident_message,
    runbook_line,
    similar_line,
    thread_text,
)
from bot.slack.cards import ALERTS_SCANNED, alert_counts, load_card
from tests.conftest import auth
from tests.slack_checks import PINGS, assert_inert, assert_within_limits, mrkdwn_texts
from tests.support import am_alert, am_group, serve_in_thread

HOSTILE_URLS = (
    "javascript:alert(1)",
    "http://evil|http://good",
    "https://x.com/a>b",
    "https://x.com/<!channel>",
    "<https://evil.example|https://good.example>",
    "https://x.com/\x07bell",
    "https://x.com/a b",
    "https://x.com/\u202egnp.exe",
    "data:text/html,<script>alert(1)</script>",
    "//evil.example/no-scheme",
    "https://",
    "https://[::1",
    "ftp://files.example.com/x",
    "https://x.com/" + "a" * mrkdwn.MAX_URL_CHARS,
)
GOOD_URLS = (
    "https://grafana.example.com/d/abc?orgId=1&var-pod=cart-0",
    "http://prometheus.example.com:9090/graph?g0.expr=rate%28x%5B5m%5D%29",
    "HTTPS://Example.COM/path#frag",
)
HOSTILE_TEXT = " ".join(PINGS) + " <https://evil.example|click> a & b\x00\x1b[31m\u202e\n*bold* `code`"


def card(**overrides: Any) -> IncidentCard:
    fields: dict[str, Any] = {
        "id": 7, "title": "Checkout 5xx", "severity": "critical", "status": "triggered", "service": "checkout",
        "source": "alertmanager", "opened_at": datetime(2026, 3, 10, 9, tzinfo=UTC), "alert_count": 1,
        "commander": None, "alerts": (AlertLine("HighErrorRate", "firing", "5xx on checkout", None),),
    }  # fmt: skip
    fields.update(overrides)
    return IncidentCard(**fields)


# --- mrkdwn ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ping", PINGS)
def test_escape_neutralises_pings_and_links(ping: str) -> None:
    escaped = mrkdwn.escape(f"{ping} <https://evil|click> & more")
    assert "<" not in escaped and ">" not in escaped
    assert escaped.startswith(ping.replace("<", "&lt;").replace(">", "&gt;"))
    assert "&amp; more" in escaped


def test_escape_drops_control_and_bidi_characters_and_keeps_lines_unless_asked() -> None:
    assert mrkdwn.escape("a\x00b\x1bc\u202ed\ne\tf") == "abcd\ne\tf"
    assert mrkdwn.escape("a\n\n b\r\nc", one_line=True) == "a b c"


@pytest.mark.parametrize("limit", [1, 2, 5, 9, 10, 100])
def test_escape_limit_bounds_the_escaped_text_without_cutting_an_entity(limit: int) -> None:
    escaped = mrkdwn.escape("<&>" * 50, limit)
    assert len(escaped) <= limit
    assert escaped.endswith("…")
    assert re.fullmatch(r"(&lt;|&amp;|&gt;)*…", escaped)


@pytest.mark.parametrize("url", HOSTILE_URLS)
def test_hostile_urls_never_become_links(url: str) -> None:
    assert mrkdwn.safe_url(url) is None
    shown = mrkdwn.link(url, "source <!here>")
    assert "<" not in shown and ">" not in shown
    assert shown.startswith("source &lt;!here&gt; (")
    assert len(shown) < 150  # the URL is shown clipped


@pytest.mark.parametrize("url", GOOD_URLS)
def test_http_urls_become_links_with_escaped_label(url: str) -> None:
    assert mrkdwn.safe_url(url) == url
    assert mrkdwn.link(url, "<!channel>|x") == f"<{url.replace('&', '&amp;')}|&lt;!channel&gt;|x>"


def test_channel_links_only_ids_and_dates_are_tokens() -> None:
    assert mrkdwn.channel("C0123ABC") == "<#C0123ABC>"
    assert mrkdwn.channel("general>|<!channel") == "#general&gt;|&lt;!channel"
    when = datetime(2026, 3, 10, 9, 5, tzinfo=UTC)
    assert (
        mrkdwn.date(when, "{date_short_pretty}", "%Y-%m-%d")
        == f"<!date^{int(when.timestamp())}^{{date_short_pretty}}|2026-03-10>"
    )


def test_join_within_never_cuts_a_part() -> None:
    parts = ["<https://a.example|one>", "<https://b.example|two>", "<https://c.example|three>"]
    assert mrkdwn.join_within(parts, 1000, " · ") == " · ".join(parts)
    joined = mrkdwn.join_within(parts, 55, " · ")
    assert joined == f"{parts[0]} · {parts[1]} · …"[: len(joined)] and len(joined) <= 55
    assert joined.endswith("…") and all(part in parts or part == "…" for part in joined.split(" · "))
    assert mrkdwn.join_within(["x" * 50], 10) == "…"


# --- grouping ----------------------------------------------------------------------------------------


def pod_alert(pod: str, *, name: str = "KubePodCrashLooping", status: str = "firing", **labels: str) -> AlertLine:
    summary = f"Pod shop/{pod} is restarting"
    return AlertLine(name, status, summary, None, {"alertname": name, "namespace": "shop", "pod": pod, **labels})


def test_identical_alerts_make_one_line_with_a_count() -> None:
    same = AlertLine("DiskFull", "firing", "Disk 95% full", None, {"alertname": "DiskFull", "host": "db1"})
    [group] = group_alerts([same] * 4)
    assert (group.count, group.summary, group.differences) == (4, "Disk 95% full", ())
    assert alert_list([same] * 4, 4) == f":fire: *4{TIMES}DiskFull* Disk 95% full"


def test_distinguishing_label_values_with_their_shared_prefix_collapsed() -> None:
    alerts = [pod_alert(f"cart-5d8c7b9f4-{n}") for n in range(3)]
    [group] = group_alerts(alerts)
    assert group.count == 3 and group.summary is None
    assert compact_list(group.differences) == "cart-5d8c7b9f4-0, -1, -2"
    assert alert_list(alerts, 3) == f":fire: *3{TIMES}KubePodCrashLooping* — cart-5d8c7b9f4-0, -1, -2"
    long_prefix = [pod_alert(f"checkout-service-canary-5d8c7b9f4-{n}") for n in range(3)]
    assert compact_list(group_alerts(long_prefix)[0].differences) == "checkout-…-0, -1, -2"


def test_two_labels_when_one_does_not_tell_the_alerts_apart() -> None:
    alerts = [pod_alert(f"web-{n}", namespace=ns) for ns in ("shop", "blog") for n in range(2)]
    [group] = group_alerts(alerts)
    assert group.differences == ("shop/web-0", "shop/web-1", "blog/web-0", "blog/web-1")


def test_summaries_tell_alerts_apart_when_labels_do_not() -> None:
    alerts = [AlertLine("Probe", "firing", f"probe {n} failed", None, {"alertname": "Probe"}) for n in range(3)]
    [group] = group_alerts(alerts)
    assert group.differences == ("probe 0 failed", "probe 1 failed", "probe 2 failed")


def test_firing_and_resolved_alerts_of_one_name_are_separate_lines() -> None:
    alerts = [pod_alert("web-0"), pod_alert("web-1", status="resolved"), pod_alert("web-2")]
    lines = alert_list(alerts, 3).split("\n")
    assert lines == [
        f":fire: *2{TIMES}KubePodCrashLooping* — web-0, -2",
        ":white_check_mark: *KubePodCrashLooping* Pod shop/web-1 is restarting",
    ]


def test_many_values_are_listed_up_to_a_few_then_counted() -> None:
    alerts = [pod_alert(f"cart-{n:03d}") for n in range(40)]
    listing = alert_list(alerts, 40)
    assert listing == f":fire: *40{TIMES}KubePodCrashLooping* — cart-000, -001, -002, -003, -004 and 35 more"


def test_many_distinct_names_show_the_first_groups_then_how_many_more() -> None:
    alerts = [pod_alert(f"p{n}", name=f"Alert{n % 30}") for n in range(90)]
    lines = alert_list(alerts, 500).split("\n")
    assert len(lines) == ALERTS_SHOWN + 1
    assert all(line.startswith(f":fire: *3{TIMES}Alert") for line in lines[:-1])
    assert lines[-1] == f"+{500 - 3 * ALERTS_SHOWN} more"


def test_long_and_hostile_values_stay_within_the_section_limit_and_inert() -> None:
    alerts = [
        AlertLine(
            f"{HOSTILE_TEXT} {'N' * 300} {n % 12}",
            "firing",
            HOSTILE_TEXT * 50,
            None,
            {"alertname": "x", "pod": f"{'<!here>' * 100}-{n}", "zone": HOSTILE_TEXT * 20},
        )
        for n in range(200)
    ]
    listing = alert_list(alerts, 200)
    assert len(listing) <= MAX_SECTION_CHARS
    assert_inert(listing)
    shown = listing.split("\n")
    assert shown[-1].startswith("+") and shown[-1].endswith(" more")
    counted = sum(
        int(m.group(1)) if m else 1 for m in (re.match(rf":fire: \*(\d+){TIMES}", line) for line in shown[:-1])
    )
    assert shown[-1] == f"+{200 - counted} more"


def test_exact_counts_when_the_lines_are_a_sample() -> None:
    sample = [pod_alert(f"cart-{n}") for n in range(3)] + [pod_alert("web-0", name="HighLatency")]
    counts = {("KubePodCrashLooping", "firing"): 4000, ("HighLatency", "firing"): 1, ("Other", "firing"): 999}
    lines = alert_list(sample, 5000, counts).split("\n")
    assert lines == [
        f":fire: *4000{TIMES}KubePodCrashLooping* — cart-0, -1, -2 and more",
        ":fire: *HighLatency* Pod shop/web-0 is restarting",
        "+999 more",
    ]


@pytest.mark.db
def test_a_post_counts_every_alert_of_an_incident_larger_than_the_sample(runtime: Runtime) -> None:
    total = ALERTS_SCANNED + 200
    alerts = [am_alert("Saturated" if n % 10 == 0 else "CrashLooping", pod=f"web-{n:05d}") for n in range(total)]
    with serve_in_thread(runtime.asgi_app()) as url, httpx.Client(base_url=url, timeout=30) as http:
        response = http.post("/alerts/alertmanager", json=am_group(alerts), headers=auth())
        assert response.status_code == 202, response.text
    while runtime.worker.run_once():
        pass
    with runtime.database.read() as session:
        [incident] = session.query(Incident).all()
        card = load_card(session, incident)
        late = alert_counts(session, incident.id, offset=ALERTS_SCANNED, limit=150)  # what a reply would count
    assert (card.alert_count, len(card.alerts)) == (total, ALERTS_SCANNED)
    assert late == {("CrashLooping", "firing"): 135, ("Saturated", "firing"): 15}
    listing = alert_list(card.alerts, card.alert_count, card.alert_counts).split("\n")
    assert listing == [
        f":fire: *{total // 10}{TIMES}Saturated* Saturated on checkout"
        " — web-00000, -00010, -00020, -00030, -00040 and more",
        f":fire: *{total - total // 10}{TIMES}CrashLooping* CrashLooping on checkout"
        " — web-00001, -00002, -00003, -00004, -00005 and more",
    ]


# --- whole messages ----------------------------------------------------------------------------------


def test_every_field_of_an_incident_post_is_inert_and_within_limits() -> None:
    hits = tuple(
        RunbookHit(doc=HOSTILE_TEXT, title=HOSTILE_TEXT * 3, score=0.9, section=HOSTILE_TEXT, url=url)
        for url in (*HOSTILE_URLS, GOOD_URLS[0])
    )
    similar = tuple(
        SimilarIncident(n, HOSTILE_TEXT * 5, 0.8, HOSTILE_TEXT, datetime(2026, 1, 1, tzinfo=UTC), HOSTILE_TEXT * 50)
        for n in range(30)
    )
    alerts = tuple(
        AlertLine(HOSTILE_TEXT, "firing", HOSTILE_TEXT * 30, url, {"alertname": "x", "pod": f"{HOSTILE_TEXT}{n}"})
        for n, url in enumerate((*HOSTILE_URLS, *GOOD_URLS))
    )
    hostile = card(
        title=HOSTILE_TEXT * 40,
        severity=HOSTILE_TEXT,
        status=HOSTILE_TEXT,
        service=HOSTILE_TEXT * 40,
        source=HOSTILE_TEXT,
        commander=HOSTILE_TEXT * 40,
        alerts=alerts,
        alert_count=len(alerts),
        incident_channel="C0AB|<!channel>",
        suggestions=Suggestions(runbooks=hits, runbook_confidence=0.9, similar=similar),
    )
    message = incident_message(hostile)
    assert_within_limits(message)
    for text in mrkdwn_texts(message):
        assert_inert(text, allowed_urls={GOOD_URLS[0]})
    assert "&lt;!channel&gt;" in message["blocks"][1]["fields"][0]["text"]  # the service, shown escaped


def test_source_links_only_for_safe_urls_and_shown_as_text_otherwise() -> None:
    alerts = (
        AlertLine("A", "firing", "a", "javascript:alert(1)"),
        AlertLine("B", "firing", "b", GOOD_URLS[0]),
    )
    context = incident_message(card(alerts=alerts, alert_count=2))["blocks"][-2]["elements"][0]["text"]
    assert "source 1 (javascript:alert(1))" in context
    assert f"<{GOOD_URLS[0].replace('&', '&amp;')}|source 2>" in context


def test_runbook_and_similar_lines_are_inert() -> None:
    hit = RunbookHit(doc="disk/full", title="Disk <!here>", score=0.5, section="Fix <@U1>", url="http://a|b")
    assert runbook_line(hit) == "• Disk &lt;!here&gt; (http://a|b) (`disk/full`) § Fix &lt;@U1&gt; — 0.50"
    linked = RunbookHit(doc="d", title="Disk", score=0.5, section=None, url="https://wiki.example.com/disk")
    assert runbook_line(linked).startswith("• <https://wiki.example.com/disk|Disk> (`d`)")
    item = SimilarIncident(3, "<!channel>", 0.7, "resolved", datetime(2026, 1, 1, tzinfo=UTC), "rebooted <@U9>")
    assert_inert(similar_line(item))


def test_thread_text_is_escaped_and_within_the_limit() -> None:
    text = thread_text("<!channel> " * 1000)
    assert len(text) <= MAX_SECTION_CHARS and "<" not in text
