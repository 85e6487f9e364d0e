"""The virtual agent's Slack side: questions in the bot's direct messages (``message.im``; @-mentions come
through :mod:`bot.slack.listeners.events`) and the "Notify me when resolved" button. The Events API acks first;
the answer is worked out after ("looking…", then the edit). The bot's own messages and every message subtype
(bot messages, edits, deletions) are acknowledged and ignored: an event no listener matches would be answered 404,
and Slack would send it again."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App, Respond, Say

from bot.agent.answers import NOTIFY_ACTION
from bot.agent.exchange import question_text
from bot.slack.listeners.errors import reported
from bot.slack.services import SlackServices

HELP = (
    'I\'m incibot. Ask me whether something is down ("is checkout slow?") or how to do something ("how do I'
    ' reset my password?"), here, by mentioning me, or with `/ask`. Responders: `/incident help`.'
)
SUBSCRIPTIONS = ("message.im",)  # the manifests' bot events this module needs
NOT_OURS = "That button does not belong to an incident."
GREETINGS = frozenset({"", "help", "hi", "hello", "hey"})


def direct_message(event: dict[str, Any]) -> bool:
    return event.get("channel_type") == "im"


def from_a_person(body: dict[str, Any], event: dict[str, Any]) -> bool:
    bots = {str(auth.get("user_id")) for auth in body.get("authorizations") or [] if auth.get("is_bot")}
    return (
        not event.get("bot_id") and not event.get("subtype") and bool(event.get("user")) and event["user"] not in bots
    )


def answer_event(services: SlackServices, body: dict[str, Any], event: dict[str, Any]) -> bool:
    """Give a person's question (DM or mention) to the agent, once per event; False when it is not one for the
    agent (no agent, or no question: "help", a bare mention), to be answered with the help text."""
    agent = services.agent
    if agent is None or question_text(str(event.get("text", ""))).lower().strip("?!. ") in GREETINGS:
        return False
    if not from_a_person(body, event):
        return True
    with services.database.write() as session:
        if not services.first_time(session, f"event:{body.get('event_id')}"):
            return True
    agent.on_message(
        user=str(event["user"]),
        channel=str(event.get("channel", "")),
        ts=str(event.get("ts", "")),
        thread_ts=event.get("thread_ts"),
        text=str(event.get("text", "")),
    )
    return True


def register(app: App, services: SlackServices) -> None:
    @app.event("message", matchers=[direct_message])
    def on_direct_message(body: dict[str, Any], event: dict[str, Any], say: Say) -> None:
        with reported(body, None):
            if answer_event(services, body, event) or not from_a_person(body, event):
                return
            with services.database.write() as session:
                if not services.first_time(session, f"event:{body.get('event_id')}"):
                    return
            say(text=HELP, thread_ts=event.get("thread_ts") or event.get("ts"))

    @app.action(NOTIFY_ACTION)
    def on_notify(ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond) -> None:
        ack()
        with reported(body, respond):
            agent, value = services.agent, str(action.get("value", ""))
            user = str((body.get("user") or {}).get("id", ""))
            text = agent.subscribe(user, int(value)) if agent is not None and value.isdigit() else NOT_OURS
            respond(text=text, response_type="ephemeral", replace_original=False)
