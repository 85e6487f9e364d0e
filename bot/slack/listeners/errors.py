"""The one error handler: known errors become ephemeral messages; unknown ones get a reference id."""

from __future__ import annotations

import logging
import secrets
from typing import Any

from slack_bolt import App
from slack_bolt.context.respond import Respond

from bot.incidents.errors import IncidentError
from bot.slack.errors import SlackUserError

log = logging.getLogger(__name__)


def register(app: App) -> None:
    @app.error
    def on_error(error: Exception, body: dict[str, Any], respond: Respond | None = None) -> None:
        if isinstance(error, SlackUserError | IncidentError):
            message = error.message
        else:
            reference = secrets.token_hex(4)
            log.error("unhandled error in a Slack listener (ref %s)", reference, exc_info=error)
            message = f"Sorry, something went wrong on our side (reference `{reference}`)."
        if respond is not None and body.get("response_url"):
            respond(text=message, response_type="ephemeral", replace_original=False)
