"""Events API callbacks. Slack retries an event until acked; its ``event_id`` makes a retry a no-op."""

from __future__ import annotations

from typing import Any

from slack_bolt import App, Say

from bot.slack.listeners.agent import HELP, answer_event
from bot.slack.listeners.errors import reported
from bot.slack.services import SlackServices

MENTION_HELP = "I'm incibot. Try `/incident list` for open incidents, or `/incident help`."  # the agent off


def register(app: App, services: SlackServices) -> None:
    @app.event("app_mention")
    def on_mention(body: dict[str, Any], event: dict[str, Any], say: Say) -> None:
        with reported(body, None):
            if answer_event(services, body, event):  # the virtual agent answers mentions
                return
            with services.database.write() as session:
                if not services.first_time(session, f"event:{body.get('event_id')}"):
                    return
            text = HELP if services.agent is not None else MENTION_HELP
            say(text=text, thread_ts=event.get("thread_ts") or event.get("ts"))
