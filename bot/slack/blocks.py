"""Block Kit builders: pure functions from incident data to Slack message payloads.

They never mention anyone (no ``<@U…>``): the person who acted is named, not pinged. Slack's limits are
respected here, once: at most 50 blocks, 3,000 characters per section text, 150 per header.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.knowledge.suggestions import RunbookHit, SimilarIncident, Suggestions

ACK_ACTION = "incident_acknowledge"
RESOLVE_ACTION = "incident_resolve"
BUTTON_VALUE_PREFIX = "incident:"

MAX_SECTION_CHARS = 3000
MAX_HEADER_CHARS = 150
ALERTS_SHOWN = 10

_SEVERITY_MARK = {
    "critical": ":red_circle:",
    "error": ":large_orange_circle:",
    "warning": ":large_yellow_circle:",
    "info": ":large_blue_circle:",
}
_STATUS_MARK = {
    "triggered": ":rotating_light: Triggered",
    "acknowledged": ":eyes: Acknowledged",
    "resolved": ":white_check_mark: Resolved",
}


@dataclass(frozen=True, slots=True)
class AlertLine:
    name: str
    status: str
    summary: str
    url: str | None


@dataclass(frozen=True, slots=True)
class IncidentCard:
    """What an incident post shows."""

    id: int
    title: str
    severity: str
    status: str
    service: str | None
    source: str
    opened_at: datetime
    alert_count: int
    commander: str | None
    alerts: tuple[AlertLine, ...]  # the first few, in arrival order
    incident_channel: str | None = None
    suggestions: Suggestions | None = None  # runbooks and similar incidents, once found
    suggestions_pending: bool = False  # search is on: say they are coming (they arrive as an edit)


def button_value(incident_id: int) -> str:
    return f"{BUTTON_VALUE_PREFIX}{incident_id}"


def parse_button_value(value: str) -> int | None:
    """The incident id in a button value, or None if it is not one of ours."""
    prefix, _, number = value.partition(":")
    if f"{prefix}:" != BUTTON_VALUE_PREFIX or not number.isdigit() or len(number) > 12:
        return None
    return int(number)


def incident_message(card: IncidentCard) -> dict[str, Any]:
    """``text`` (notification fallback) and ``blocks`` of an incident's main message."""
    mark = _SEVERITY_MARK.get(card.severity, ":white_circle:")
    header = _clip(f"[{card.severity.upper()}] {card.title}", MAX_HEADER_CHARS)
    fields = [
        f"*Service*\n{escape(card.service or '—')}",
        f"*Status*\n{_STATUS_MARK.get(card.status, card.status)}",
        f"*Started*\n<!date^{int(card.opened_at.timestamp())}^{{date_short_pretty}} {{time}}|"
        f"{card.opened_at:%Y-%m-%d %H:%M} UTC>",
        f"*Alerts*\n{card.alert_count}",
        f"*Commander*\n{escape(card.commander or '—')}",
        f"*Incident*\n#{card.id}",
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": header, "emoji": True}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": _clip(f, 2000)} for f in fields]},
    ]
    if card.alerts:
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": alert_list(card.alerts, card.alert_count)}}
        )
    if card.suggestions is not None:
        blocks += knowledge_blocks(card.suggestions)
    context = [f"{mark} {card.source}"]
    links = [a.url for a in card.alerts if a.url][:3]
    context += [f"<{url}|source {n}>" for n, url in enumerate(dict.fromkeys(links), start=1)]
    if card.incident_channel:
        context.append(f"channel <#{card.incident_channel}>")
    if card.suggestions is None and card.suggestions_pending:
        context.append("looking for runbooks and similar past incidents…")
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _clip(" · ".join(context), 3000)}]})
    if card.status != "resolved":
        buttons = []
        if card.status == "triggered":
            buttons.append(_button("Acknowledge", ACK_ACTION, card.id, style="primary"))
        buttons.append(_button("Resolve", RESOLVE_ACTION, card.id))
        blocks.append({"type": "actions", "block_id": f"incident-{card.id}", "elements": buttons})
    text = f"{mark} [{card.severity.upper()}] {escape(card.title)} — {card.status} (incident #{card.id})"
    return {"text": _clip(text, 3000), "blocks": blocks}


def knowledge_blocks(suggestions: Suggestions) -> list[dict[str, Any]]:
    """The "Runbooks" and "Similar past incidents" sections of an incident post; each says so when none fits."""
    if suggestions.failed:
        note = "Search for runbooks and similar past incidents failed (the bot's log says why)."
        return [{"type": "section", "text": {"type": "mrkdwn", "text": note}}]
    if suggestions.runbooks:
        runbooks = "\n".join(runbook_line(hit) for hit in suggestions.runbooks)
    else:
        runbooks = f"No runbook fits this alert (best match {suggestions.runbook_confidence:.2f})."
    if suggestions.similar:
        similar = "\n".join(similar_line(item) for item in suggestions.similar)
    else:
        similar = "No similar past incidents."
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": _clip(f"*Runbooks*\n{runbooks}", MAX_SECTION_CHARS)}},
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": _clip(f"*Similar past incidents*\n{similar}", MAX_SECTION_CHARS)},
        },
    ]


def runbook_line(hit: RunbookHit) -> str:
    """``• Title (doc) § Section — 0.82``, the title linked to the runbook's source when it has one."""
    title = escape(_clip(hit.title, 150))
    name = f"<{hit.url}|{title}>" if hit.url and _safe_url(hit.url) else f"*{title}*"
    section = f" § {escape(_clip(hit.section, 80))}" if hit.section else ""
    return f"• {name} (`{escape(hit.doc)}`){section} — {hit.score:.2f}"


def similar_line(item: SimilarIncident) -> str:
    """``• #12 Title — 0.91, opened <date> — resolution``."""
    opened = f"<!date^{int(item.opened_at.timestamp())}^{{date_short_pretty}}|{item.opened_at:%Y-%m-%d}>"
    return (
        f"• *#{item.id}* {escape(_clip(item.title, 120))} — {item.score:.2f}, {item.status}, opened {opened}"
        f" — {escape(_clip(item.resolution, 300))}"
    )


def _safe_url(url: str) -> bool:
    return url.startswith(("https://", "http://")) and not any(c in url for c in "<>| \n")


def alert_list(alerts: tuple[AlertLine, ...] | list[AlertLine], total: int) -> str:
    """Up to :data:`ALERTS_SHOWN` alerts, one per line, then "+K more"; within Slack's section limit."""
    lines: list[str] = []
    used = 0
    for alert in alerts[:ALERTS_SHOWN]:
        mark = ":white_check_mark:" if alert.status == "resolved" else ":fire:"
        line = f"{mark} *{escape(alert.name)}* {escape(_clip(alert.summary, 200))}"
        if used + len(line) + 1 > MAX_SECTION_CHARS - 40:
            break
        lines.append(line)
        used += len(line) + 1
    if total > len(lines):
        lines.append(f"+{total - len(lines)} more")
    return "\n".join(lines)


def thread_text(text: str) -> str:
    return _clip(escape(text), MAX_SECTION_CHARS)


def escape(text: str) -> str:
    """Slack's mrkdwn escaping: untrusted text can neither mention nor link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _button(label: str, action_id: str, incident_id: int, style: str | None = None) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "text": {"type": "plain_text", "text": label},
        "action_id": action_id,
        "value": button_value(incident_id),
    }
    if style:
        button["style"] = style
    return button


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
