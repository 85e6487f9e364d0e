"""The ``/incident`` grammar. The text is untrusted input: parse strictly, never guess.

    /incident list
    /incident show ID
    /incident similar ID
    /incident ack ID
    /incident resolve ID [NOTE…]
    /incident declare TITLE…
    /incident assign ID @user
    /incident help

ID is a positive number (``42`` or ``#42``); ``@user`` is a Slack user mention (``<@U123|name>``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.slack.errors import UsageError

MAX_NOTE = 2000
MAX_TITLE = 200
_ID = re.compile(r"^#?([1-9][0-9]{0,11})$")
_MENTION = re.compile(r"^<@([UW][A-Z0-9]{2,})(?:\|([^>]{1,80}))?>$")

USAGE = "\n".join(
    [
        "*/incident* commands:",
        "`/incident list` — open incidents",
        "`/incident show ID` — one incident",
        "`/incident similar ID` — past incidents like this one, and how they were resolved",
        "`/incident ack ID` — acknowledge (the first to acknowledge becomes commander)",
        "`/incident resolve ID [note]` — resolve, with an optional resolution note",
        "`/incident declare TITLE` — open an incident by hand",
        "`/incident assign ID @user` — make someone the commander",
        "`/incident help` — this text",
    ]
)


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    incident_id: int | None = None
    text: str | None = None  # note, title
    user_id: str | None = None
    user_name: str | None = None


def parse(text: str) -> Command:
    """Parse the text after ``/incident``; raises :class:`UsageError` naming the problem."""
    words = text.strip().split(maxsplit=1)
    if not words:
        return Command("help")
    name, rest = words[0].lower(), (words[1].strip() if len(words) > 1 else "")
    if name in ("help", "list"):
        if rest:
            raise UsageError(f"`/incident {name}` takes no arguments.")
        return Command(name)
    if name in ("show", "similar", "ack", "resolve", "assign"):
        id_word, _, tail = rest.partition(" ")
        incident_id = _incident_id(name, id_word)
        tail = tail.strip()
        if name in ("show", "similar", "ack"):
            if tail:
                raise UsageError(f"`/incident {name} ID` takes nothing after the ID (got `{_quote(tail)}`).")
            return Command(name, incident_id)
        if name == "resolve":
            if len(tail) > MAX_NOTE:
                raise UsageError(f"The resolution note is too long ({len(tail)} characters; at most {MAX_NOTE}).")
            return Command(name, incident_id, text=tail or None)
        mention = _MENTION.match(tail)
        if mention is None:
            raise UsageError("`/incident assign ID @user` needs a user mention after the ID.")
        return Command(name, incident_id, user_id=mention.group(1), user_name=mention.group(2))
    if name == "declare":
        if not rest:
            raise UsageError("`/incident declare TITLE` needs a title.")
        if len(rest) > MAX_TITLE:
            raise UsageError(f"The title is too long ({len(rest)} characters; at most {MAX_TITLE}).")
        return Command(name, text=rest)
    raise UsageError(f"Unknown subcommand `{_quote(name)}`.")


def _incident_id(name: str, word: str) -> int:
    if not word:
        raise UsageError(f"`/incident {name}` needs an incident ID, e.g. `/incident {name} 42`.")
    match = _ID.match(word)
    if match is None:
        raise UsageError(f"`{_quote(word)}` is not an incident ID (a number such as `42`).")
    return int(match.group(1))


def _quote(text: str) -> str:
    return text[:40].replace("`", "'")


MAX_QUERY = 500
RUNBOOK_USAGE = "`/runbook QUERY` — runbooks for a symptom or an alert name, e.g. `/runbook disk almost full`"


def parse_runbook_query(text: str) -> str:
    """The text after ``/runbook``; raises :class:`UsageError` when it is empty or too long."""
    query = " ".join(text.split())
    if not query or query.lower() == "help":
        raise UsageError(RUNBOOK_USAGE)
    if len(query) > MAX_QUERY:
        raise UsageError(f"The query is too long ({len(query)} characters; at most {MAX_QUERY}).")
    return query
