"""``/ask QUESTION``: the virtual agent answers in the asker's direct message (its buttons and follow-ups live
there); the command's own answer says where."""

from __future__ import annotations

from bot.slack.operations import Invocation

ANSWERED = "I've answered you in a direct message from incibot (follow-ups go in its thread)."
AGENT_OFF = "The virtual agent is off here (INCIBOT_AGENT=false)."


def ask(invocation: Invocation) -> str:
    agent = invocation.services.agent
    if agent is None:
        return AGENT_OFF
    agent.ask_in_dm(invocation.user_id, invocation.text)
    return ANSWERED
