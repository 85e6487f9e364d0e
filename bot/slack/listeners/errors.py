"""One place that turns errors into what the user sees: known errors become ephemeral messages, unknown
ones are logged under a short reference id that the user is shown.

Registered as Bolt's ``@app.error`` handler, and called by listeners for errors after their ack (Bolt's
thread runner loses an already-sent ack when a listener raises afterwards, and the request then looks
unacknowledged to Slack).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from slack_bolt import App
from slack_bolt.context.respond import Respond

from bot.incidents.errors import IncidentError
from bot.slack.errors import SlackUserError

log = logging.getLogger(__name__)


def register(app: App) -> None:
    @app.error
    def on_error(error: Exception, body: dict[str, Any], respond: Respond | None = None) -> None:
        report(error, body, respond)


def report(error: Exception, body: dict[str, Any], respond: Callable[..., Any] | None) -> None:
    if isinstance(error, SlackUserError | IncidentError):
        message = error.message
    else:
        reference = secrets.token_hex(4)
        log.error("unhandled error in a Slack listener (ref %s)", reference, exc_info=error)
        message = f"Sorry, something went wrong on our side (reference `{reference}`)."
    if respond is not None and body.get("response_url"):
        respond(text=message, response_type="ephemeral", replace_original=False)


@contextmanager
def reported(body: dict[str, Any], respond: Callable[..., Any] | None) -> Iterator[None]:
    """Wrap a listener's work after its ack: errors are reported to the user, never re-raised."""
    try:
        yield
    except Exception as error:
        report(error, body, respond)
