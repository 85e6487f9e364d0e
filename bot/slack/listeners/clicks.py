"""What every click listener reads and answers: who clicked, and a reply only the clicker sees."""

from __future__ import annotations

from typing import Any

from slack_bolt.context.respond import Respond


def clicker(body: dict[str, Any]) -> tuple[str, str]:
    """The clicking user's id and the name to show for them (their username, else their name, else the id)."""
    user = body.get("user") or {}
    user_id = str(user.get("id", ""))
    return user_id, str(user.get("username") or user.get("name") or user_id)


def say(respond: Respond, text: str) -> None:
    """An ephemeral reply beside the clicked message, which stays as it was."""
    respond(text=text, response_type="ephemeral", replace_original=False)
