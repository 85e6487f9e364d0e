"""The virtual agent's hand-over buttons, its report modal and the help-thread relay.

"Report a problem" opens the modal (``views.open`` from the click, within the trigger's 3 seconds) pre-filled with
the question; its submission is stored as a ``UserReport`` alert through the ingest writer, the modal says so, and
the reporter's confirmation, queued in the outbox with the report, goes to their conversation with the incident's
link once the worker has made (or joined) it and it is posted. "Ask a human"
posts the question to ``INCIBOT_HELP_CHANNEL`` with a way back to the asker; every reply people write in that
thread (a ``message`` event from a channel the bot is in) is relayed to the asker's conversation. Only the asker
may use their buttons; every string from people is escaped.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.agent.answers import ASK_HUMAN_ACTION, REPORT_ACTION
from bot.agent.handover import (
    INPUT_ACTION,
    MAX_REPORT_CHARS,
    MAX_SERVICE_CHARS,
    REPORT_CALLBACK,
    REPORT_SERVICE_BLOCK,
    REPORT_TEXT_BLOCK,
    Conversation,
    conversation,
    parse_question_id,
)
from bot.db.database import DatabaseUnavailable
from bot.slack import mrkdwn
from bot.slack.links import permalink, workspace_url
from bot.slack.listeners.clicks import clicker, say
from bot.slack.listeners.errors import reported
from bot.slack.listeners.remediation import TRIGGER_ERRORS
from bot.slack.services import SlackServices

log = logging.getLogger(__name__)

OFF = "The hand-over is not available here; ask in the ops channel."
NOT_YOURS = "Only the person who asked can use these buttons; ask incibot your own question."
GONE = "I no longer have that question; ask it again."
TRIGGER_LOST = "Slack did not let incibot open the form in time: click *Report a problem* again."
NO_HELP_CHANNEL = "No help channel is set up (INCIBOT_HELP_CHANNEL); ask in the ops channel."
SUBSCRIPTIONS = {"channel": "message.channels", "group": "message.groups"}  # channel type → the manifests' event
_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,20}$")


def register(app: App, services: SlackServices) -> None:
    @app.action(REPORT_ACTION)
    def report_button(
        ack: Ack, body: dict[str, Any], action: dict[str, Any], client: WebClient, respond: Respond
    ) -> None:
        ack()
        with reported(body, respond):
            _open_report(services, client, body, action, respond)

    @app.view(REPORT_CALLBACK)
    def report_submitted(ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient) -> None:
        with reported(body, None):
            _submit_report(services, ack, body, view, client)

    @app.action(ASK_HUMAN_ACTION)
    def ask_button(ack: Ack, body: dict[str, Any], action: dict[str, Any], client: WebClient, respond: Respond) -> None:
        ack()
        with reported(body, respond):
            _ask_human(services, client, body, action, respond)

    def in_a_channel(event: dict[str, Any]) -> bool:
        return event.get("channel_type") in SUBSCRIPTIONS  # direct messages are the agent's questions

    @app.event("message", matchers=[in_a_channel])
    def channel_message(body: dict[str, Any], event: dict[str, Any]) -> None:
        with reported(body, None):
            _relay(services, event)


def _asked(services: SlackServices, body: dict[str, Any], value: str, respond: Respond) -> Conversation | None:
    """The question a button belongs to, when the clicker asked it; else says why not and returns None."""
    question_id = parse_question_id(value)
    asked = conversation(services.database, question_id) if question_id is not None else None
    if asked is None or asked.asker != clicker(body)[0]:
        say(respond, GONE if asked is None else NOT_YOURS)
        return None
    return asked


def _open_report(
    services: SlackServices, client: WebClient, body: dict[str, Any], action: dict[str, Any], respond: Respond
) -> None:
    if services.handover is None:
        say(respond, OFF)
        return
    asked = _asked(services, body, str(action.get("value", "")), respond)
    if asked is None:
        return
    try:
        client.views_open(trigger_id=str(body.get("trigger_id", "")), view=report_modal(asked))
    except SlackApiError as exc:
        if exc.response.get("error") not in TRIGGER_ERRORS:
            raise
        say(respond, TRIGGER_LOST)


def report_modal(asked: Conversation) -> dict[str, Any]:
    """The "Report a problem" modal, pre-filled with the question."""
    return {
        "type": "modal",
        "callback_id": REPORT_CALLBACK,
        "private_metadata": str(asked.question_id),
        "title": {"type": "plain_text", "text": "Report a problem"},
        "submit": {"type": "plain_text", "text": "Report"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {
                "type": "input",
                "block_id": REPORT_TEXT_BLOCK,
                "label": {"type": "plain_text", "text": "What is wrong?"},
                "element": {
                    "type": "plain_text_input",
                    "action_id": INPUT_ACTION,
                    "multiline": True,
                    "max_length": MAX_REPORT_CHARS,
                    "initial_value": asked.question[:MAX_REPORT_CHARS],
                },
            },
            {
                "type": "input",
                "block_id": REPORT_SERVICE_BLOCK,
                "optional": True,
                "label": {"type": "plain_text", "text": "Which service or tool? (if you know)"},
                "element": {"type": "plain_text_input", "action_id": INPUT_ACTION, "max_length": MAX_SERVICE_CHARS},
            },
        ],
    }


def _notice(text: str) -> dict[str, Any]:
    return {
        "type": "modal",
        "title": {"type": "plain_text", "text": "Report a problem"},
        "close": {"type": "plain_text", "text": "Close"},
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text, "verbatim": True}}],
    }


def _field(view: dict[str, Any], block: str) -> str:
    values = (view.get("state") or {}).get("values") or {}
    return str(((values.get(block) or {}).get(INPUT_ACTION) or {}).get("value") or "").strip()


def _submit_report(
    services: SlackServices, ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient
) -> None:
    handover = services.handover
    question_id = parse_question_id(str(view.get("private_metadata", "")))
    asked = conversation(services.database, question_id) if question_id is not None else None
    user_id, user_name = clicker(body)
    if handover is None or asked is None or asked.asker != user_id:
        ack(response_action="update", view=_notice(OFF if handover is None else NOT_YOURS if asked else GONE))
        return
    text, service = _field(view, REPORT_TEXT_BLOCK), _field(view, REPORT_SERVICE_BLOCK)
    if not text:
        ack(response_action="errors", errors={REPORT_TEXT_BLOCK: "Say what is wrong."})
        return
    try:
        handover.reports.report(
            text[:MAX_REPORT_CHARS],
            service[:MAX_SERVICE_CHARS] or None,
            user_name,
            str(view.get("id")),
            asked,
            workspace_url(client),
        )
    except DatabaseUnavailable:
        ack(response_action="errors", errors={REPORT_TEXT_BLOCK: "incibot cannot store reports right now: try again."})
        return
    ack(response_action="update", view=_notice(":white_check_mark: Reported. I'll send you the incident's link."))


def _quote(text: str, limit: int) -> str:
    return "\n".join(f"> {line}" for line in mrkdwn.escape(text, limit).splitlines() or [""])


def _ask_human(
    services: SlackServices, client: WebClient, body: dict[str, Any], action: dict[str, Any], respond: Respond
) -> None:
    handover = services.handover
    if handover is None or not handover.help_channel:
        say(respond, OFF if handover is None else NO_HELP_CHANNEL)
        return
    asked = _asked(services, body, str(action.get("value", "")), respond)
    if asked is None:
        return
    if handover.desk.asked(asked.question_id):
        say(respond, "I already asked a person about this; their replies will come here.")
        return
    if asked.channel.startswith("D"):
        back = "They asked in a direct message with incibot; reply here and incibot passes it on."
    else:
        thread = mrkdwn.link(permalink(client, asked.channel, asked.thread_ts), "their conversation")
        back = f"Asked in {thread}. Reply in this thread and incibot passes it on."
    quoted = _quote(asked.question, 2000)
    text = f":raising_hand: <@{asked.asker}> asked incibot something it could not answer:\n{quoted}\n{back}"
    try:
        posted = client.chat_postMessage(
            channel=handover.help_channel, text=text, unfurl_links=False, unfurl_media=False
        )
    except SlackApiError as exc:
        log.error("cannot post to the help channel %s: %s", handover.help_channel, exc.response.get("error"))
        say(respond, "I could not reach the help channel; ask in the ops channel.")
        return
    handover.desk.record(asked, str(posted["channel"]), str(posted["ts"]), services.clock())
    help_name = mrkdwn.escape(handover.help_channel.lstrip("#"), 80, one_line=True)
    say(respond, f"I asked in #{help_name}. When someone answers there, I'll send you their reply here.")


def _relay(services: SlackServices, event: dict[str, Any]) -> None:
    """A person's reply in a help thread goes to the asker's conversation; every other channel message (the app
    hears all of them in the channels it is in) is only acknowledged."""
    handover = services.handover
    channel, ts, thread_ts = str(event.get("channel", "")), str(event.get("ts", "")), str(event.get("thread_ts", ""))
    if handover is None or not thread_ts or thread_ts == ts or not handover.desk.is_help_thread(channel, thread_ts):
        return
    if event.get("bot_id") or event.get("subtype") not in (None, "thread_broadcast"):
        return  # bots' posts (incibot's own included), edits, deletions, joins
    replier = str(event.get("user", ""))
    who = f"<@{replier}>" if _USER_ID.match(replier) else "Someone"
    text = f":speech_balloon: {who} answered your question:\n{_quote(str(event.get('text', '')), 2500)}"
    with services.database.write() as session:  # marked relayed with the relay queued: one, and never lost
        if not services.first_time(session, f"relay:{channel}:{ts}"):
            return  # Slack's retry of an event already relayed
        handover.desk.relay(session, channel, thread_ts, text, services.clock())
    services.wake_outbox()
