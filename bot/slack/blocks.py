"""Block Kit builders: pure functions from incident data to Slack message payloads.

They never mention anyone (no ``<@U…>``): the person who acted is named, not pinged. Every string from
outside reaches mrkdwn through :mod:`bot.slack.mrkdwn` (escaped text, links only to checked http(s) URLs).
Slack's limits are respected here, once: at most 50 blocks, 3,000 characters per section text, 2,000 per
field, 150 per header, 4,000 for a message's ``text`` (``chat.update``'s limit).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.knowledge.suggestions import RunbookHit, SimilarIncident, Suggestions
from bot.slack.alert_groups import AlertGroup, AlertLine, compact_list, group_alerts
from bot.slack.mrkdwn import channel, date, escape, join_within, link, plain
from bot.slack.remediation_blocks import PostActions, action_blocks
from bot.slack.summary_blocks import Summary, summary_blocks
from knowledge.classify.categories import CATEGORIES, CATEGORY_KEYS, UNCLASSIFIED, category

ACK_ACTION = "incident_acknowledge"
RESOLVE_ACTION = "incident_resolve"
NOT_RELATED_ACTION = "alerts_not_related"
CLASSIFY_ACTION = "incident_classify"  # the category menu of a post
REPOST_ACTION = "incident_repost"  # "Re-post" in the route a person's category chose
BUTTON_VALUE_PREFIX = "incident:"
JOINED_VALUE_PREFIX = "joined:"
CATEGORY_VALUE_PREFIX = "category:"
REPOST_VALUE_PREFIX = "repost:"

MAX_SECTION_CHARS = 3000
MAX_FIELD_CHARS = 2000
MAX_CONTEXT_CHARS = 3000
MAX_HEADER_CHARS = 150
MAX_BUTTON_TEXT = 75
MAX_OPTION_CHARS = 75
MAX_TEXT_CHARS = 4000  # chat.update refuses longer text; every text built here stays below it
ALERTS_SHOWN = 10  # alert lines (groups) in a post or reply
SOURCE_LINKS = 3
TIMES = " \N{MULTIPLICATION SIGN} "  # "3 x KubePodCrashLooping", with the sign

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
    # How many alerts have each (name, status), when ``alerts`` is only the first of them; else None.
    alert_counts: Mapping[tuple[str, str], int] | None = None
    merged_into: int | None = None  # merged into that incident: the post says so and offers no buttons
    category: str | None = None  # None: unclassified (the post offers the category menu)
    category_source: str | None = None  # "model" | "person"; None: the model has not seen its latest alerts
    category_confidence: float | None = None  # the model's
    summary: Summary | None = None  # the investigation summary at the top (None: none, e.g. declared by hand)
    actions: PostActions | None = None  # remediation actions offered ("Run…"); None: none match, or remediation off


def button_value(incident_id: int) -> str:
    return f"{BUTTON_VALUE_PREFIX}{incident_id}"


def parse_button_value(value: str) -> int | None:
    """The incident id in a button value, or None if it is not one of ours."""
    prefix, _, number = value.partition(":")
    if f"{prefix}:" != BUTTON_VALUE_PREFIX or not number.isdigit() or len(number) > 12:
        return None
    return int(number)


def joined_value(incident_id: int, alert_ids: range) -> str:
    """The "Not related" button's value: the incident and the alert ids of its "alerts joined" reply."""
    return f"{JOINED_VALUE_PREFIX}{incident_id}:{alert_ids.start}-{alert_ids.stop - 1}"


def parse_joined_value(value: str) -> tuple[int, range] | None:
    """The incident and alert ids in a "Not related" button's value, or None if it is not one of ours."""
    prefix, _, rest = value.partition(":")
    incident, _, span = rest.partition(":")
    first, _, last = span.partition("-")
    numbers = (incident, first, last)
    if f"{prefix}:" != JOINED_VALUE_PREFIX or not all(n.isdigit() and len(n) <= 12 for n in numbers):
        return None
    return int(incident), range(int(first), int(last) + 1)


def joined_message(text: str, incident_id: int, alert_ids: range | None) -> dict[str, Any]:
    """An "alerts joined" thread reply (``text`` is mrkdwn already) with its "Not related" button, which
    splits ``alert_ids`` out of the incident."""
    message: dict[str, Any] = {"text": text}
    if alert_ids is None:
        return message
    button = {
        "type": "button",
        "text": {"type": "plain_text", "text": "Not related"},
        "action_id": NOT_RELATED_ACTION,
        "value": joined_value(incident_id, alert_ids),
    }
    sections: list[str] = []
    for line in text.split("\n"):  # each line fits a section; lines are grouped within its limit
        if sections and len(sections[-1]) + 1 + len(line) <= MAX_SECTION_CHARS:
            sections[-1] += "\n" + line
        else:
            sections.append(line)
    message["blocks"] = [
        *({"type": "section", "text": _mrkdwn(section)} for section in sections),
        {"type": "actions", "block_id": f"joined-{incident_id}-{alert_ids.start}", "elements": [button]},
    ]
    return message


def incident_message(card: IncidentCard) -> dict[str, Any]:
    """``text`` (notification fallback) and ``blocks`` of an incident's main message."""
    mark = _SEVERITY_MARK.get(card.severity, ":white_circle:")
    severity = plain(card.severity.upper(), 20)
    header = plain(f"[{severity}] {card.title}", MAX_HEADER_CHARS)
    status = _STATUS_MARK.get(card.status) or escape(card.status, 50)
    if card.merged_into is not None:
        status = f":twisted_rightwards_arrows: Merged into #{card.merged_into}"
    fields = [
        ("Service", escape(card.service or "—", 500, one_line=True)),
        ("Status", status),
        ("Started", date(card.opened_at, "{date_short_pretty} {time}", "%Y-%m-%d %H:%M UTC")),
        ("Alerts", str(card.alert_count)),
        ("Commander", escape(card.commander or "—", 500, one_line=True)),
        ("Incident", f"#{card.id}"),
        ("Category", _category_text(card)),
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": header, "emoji": True}},
        *(summary_blocks(card.summary) if card.summary is not None else ()),
        {"type": "section", "fields": [_mrkdwn(f"*{name}*\n{value}") for name, value in fields]},
    ]
    if card.alerts:
        blocks.append(
            {"type": "section", "text": _mrkdwn(alert_list(card.alerts, card.alert_count, card.alert_counts))}
        )
    if card.suggestions is not None:
        blocks += knowledge_blocks(card.suggestions)
    context = [f"{mark} {escape(card.source, 100, one_line=True)}"]
    urls = dict.fromkeys(alert.url for alert in card.alerts if alert.url)
    context += [link(url, f"source {n}") for n, url in enumerate(list(urls)[:SOURCE_LINKS], start=1)]
    if card.incident_channel:
        context.append(f"channel {channel(card.incident_channel)}")
    if card.suggestions is None and card.suggestions_pending:
        context.append("looking for runbooks and similar past incidents…")
    context_text = join_within(context, MAX_CONTEXT_CHARS, " · ")
    blocks.append({"type": "context", "elements": [_mrkdwn(context_text)]})
    if card.status != "resolved" and card.merged_into is None:
        buttons = []
        if card.status == "triggered":
            buttons.append(_button("Acknowledge", ACK_ACTION, card.id, style="primary"))
        buttons.append(_button("Resolve", RESOLVE_ACTION, card.id))
        elements = [*buttons, _category_menu(card)]
        blocks.append({"type": "actions", "block_id": f"incident-{card.id}", "elements": elements})
        if card.actions is not None:
            blocks += action_blocks(card.id, card.actions, lines=card.summary is None)
    title = escape(card.title, 1000, one_line=True)
    state = escape(card.status, 50) if card.merged_into is None else f"merged into #{card.merged_into}"
    text = f"{mark} [{escape(severity)}] {title} — {state} (incident #{card.id})"
    # parse=none: chat.update would otherwise parse the text the way a client does ("@channel" pings).
    return {"text": text, "blocks": blocks, "parse": "none"}


def category_value(incident_id: int, key: str) -> str:
    return f"{CATEGORY_VALUE_PREFIX}{incident_id}:{key}"


def parse_category_value(value: str) -> tuple[int, str] | None:
    """The incident and the category key in a category menu option's value, or None if it is not one of ours."""
    prefix, _, rest = value.partition(":")
    number, _, key = rest.partition(":")
    if f"{prefix}:" != CATEGORY_VALUE_PREFIX or not number.isdigit() or len(number) > 12 or key not in CATEGORY_KEYS:
        return None
    return int(number), key


def repost_value(incident_id: int, channel_name: str) -> str:
    return f"{REPOST_VALUE_PREFIX}{incident_id}:{channel_name}"


def parse_repost_value(value: str) -> tuple[int, str] | None:
    """The incident and the route's channel in a "Re-post" button's value, or None if it is not one of ours."""
    prefix, _, rest = value.partition(":")
    number, _, channel_name = rest.partition(":")
    if f"{prefix}:" != REPOST_VALUE_PREFIX or not number.isdigit() or len(number) > 12 or not channel_name:
        return None
    return int(number), channel_name


def route_note(text: str, incident_id: int, route: str) -> dict[str, Any]:
    """A thread reply (``text`` is mrkdwn already) saying that the incident's category now routes it to ``route``
    (a channel name), with a button that re-posts it there."""
    text = f"{text}\nWith this category it would now go to {channel(route)}; nothing already posted moved."
    button = {
        "type": "button",
        "text": {"type": "plain_text", "text": plain(f"Re-post in #{route}", MAX_BUTTON_TEXT)},
        "action_id": REPOST_ACTION,
        "value": repost_value(incident_id, route),
    }
    return {
        "text": text,
        "blocks": [
            {"type": "section", "text": _mrkdwn(text)},
            {"type": "actions", "block_id": f"repost-{incident_id}", "elements": [button]},
        ],
    }


def _category_text(card: IncidentCard) -> str:
    if card.category is None:
        return f"{UNCLASSIFIED}: pick one in the menu"
    title = escape(category(card.category).title)
    if card.category_source == "person":
        return f"{title} (set by a person)"
    if card.category_confidence is not None:
        return f"{title} ({card.category_confidence:.2f})"
    return title


def _category_menu(card: IncidentCard) -> dict[str, Any]:
    """The categories' menu: an unclassified incident asks for a pick, a category shows as picked (to correct)."""
    options = [
        {
            "text": {"type": "plain_text", "text": plain(c.title, MAX_OPTION_CHARS)},
            "value": category_value(card.id, c.key),
        }
        for c in CATEGORIES
    ]
    menu: dict[str, Any] = {
        "type": "static_select",
        "action_id": CLASSIFY_ACTION,
        "placeholder": {"type": "plain_text", "text": "Pick a category"},
        "options": options,
    }
    if card.category is not None:
        menu["initial_option"] = next(o for o in options if o["value"] == category_value(card.id, card.category))
    return menu


def knowledge_blocks(suggestions: Suggestions) -> list[dict[str, Any]]:
    """The "Runbooks" and "Similar past incidents" sections of an incident post; each says so when none fits."""
    if suggestions.failed:
        note = "Search for runbooks and similar past incidents failed (the bot's log says why)."
        return [{"type": "section", "text": _mrkdwn(note)}]
    budget = MAX_SECTION_CHARS - 30  # room for the section's title
    if suggestions.runbooks:
        runbooks = join_within((runbook_line(hit) for hit in suggestions.runbooks), budget)
    else:
        runbooks = f"No runbook fits this alert (best match {suggestions.runbook_confidence:.2f})."
    if suggestions.similar:
        similar = join_within((similar_line(item) for item in suggestions.similar), budget)
    else:
        similar = "No similar past incidents."
    return [
        {"type": "section", "text": _mrkdwn(f"*Runbooks*\n{runbooks}")},
        {"type": "section", "text": _mrkdwn(f"*Similar past incidents*\n{similar}")},
    ]


def runbook_line(hit: RunbookHit) -> str:
    """``• Title (doc) § Section — 0.82``, the title linked to the runbook's source when that is a safe URL."""
    title = link(hit.url, hit.title[:150]) if hit.url else f"*{escape(hit.title, 150, one_line=True)}*"
    section = f" § {escape(hit.section, 80, one_line=True)}" if hit.section else ""
    return f"• {title} (`{escape(hit.doc, 200, one_line=True)}`){section} — {hit.score:.2f}"


def similar_line(item: SimilarIncident) -> str:
    """``• #12 Title — 0.91, opened <date> — resolution``."""
    opened = date(item.opened_at, "{date_short_pretty}", "%Y-%m-%d")
    return (
        f"• *#{item.id}* {escape(item.title, 120, one_line=True)} — {item.score:.2f},"
        f" {escape(item.status, 30, one_line=True)}, opened {opened} — {escape(item.resolution, 300, one_line=True)}"
    )


def alert_list(alerts: Sequence[AlertLine], total: int, counts: Mapping[tuple[str, str], int] | None = None) -> str:
    """The first ``total`` of ``alerts`` grouped by name and status (:mod:`bot.slack.alert_groups`), up to
    :data:`ALERTS_SHOWN` lines, then "+K more" for the alerts no line counts; within Slack's section limit.
    ``counts``: how many alerts have each (name, status) when ``alerts`` is only the first of ``total``."""
    lines: list[str] = []
    counted = 0
    used = 0
    for group in group_alerts(alerts[:total])[:ALERTS_SHOWN]:
        count = max(group.count, (counts or {}).get((group.name, group.status), 0))
        line = alert_line(group, count)
        if used + len(line) + 1 > MAX_SECTION_CHARS - 40:
            break
        lines.append(line)
        used += len(line) + 1
        counted += count
    if total > counted:
        lines.append(f"+{total - counted} more")
    return "\n".join(lines)


def alert_line(group: AlertGroup, count: int | None = None) -> str:
    """``:fire: *3 x KubePodCrashLooping* summary — shop/cart-…-0, -1, -2`` (one alert: no count, no list).
    ``count``: the group's alerts in all, when the group is made from a sample of them."""
    count = count or group.count
    mark = ":white_check_mark:" if group.status == "resolved" else ":fire:"
    name = escape(group.name, 200, one_line=True)
    line = f"{mark} *{name}*" if count == 1 else f"{mark} *{count}{TIMES}{name}*"
    if group.summary:
        line += f" {escape(group.summary, 300, one_line=True)}"
    if group.differences:
        differences = compact_list(group.differences, partial=count > group.count)
        line += f" — {escape(differences, 500, one_line=True)}"
    return line


def thread_text(text: str) -> str:
    """A thread reply's text from outside text (escaped, within a section's limit)."""
    return escape(text, MAX_SECTION_CHARS)


def _mrkdwn(text: str) -> dict[str, Any]:
    """A mrkdwn text object whose plain text Slack leaves alone (verbatim: no automatic links or mentions); the
    links and date tokens built by :mod:`bot.slack.mrkdwn` still work."""
    return {"type": "mrkdwn", "text": text, "verbatim": True}


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
