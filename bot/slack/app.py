"""Builds the Bolt app from its parts (called by the composition root only; never at import time)."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

from slack_bolt import App
from slack_sdk import WebClient

from bot.slack.listeners import register_all
from bot.slack.services import SlackServices

# Listener work runs after the ack in this pool; it is large enough that slow work (a slow database, a
# slow response_url) never keeps a new request from being acked within Slack's 3 seconds.
LISTENER_THREADS = 64


def build_bolt_app(client: WebClient, services: SlackServices) -> App:
    bolt_logger = logging.getLogger("slack_bolt")
    app = App(
        client=client,
        # Requests are verified before Bolt sees them (bot.slack.http), so Bolt never logs a refused body and
        # never holds the secret (Socket Mode has none; an empty string only stops Bolt reading the environment).
        signing_secret="",
        request_verification_enabled=False,
        token_verification_enabled=False,
        listener_executor=ThreadPoolExecutor(LISTENER_THREADS, thread_name_prefix="slack-listener"),
        logger=bolt_logger,
    )
    register_all(app, services)
    return app
