"""The one table of slash commands: every ``/incident`` subcommand and every other command is a row.

A row names the command, its arguments, its handler, who may run it and whether it writes. Everything else
is generated from the table: parsing, the help text, the dispatch (permission check, the write transaction,
the replay check), the Bolt listeners, and the ``slash_commands`` section of both manifests in ``deploy/``
(a test checks that they match). A new command (``merge``, ``split``, ``cause``, ``run``, ``/ask``) is a new
row and its handler in :mod:`bot.slack.operations`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy.orm import Session

from bot.slack import agent_operations, cause_operations, operations, remediation
from bot.slack.errors import UsageError
from bot.slack.grammar import (
    CATEGORY,
    INCIDENT_COMMAND,
    INCIDENT_ID,
    MERGED,
    NOTE,
    QUERY,
    QUESTION,
    RUN_REQUEST,
    SELECTOR,
    TARGET,
    TITLE,
    USER,
    Command,
    Param,
    parse_arguments,
    quote,
)
from bot.slack.operations import Invocation
from bot.slack.services import SlackServices

RUNBOOK_COMMAND = "/runbook"
ASK_COMMAND = "/ask"
ALREADY_DONE = "Already done (this request was received twice)."


class Who(enum.Enum):
    EVERYONE = "everyone"
    RESPONDERS = "responders"  # INCIBOT_RESPONDERS (everyone when it is empty)


@dataclass(frozen=True, slots=True)
class SlashCommand:
    """One row. ``name`` is the subcommand (``""``: the command takes its arguments directly); ``what`` says,
    for commands only responders may run, what the others are told they may not do."""

    command: str
    name: str
    params: tuple[Param, ...]
    summary: str
    handler: Callable[[Invocation], str]
    who: Who = Who.EVERYONE
    writes: bool = False
    what: str = ""
    example: str = ""

    @property
    def invocation(self) -> str:
        return f"{self.command} {self.name}" if self.name else self.command

    @property
    def usage(self) -> str:
        return " ".join([self.invocation, *(param.shown for param in self.params)])

    @property
    def help_line(self) -> str:
        example = f", e.g. `{self.command} {self.example}`" if self.example else ""
        return f"`{self.usage}` — {self.summary}{example}"


def _help(invocation: Invocation) -> str:
    return usage(invocation.command.slash)


SLASH_COMMANDS: tuple[SlashCommand, ...] = (
    SlashCommand(INCIDENT_COMMAND, "list", (), "open incidents", operations.list_open),
    SlashCommand(INCIDENT_COMMAND, "show", (INCIDENT_ID,), "one incident", operations.show),
    SlashCommand(
        INCIDENT_COMMAND,
        "similar",
        (INCIDENT_ID,),
        "past incidents like this one, and how they were resolved",
        operations.similar,
    ),
    SlashCommand(
        INCIDENT_COMMAND,
        "ack",
        (INCIDENT_ID,),
        "acknowledge (the first to acknowledge becomes commander)",
        operations.acknowledge,
        Who.RESPONDERS,
        writes=True,
        what="acknowledge incidents",
    ),
    SlashCommand(
        INCIDENT_COMMAND,
        "resolve",
        (INCIDENT_ID, NOTE),
        "resolve, with an optional resolution note; `cause=NAME` in it records what caused the incident",
        cause_operations.resolve,
        Who.RESPONDERS,
        writes=True,
        what="resolve incidents",
    ),
    SlashCommand(
        INCIDENT_COMMAND,
        "declare",
        (TITLE,),
        "open an incident by hand",
        operations.declare,
        Who.RESPONDERS,
        writes=True,
        what="declare incidents",
    ),
    SlashCommand(
        INCIDENT_COMMAND,
        "assign",
        (INCIDENT_ID, USER),
        "make someone the commander",
        operations.assign,
        Who.RESPONDERS,
        writes=True,
        what="assign commanders",
    ),
    SlashCommand(
        INCIDENT_COMMAND,
        "merge",
        (TARGET, MERGED),
        "move B's alerts into A (B says where they went); teaches the correlator",
        operations.merge,
        Who.RESPONDERS,
        writes=True,
        what=operations.CORRECT,
    ),
    SlashCommand(
        INCIDENT_COMMAND,
        "split",
        (INCIDENT_ID, SELECTOR),
        "move the alerts of that name (or that alert) to a new incident; teaches the correlator",
        operations.split,
        Who.RESPONDERS,
        writes=True,
        what=operations.CORRECT,
    ),
    SlashCommand(
        INCIDENT_COMMAND,
        "classify",
        (INCIDENT_ID, CATEGORY),
        "set the category (what the post's menu does: routes by it, teaches the classifier)",
        operations.classify,
        Who.RESPONDERS,
        writes=True,
        what=operations.CLASSIFY,
    ),
    SlashCommand(
        INCIDENT_COMMAND,
        "cause",
        (INCIDENT_ID,),
        "the likely causes, each with its evidence (topology, changes, history)",
        cause_operations.cause,
    ),
    SlashCommand(
        INCIDENT_COMMAND,
        "actions",
        (INCIDENT_ID,),
        "the catalogue actions that apply, and the requests still open",
        remediation.actions_command,
    ),
    SlashCommand(
        INCIDENT_COMMAND,
        "run",
        (INCIDENT_ID, RUN_REQUEST),
        "request an action (its approvers are asked in the thread), e.g. `run 42 restart-deployment namespace=shop`",
        remediation.run_command,
    ),
    SlashCommand(INCIDENT_COMMAND, "help", (), "this text", _help),
    SlashCommand(
        RUNBOOK_COMMAND,
        "",
        (QUERY,),
        "runbooks for a symptom or an alert name",
        operations.runbooks,
        example="disk almost full",
    ),
    SlashCommand(
        ASK_COMMAND,
        "",
        (QUESTION,),
        "ask the virtual agent (answered in a direct message, with its sources)",
        agent_operations.ask,
        example="is checkout down?",
    ),
)

DESCRIPTIONS = {
    INCIDENT_COMMAND: "List, show, find similar, acknowledge, resolve, declare, assign, merge, split, classify and "
    "explain incidents, and run actions on them",
    RUNBOOK_COMMAND: "Runbooks for a symptom or an alert name",
    ASK_COMMAND: "Ask whether something is down, or how to do something",
}
"""What Slack shows beside each command in its menu (the manifests' ``description``)."""

COMMANDS: tuple[str, ...] = tuple(dict.fromkeys(row.command for row in SLASH_COMMANDS))
"""Every command the bot registers, in the table's order."""


def rows(command: str) -> tuple[SlashCommand, ...]:
    return tuple(row for row in SLASH_COMMANDS if row.command == command)


def usage(command: str) -> str:
    """The help text of ``command``."""
    lines = [row.help_line for row in rows(command)]
    return "\n".join([f"*{command}* commands:", *lines] if len(lines) > 1 else lines)


def parse(command: str, text: str) -> Command:
    """Parse the text after ``command``; raises :class:`UsageError` naming the problem."""
    candidates = rows(command)
    if len(candidates) == 1 and not candidates[0].name:
        if not text.strip() or text.strip().lower() == "help":
            raise UsageError(usage(command))
        return parse_arguments(candidates[0].invocation, candidates[0].params, text, Command("", slash=command))
    words = text.strip().split(maxsplit=1)
    if not words:
        return Command("help", slash=command)
    name, rest = words[0].lower(), (words[1] if len(words) > 1 else "")
    row = _row(command, name)
    if row is None:
        raise UsageError(f"Unknown subcommand `{quote(name)}`.")
    return parse_arguments(row.invocation, row.params, rest, Command(name, slash=command))


def run(services: SlackServices, command: Command, user_id: str, user_name: str, request_key: str) -> str:
    """Carry out ``command`` for ``user_id`` as its row says; returns the ephemeral answer. A command that
    writes runs once per ``request_key`` (Slack's retries and replays have one effect)."""
    row = _row(command.slash, command.name)
    if row is None:
        raise UsageError(f"Unknown command `{quote(command.slash)} {quote(command.name)}`.")
    invocation = Invocation(services, command, user_id, user_name)
    if row.who is Who.RESPONDERS:
        services.permissions.check(user_id, row.what)
    if not row.writes:
        return row.handler(invocation)
    return write_once(services, request_key, lambda session: row.handler(replace(invocation, session=session)))


def write_once(services: SlackServices, request_key: str, handler: Callable[[Session], str]) -> str:
    """Run ``handler`` in a write transaction once per ``request_key`` (Slack's retries and replays have one
    effect), then wake the outbox; returns the ephemeral answer."""
    with services.database.write() as session:
        if not services.first_time(session, request_key):
            return ALREADY_DONE
        answer = handler(session)
    services.wake_outbox()
    return answer


def manifest_slash_commands(request_url: str | None) -> list[dict[str, Any]]:
    """The manifests' ``features.slash_commands``; ``request_url`` None for Socket Mode (no URL)."""
    entries: list[dict[str, Any]] = []
    for command in COMMANDS:
        table = rows(command)
        hints = [" ".join([row.name, *(p.shown for p in row.params)]).strip() for row in table]
        if len(table) == 1 and table[0].example:
            hints = [f"{hints[0]}, e.g. {table[0].example}"]
        entry: dict[str, Any] = {"command": command}
        if request_url is not None:
            entry["url"] = request_url
        entry |= {
            "description": DESCRIPTIONS[command],
            "usage_hint": " | ".join(hints),
            # Mentions arrive as <@U123|name> only when Slack escapes them.
            "should_escape": any(param is USER for row in table for param in row.params),
        }
        entries.append(entry)
    return entries


def _row(command: str, name: str) -> SlashCommand | None:
    return next((row for row in SLASH_COMMANDS if row.command == command and row.name == name), None)
