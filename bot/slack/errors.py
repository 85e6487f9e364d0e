"""Errors a Slack user can cause; each carries text that is safe to show them (ephemerally)."""

from __future__ import annotations


class SlackUserError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UsageError(SlackUserError):
    """The command text does not parse; the message names the problem and the usage follows."""


class NotAllowed(SlackUserError):
    """The user is not one of ``INCIBOT_RESPONDERS``."""
