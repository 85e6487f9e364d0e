"""The top of an incident post: an investigation summary kept current in place (pure builders, like ``blocks``).

*What's going on*: the services and alerts involved, since when, what joined lately. *Likely cause*: the ranking's
top candidate with its confidence and evidence, 👍/👎 buttons, the next two on one line each. *What to do next*: the
best runbook steps and the remediation actions that match. Every outside string goes through
:mod:`bot.slack.mrkdwn`; each section stays within Slack's limits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.knowledge.suggestions import RunbookHit
from bot.rootcause.ranking import SHOWN, StoredRanking
from bot.slack.mrkdwn import date, escape, join_within, link, plain
from knowledge.rootcause.model import CauseCandidate

HELPFUL_ACTION = "cause_helpful"  # 👍 on the likely cause
WRONG_ACTION = "cause_wrong"  # 👎
CONFIRM_ACTION = "cause_confirm"  # the select of candidates after a resolve
CAUSE_QUESTION = "cause_question"  # a thread reply's payload key: it asks for the cause with the select
CAUSE_VALUE_PREFIX = "cause:"
CONFIRM_VALUE_PREFIX = "confirm:"
MAX_NAME = 200  # a candidate's name, as stored
SECTION_BUDGET = 2900  # a section's text (Slack allows 3,000)
NAMES_SHOWN = 6  # services and alert names listed in "What's going on"
EVIDENCE_SHOWN = 3
RUNBOOKS_SHOWN = 2
ACTIONS_SHOWN = 3
MAX_OPTION_TEXT = 75
SELECT_OPTIONS = 10  # candidates offered in the select after a resolve
_SOURCE_MARK = {"topology": ":link:", "change": ":rocket:", "history": ":books:"}


@dataclass(frozen=True, slots=True)
class ActionHint:
    """A remediation action that matches the incident (from the action catalogue), as the summary names it."""

    name: str
    description: str
    risk: str


@dataclass(frozen=True, slots=True)
class Situation:
    """What's going on: components (services and nodes) and alert names with how many alerts each, most first;
    since when; and the alerts that joined lately (``"NodeNotReady on k8s-worker-us06"``) with when."""

    components: tuple[tuple[str, int], ...]
    alerts: tuple[tuple[str, int], ...]
    alert_count: int
    since: datetime
    joined: tuple[str, ...] = ()
    joined_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Summary:
    incident_id: int
    situation: Situation
    ranking: StoredRanking | None  # None: the ranker has not seen the incident yet
    runbooks: tuple[RunbookHit, ...] = ()
    actions: tuple[ActionHint, ...] = ()  # filled where an action catalogue is configured
    votable: bool = True  # offer 👍/👎 (only while the incident is open and not merged)


def summary_blocks(summary: Summary) -> list[dict[str, Any]]:
    """The summary's blocks: three sections, the 👍/👎 buttons under the likely cause, and a divider."""
    blocks = [_section(f"*What's going on*\n{situation_text(summary.situation)}")]
    blocks.append(_section(f"*Likely cause*\n{cause_text(summary.ranking)}"))
    top = summary.ranking.top if summary.ranking is not None else None
    if top is not None and summary.votable:
        blocks.append(_votes(summary.incident_id, top))
    blocks.append(_section(f"*What to do next*\n{next_steps_text(summary)}"))
    blocks.append({"type": "divider"})
    return blocks


def situation_text(situation: Situation) -> str:
    since = date(situation.since, "{date_short_pretty} {time}", "%Y-%m-%d %H:%M UTC")
    noun = "alert" if situation.alert_count == 1 else "alerts"
    lines = [f"{situation.alert_count} {noun} since {since}"]
    if situation.components:
        lines[0] += " on " + _counted(situation.components)
    if situation.alerts:
        lines.append("Alerts: " + _counted(situation.alerts))
    if situation.joined and situation.joined_at is not None:
        at = date(situation.joined_at, "{time}", "%H:%M UTC")
        joined = ", ".join(escape(name, 150, one_line=True) for name in situation.joined[:NAMES_SHOWN])
        more = f" and {len(situation.joined) - NAMES_SHOWN} more" if len(situation.joined) > NAMES_SHOWN else ""
        lines.append(f"Joined lately (last at {at}): {joined}{more}")
    return join_within(lines, SECTION_BUDGET)


def cause_text(ranking: StoredRanking | None) -> str:
    """The top candidate with its confidence and evidence, the next two on one line each; what people confirmed."""
    lines: list[str] = []
    if ranking is not None and ranking.confirmed is not None:
        lines.append(
            f":white_check_mark: Confirmed by a person: *{escape(ranking.confirmed, MAX_NAME, one_line=True)}*"
        )
    top = ranking.top if ranking is not None else None
    if top is None:
        if ranking is None or ranking.stale:
            lines.append("Working out the likely cause…")
        elif ranking.confirmed is None:
            lines.append("No likely cause yet: no topology, change or history evidence points anywhere.")
        return "\n".join(lines)
    assert ranking is not None
    lines.append(f"{candidate_name(top)} — {top.confidence:.0%}")
    lines += [evidence_line(e.source, e.text) for e in top.evidence[:EVIDENCE_SHOWN]]
    for rank, candidate in enumerate(ranking.candidates[1:SHOWN], start=2):
        why = f": {escape(candidate.evidence[0].text, 200, one_line=True)}" if candidate.evidence else ""
        lines.append(f"{rank}. {candidate_name(candidate, bold=False)} — {candidate.confidence:.0%}{why}")
    return join_within(lines, SECTION_BUDGET)


def candidate_name(candidate: CauseCandidate, *, bold: bool = True) -> str:
    """``*checkout* (service)``: the name escaped, its kind after it."""
    name = escape(candidate.name, MAX_NAME, one_line=True)
    return f"{f'*{name}*' if bold else name} ({escape(candidate.kind, 20, one_line=True)})"


def evidence_line(source: str, text: str) -> str:
    mark = _SOURCE_MARK.get(source, ":small_blue_diamond:")
    return f"{mark} {escape(text, 400, one_line=True)} _({escape(source, 20, one_line=True)})_"


def next_steps_text(summary: Summary) -> str:
    lines = [f"{n}. {_runbook_step(hit)}" for n, hit in enumerate(summary.runbooks[:RUNBOOKS_SHOWN], start=1)]
    if summary.actions:
        listed = ", ".join(
            f"`{escape(a.name, 80, one_line=True)}` ({escape(a.risk, 20, one_line=True)} risk):"
            f" {escape(a.description, 150, one_line=True)}"
            for a in summary.actions[:ACTIONS_SHOWN]
        )
        lines.append(f"Actions that apply: {listed}")
    if not lines:
        lines.append("No runbook fits yet.")
    top = summary.ranking.top if summary.ranking is not None else None
    if top is not None and any(e.source == "change" for e in top.evidence):
        lines.append(f"Check the recent change to {escape(top.name, MAX_NAME, one_line=True)} first (see above).")
    lines.append(f"When it is over: `/incident resolve {summary.incident_id} cause=NAME` records what caused it.")
    return join_within(lines, SECTION_BUDGET)


def _runbook_step(hit: RunbookHit) -> str:
    title = link(hit.url, hit.title[:150]) if hit.url else f"*{escape(hit.title, 150, one_line=True)}*"
    section = f" § {escape(hit.section, 80, one_line=True)}" if hit.section else ""
    return f"Follow {title}{section} (`{escape(hit.doc, 200, one_line=True)}`, {hit.score:.2f})"


def _counted(items: Sequence[tuple[str, int]]) -> str:
    shown = [
        escape(name, 100, one_line=True) + (f" \N{MULTIPLICATION SIGN}{count}" if count > 1 else "")
        for name, count in items[:NAMES_SHOWN]
    ]
    more = f" and {len(items) - NAMES_SHOWN} more" if len(items) > NAMES_SHOWN else ""
    return ", ".join(shown) + more


# -- buttons and the select -----------------------------------------------------------------------------------------


def cause_value(incident_id: int, name: str) -> str:
    return f"{CAUSE_VALUE_PREFIX}{incident_id}:{name[:MAX_NAME]}"


def parse_cause_value(value: str) -> tuple[int, str] | None:
    """The incident and the candidate in a 👍/👎 button's value, or None if it is not one of ours."""
    prefix, _, rest = value.partition(":")
    number, _, name = rest.partition(":")
    if f"{prefix}:" != CAUSE_VALUE_PREFIX or not number.isdigit() or len(number) > 12:
        return None
    if not name or len(name) > MAX_NAME:
        return None
    return int(number), name


def confirm_value(incident_id: int, rank: int) -> str:
    return f"{CONFIRM_VALUE_PREFIX}{incident_id}:{rank}"


def parse_confirm_value(value: str) -> tuple[int, int] | None:
    """The incident and the candidate's rank (1: the top) in an option of the cause select, or None."""
    prefix, _, rest = value.partition(":")
    number, _, rank = rest.partition(":")
    if f"{prefix}:" != CONFIRM_VALUE_PREFIX or not all(n.isdigit() and 0 < len(n) <= 12 for n in (number, rank)):
        return None
    return int(number), int(rank)


def cause_question(text: str, incident_id: int, candidates: Sequence[CauseCandidate]) -> dict[str, Any]:
    """The thread reply after a resolve (``text`` is mrkdwn already): a select of the ranking's candidates that
    records the confirmed cause."""
    options = [
        {
            "text": {"type": "plain_text", "text": plain(f"{c.name} ({c.confidence:.0%})", MAX_OPTION_TEXT)},
            "value": confirm_value(incident_id, rank),
        }
        for rank, c in enumerate(candidates[:SELECT_OPTIONS], start=1)
    ]
    message: dict[str, Any] = {"text": text, "blocks": [_section(text)]}
    if options:
        select = {
            "type": "static_select",
            "action_id": CONFIRM_ACTION,
            "placeholder": {"type": "plain_text", "text": "Pick the cause"},
            "options": options,
        }
        message["blocks"].append({"type": "actions", "block_id": f"cause-confirm-{incident_id}", "elements": [select]})
    return message


def _votes(incident_id: int, top: CauseCandidate) -> dict[str, Any]:
    value = cause_value(incident_id, top.name)
    buttons = [
        {
            "type": "button",
            "text": {"type": "plain_text", "text": ":+1: Looks right", "emoji": True},
            "action_id": HELPFUL_ACTION,
            "value": value,
        },
        {
            "type": "button",
            "text": {"type": "plain_text", "text": ":-1: Not it", "emoji": True},
            "action_id": WRONG_ACTION,
            "value": value,
        },
    ]
    return {"type": "actions", "block_id": f"cause-{incident_id}", "elements": buttons}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text, "verbatim": True}}
