"""Checks on what the bot sent to Slack: nothing pings or links unless it should, and Slack's limits hold.

Written from Slack's documented rules, independent of the bot's own escaping module.
"""

from __future__ import annotations

import re
from collections.abc import Set
from typing import Any

PINGS = ("<!channel>", "<!here>", "<!everyone>", "<@U123>", "<!subteam^S1>", "<#C0SECRET>")

MAX_TEXT = 4000  # chat.update refuses longer text
MAX_BLOCKS = 50
MAX_HEADER = 150
MAX_SECTION = 3000
MAX_FIELD = 2000
MAX_CONTEXT = 3000


def mrkdwn_texts(message: dict[str, Any]) -> list[str]:
    """Every string of ``message`` that Slack parses as mrkdwn (its ``text`` and its mrkdwn text objects, which
    must be ``verbatim``)."""
    texts = [message["text"]]
    for block in message.get("blocks", []):
        for part in [block.get("text"), *block.get("fields", []), *block.get("elements", [])]:
            if isinstance(part, dict) and part.get("type") == "mrkdwn":
                assert part.get("verbatim") is True, part  # no automatic links or mentions in its plain text
                texts.append(part["text"])
    return texts


def assert_inert(text: str, allowed_urls: Set[str] = frozenset()) -> None:
    """No ping and no link in ``text`` except date tokens, channel ids and links to ``allowed_urls``."""
    for token in re.findall(r"<([^<>]*)>", text):
        if re.fullmatch(r"!date\^\d+\^\{[a-z_]+\}( \{[a-z_]+\})?\|[0-9: -]+(UTC)?", token):
            continue
        if re.fullmatch(r"#C[A-Z0-9]+", token):
            continue
        url, bar, _label = token.partition("|")
        assert bar and url.replace("&amp;", "&") in allowed_urls, f"link or ping {token!r} in {text!r}"
    assert "<!" not in text.replace("<!date^", "") and "<@" not in text


def assert_within_limits(message: dict[str, Any]) -> None:
    assert len(message["text"]) <= MAX_TEXT
    blocks = message.get("blocks", [])
    assert len(blocks) <= MAX_BLOCKS
    for block in blocks:
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= MAX_HEADER
            assert not any(ord(c) < 32 for c in block["text"]["text"])
        if block["type"] == "section":
            assert len(block.get("text", {}).get("text", "")) <= MAX_SECTION
            assert all(len(field["text"]) <= MAX_FIELD for field in block.get("fields", []))
        if block["type"] == "context":
            assert all(len(element["text"]) <= MAX_CONTEXT for element in block["elements"])
