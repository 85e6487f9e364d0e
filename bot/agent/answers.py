"""What the agent answers, as Slack blocks. Every outside string (the question, incident and document text,
links) goes through :mod:`bot.slack.mrkdwn`; nothing from outside is ever a format string."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from bot.agent.status import IncidentView
from bot.slack import mrkdwn
from knowledge.qa import Passage

Kind = Literal["status", "howto", "abstain"]

NOTIFY_ACTION = "agent_notify"
REPORT_ACTION = "agent_report_problem"  # handled by the hand-over (bot.agent.handover)
ASK_HUMAN_ACTION = "agent_ask_human"
HANDOVER_BLOCK = "agent_handover"
LOOKING = "Looking… :mag:"
SECTION_LIMIT = 2900  # Slack's section text limit is 3000
QUOTE_LIMIT = 700
WHEN = "{date_short_pretty} at {time}"
WHEN_FALLBACK = "%Y-%m-%d %H:%M UTC"
DONT_KNOW = "I don't know the answer to that, and I'd rather not guess."
HANDOVER_HINT = "You can report a problem, or ask a person:"


@dataclass(frozen=True, slots=True)
class Asker:
    """Who asks: a responder (in ``INCIBOT_RESPONDERS``) may see internal documents and every incident."""

    user_id: str
    responder: bool = False


@dataclass(frozen=True)
class Answer:
    """One answer: ``text`` (mrkdwn, the message's fallback), ``blocks``, ``sources`` (what it was drawn from:
    ``{"incident": id}`` or ``{"doc", "title", "link", "score"}``), ``plain`` (a follow-up's context)."""

    kind: Kind
    text: str
    blocks: list[dict[str, Any]]
    sources: list[dict[str, Any]] = field(default_factory=list)
    plain: str = ""
    confidence: float = 0.0


def when(moment: datetime) -> str:
    return mrkdwn.date(moment, WHEN, WHEN_FALLBACK)


def section(text: str, accessory: dict[str, Any] | None = None) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "section", "text": {"type": "mrkdwn", "text": mrkdwn.clip(text, SECTION_LIMIT)}}
    return block | ({"accessory": accessory} if accessory else {})


def button(label: str, action_id: str, value: str) -> dict[str, Any]:
    return {"type": "button", "text": {"type": "plain_text", "text": label}, "action_id": action_id, "value": value}


def incident_line(incident: IncidentView) -> str:
    """What the asker may see of an open or resolved incident, in one short paragraph."""
    title = mrkdwn.escape(incident.title, 200, one_line=True)
    facts = [mrkdwn.escape(incident.service, 100, one_line=True)] if incident.service else []
    if incident.severity:
        facts.append(mrkdwn.escape(incident.severity, 20, one_line=True))
    if incident.category:
        facts.append(mrkdwn.escape(incident.category.replace("_", " "), 40, one_line=True))
    facts.append(mrkdwn.escape(incident.status, 20))
    facts.append(f"since {when(incident.opened_at)}")
    line = f"*#{incident.id} {title}* — {' · '.join(facts)}"
    if incident.update and incident.update_at:
        line += f"\nLatest: {mrkdwn.escape(incident.update, 300, one_line=True)} ({when(incident.update_at)})"
    if incident.channel:
        line += f"\nIn {mrkdwn.channel(incident.channel)}"
    return line


def quote(passage: Passage) -> str:
    body = mrkdwn.escape(passage.text.strip(), QUOTE_LIMIT)
    return "\n".join(f"> {line}" if line.strip() else ">" for line in body.splitlines())


def source_line(passage: Passage) -> str:
    heading = f" · {mrkdwn.escape(passage.section, 100, one_line=True)}" if passage.section else ""
    return f"— {cite(passage)}{heading}"


def cite(passage: Passage) -> str:
    title = passage.title or passage.doc_id
    if mrkdwn.safe_url(passage.link) is not None:
        return mrkdwn.link(passage.link, title)
    return f"*{mrkdwn.escape(title, 200, one_line=True)}*"


def status_answer(matches: Sequence[IncidentView], passages: Sequence[Passage]) -> Answer:
    head = "Yes, there is an open incident that matches:" if len(matches) == 1 else "Open incidents that match:"
    blocks = [section(head)]
    for incident in matches:
        notify = button("Notify me when resolved", NOTIFY_ACTION, str(incident.id))
        blocks.append(section(incident_line(incident), notify))
    lines = [head, *(incident_line(incident) for incident in matches)]
    blocks += _passage_blocks(passages, "This might help too:")
    sources = [{"incident": incident.id} for incident in matches] + [_source(p) for p in passages[:1]]
    plain = "; ".join(f"#{m.id} {m.title} ({m.status})" for m in matches)
    return Answer("status", "\n".join(lines), blocks, sources, f"open incident {plain}", matches[0].score)


def nothing_open(last: IncidentView | None, service: str | None) -> str:
    """ "No open incident matches; the last one for checkout was #41, resolved yesterday at 14:02"."""
    if last is None or last.resolved_at is None:
        return "No open incident matches."
    named = mrkdwn.escape(service, 100, one_line=True) if service else None
    subject = f"for {named}" if named else f"like it ({mrkdwn.escape(last.title, 150, one_line=True)})"
    return f"No open incident matches; the last one {subject} was #{last.id}, resolved {when(last.resolved_at)}."


def howto_answer(passages: Sequence[Passage], note: str | None = None, rewritten: str | None = None) -> Answer:
    """The best passage quoted (or ``rewritten``: a generated answer drawn from ``passages``, cited [1]..[n]), with
    the title and link of each source; ``note`` first (what is known of the live status)."""
    best = passages[0]
    blocks = [section(note)] if note else []
    if rewritten is not None:
        body = mrkdwn.escape(rewritten, 2000)
        cites = "\n".join(f"[{n}] {cite(p)}" for n, p in enumerate(passages, start=1))
        blocks += [section(body), section(cites)]
        text = f"{body}\n{cites}"
    else:
        blocks += [section(f"{quote(best)}\n{source_line(best)}")]
        text = f"{quote(best)}\n{source_line(best)}"
        others = [p for p in passages[1:3]]
        if others:
            blocks.append(section("See also: " + ", ".join(cite(p) for p in others)))
    text = f"{note}\n{text}" if note else text
    plain = best.title  # a follow-up's context: the topic, not the passage (which would pull its section back)
    return Answer("howto", text, blocks, [_source(p) for p in passages[:3]], plain, best.score)


def abstain_answer(question_id: int, note: str | None = None, confidence: float = 0.0) -> Answer:
    head = f"{note}\n{DONT_KNOW}" if note else DONT_KNOW
    value = str(question_id)
    actions = {
        "type": "actions",
        "block_id": HANDOVER_BLOCK,
        "elements": [
            button("Report a problem", REPORT_ACTION, value),
            button("Ask a human", ASK_HUMAN_ACTION, value),
        ],
    }
    blocks = [section(f"{head} {HANDOVER_HINT}"), actions]
    return Answer("abstain", f"{head} {HANDOVER_HINT}", blocks, [], "no answer", confidence)


def _passage_blocks(passages: Sequence[Passage], head: str) -> list[dict[str, Any]]:
    if not passages:
        return []
    return [section(f"{head}\n{quote(passages[0])}\n{source_line(passages[0])}")]


def _source(passage: Passage) -> dict[str, Any]:
    return {"doc": passage.doc_id, "title": passage.title, "link": passage.link, "score": round(passage.score, 4)}


def nothing_open_answer(note: str, question_id: int) -> Answer:
    """A status question with no open incident: what is known, and the hand-over should the user still see it."""
    handover = abstain_answer(question_id)
    text = f"{note}\nStill seeing a problem? {HANDOVER_HINT}"
    return Answer("status", text, [section(text), handover.blocks[-1]], [], note)
