"""How slash-command text is parsed. The text is untrusted input: parse strictly, never guess.

A command's arguments are a sequence of :class:`Param`: an incident ID (``42`` or ``#42``, a positive number),
a user mention (``<@U123|name>``), or free text that takes the rest of the line. The commands themselves, and
which arguments each takes, are rows of the table in :mod:`bot.slack.commands`.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, replace

from bot.slack.errors import UsageError
from bot.slack.mrkdwn import escape

INCIDENT_COMMAND = "/incident"
MAX_NOTE = 2000
MAX_TITLE = 200
MAX_QUERY = 500
MAX_SELECTOR = 200
MAX_CATEGORY = 40
MAX_RUN_REQUEST = 1000
_ID = re.compile(r"^#?([1-9][0-9]{0,11})$")
_MENTION = re.compile(r"^<@([UW][A-Z0-9]{2,})(?:\|([^>]{1,80}))?>$")


class Kind(enum.Enum):
    INCIDENT_ID = "incident_id"  # one word
    USER = "user"  # a mention; the rest of the line when it is the last argument
    TEXT = "text"  # the rest of the line


@dataclass(frozen=True, slots=True)
class Param:
    """One argument. ``label`` is how usage shows it (``ID``, ``@user``, ``note``); ``noun`` how errors name
    free text (``title``); ``collapse`` joins runs of whitespace in free text."""

    kind: Kind
    label: str
    optional: bool = False
    max_length: int | None = None
    noun: str = ""
    collapse: bool = False

    @property
    def shown(self) -> str:
        return f"[{self.label}]" if self.optional else self.label


INCIDENT_ID = Param(Kind.INCIDENT_ID, "ID")
USER = Param(Kind.USER, "@user")
NOTE = Param(Kind.TEXT, "note", optional=True, max_length=MAX_NOTE, noun="resolution note")
TITLE = Param(Kind.TEXT, "TITLE", max_length=MAX_TITLE, noun="title")
QUERY = Param(Kind.TEXT, "QUERY", max_length=MAX_QUERY, noun="query", collapse=True)
QUESTION = Param(Kind.TEXT, "QUESTION", max_length=MAX_QUERY, noun="question", collapse=True)
TARGET = Param(Kind.INCIDENT_ID, "A")  # merge A B: A keeps the alerts
MERGED = Param(Kind.INCIDENT_ID, "B")  # a second incident ID fills ``other_id``
SELECTOR = Param(Kind.TEXT, "ALERTNAME|ALERT_ID", max_length=MAX_SELECTOR, noun="name or ID of an alert")
CATEGORY = Param(Kind.TEXT, "CATEGORY", max_length=MAX_CATEGORY, noun="category", collapse=True)
RUN_REQUEST = Param(Kind.TEXT, "ACTION key=value…", max_length=MAX_RUN_REQUEST, noun="run request")


@dataclass(frozen=True, slots=True)
class Command:
    """A parsed command: ``name`` is the subcommand (``""`` for a command without subcommands)."""

    name: str
    incident_id: int | None = None
    other_id: int | None = None  # the second incident ID (merge A B)
    text: str | None = None  # note, title, query, alert selector
    user_id: str | None = None
    user_name: str | None = None
    slash: str = INCIDENT_COMMAND


def parse_arguments(invocation: str, params: tuple[Param, ...], rest: str, command: Command) -> Command:
    """Fill ``command`` from ``rest``, the text after ``invocation`` (``/incident ack``); raises
    :class:`UsageError` naming the problem."""
    usage = " ".join([invocation, *(param.shown for param in params)])
    rest = rest.strip()
    if not params:
        if rest:
            raise UsageError(f"`{invocation}` takes no arguments.")
        return command
    for position, param in enumerate(params):
        last = position == len(params) - 1
        if param.kind is Kind.TEXT or (param.kind is Kind.USER and last):
            word, rest = rest, ""
        else:
            word, _, rest = rest.partition(" ")
            rest = rest.strip()
        after = f" after the {params[position - 1].label}" if position else ""
        if param.kind is Kind.INCIDENT_ID:
            number = _incident_id(invocation, word)
            first = command.incident_id is None
            command = replace(command, incident_id=number) if first else replace(command, other_id=number)
        elif param.kind is Kind.USER:
            mention = _MENTION.match(word)
            if mention is None:
                raise UsageError(f"`{usage}` needs a user mention{after}.")
            command = replace(command, user_id=mention.group(1), user_name=mention.group(2))
        else:
            command = replace(command, text=_text(usage, param, word))
    if rest:
        raise UsageError(f"`{usage}` takes nothing after the {params[-1].label} (got `{quote(rest)}`).")
    return command


def _incident_id(invocation: str, word: str) -> int:
    if not word:
        raise UsageError(f"`{invocation}` needs an incident ID, e.g. `{invocation} 42`.")
    match = _ID.match(word)
    if match is None:
        raise UsageError(f"`{quote(word)}` is not an incident ID (a number such as `42`).")
    return int(match.group(1))


def _text(usage: str, param: Param, text: str) -> str | None:
    text = " ".join(text.split()) if param.collapse else text.strip()
    if not text:
        if param.optional:
            return None
        raise UsageError(f"`{usage}` needs a {param.noun}.")
    if param.max_length is not None and len(text) > param.max_length:
        raise UsageError(f"The {param.noun} is too long ({len(text)} characters; at most {param.max_length}).")
    return text


def quote(text: str) -> str:
    """A short, backtick-free excerpt of user text, escaped (no mention or link), safe inside backticks."""
    return escape(text.replace("`", "'"), 40, one_line=True)
