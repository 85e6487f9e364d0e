"""The one way strings from outside (alert fields, URLs, user text) reach Slack mrkdwn.

Slack's mrkdwn gives ``<`` … ``>`` meaning: ``<!channel>``, ``<!here>``, ``<@U…>`` and ``<!subteam^…>`` ping
people, ``<url|label>`` shows a link whose target the label hides. So outside text is always escaped
(:func:`escape`), and a link is made only from a URL that passes :func:`safe_url`; any other "URL" is shown as
plain escaped text, never as a link. The builders in :mod:`bot.slack.blocks` and every other message the bot
sends use only these functions for outside strings (and ask Slack not to parse plain text: ``verbatim`` text
objects, ``parse=none``, so a plain "@channel" stays text).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from datetime import datetime
from urllib.parse import urlsplit

from bot.slack.channels import is_channel_id

MAX_URL_CHARS = 3000  # Block Kit's limit for a URL; Alertmanager's generatorURL carries whole PromQL queries
ELLIPSIS = "…"

_URL_SCHEMES = ("http", "https")
_URL_FORBIDDEN = frozenset("|<>\\")
_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
# Bidirectional controls can make shown text read differently from what it is (a disguised link).
_BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def clip(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, with "…" where it was cut."""
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + ELLIPSIS


def plain(text: str, limit: int) -> str:
    """Outside text for a ``plain_text`` field (a header, which Slack never parses for mentions or links): one
    line, control and bidi characters dropped, clipped to ``limit``."""
    return clip(" ".join(_printable(text).split()), limit)


def escape(text: str, limit: int | None = None, *, one_line: bool = False) -> str:
    """Outside text made inert for mrkdwn: ``&``, ``<``, ``>`` escaped as Slack asks, so it can neither mention
    nor link; control and bidi characters dropped. ``limit`` bounds the escaped result (cut at a character,
    never inside an escape, "…" where it was cut); ``one_line`` turns line breaks and runs of spaces into one
    space."""
    text = _printable(text)
    if one_line:
        text = " ".join(text.split())
    escaped = [_ESCAPES.get(c, c) for c in text]
    if limit is None or sum(map(len, escaped)) <= limit:
        return "".join(escaped)
    kept: list[str] = []
    used = len(ELLIPSIS)
    for piece in escaped:
        if used + len(piece) > limit:
            break
        kept.append(piece)
        used += len(piece)
    return "".join(kept) + ELLIPSIS


def _printable(text: str) -> str:
    return "".join(c for c in text if c in "\n\t" or (unicodedata.category(c) != "Cc" and c not in _BIDI_CONTROLS))


def safe_url(url: str | None) -> str | None:
    """``url`` when it may be a link's target: http or https, a host, at most :data:`MAX_URL_CHARS`, no
    whitespace, control or other invisible characters and none of ``|<>\\``; else None."""
    if not url or len(url) > MAX_URL_CHARS:
        return None
    if any(c in _URL_FORBIDDEN or c.isspace() or unicodedata.category(c)[0] in "CZ" for c in url):
        return None
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:  # e.g. a malformed IPv6 host or port
        return None
    if parts.scheme.lower() not in _URL_SCHEMES or not host:
        return None
    return url


def link(url: str | None, label: str, *, url_chars: int = 100) -> str:
    """``<url|label>`` for a :func:`safe_url`; otherwise the label and the URL as plain escaped text (the URL
    clipped to ``url_chars``), so a hostile URL can be read but not followed or disguised."""
    checked = safe_url(url)
    if checked is not None:
        return f"<{escape(checked)}|{escape(label, one_line=True)}>"
    if not url:
        return escape(label, one_line=True)
    return f"{escape(label, one_line=True)} ({escape(url, url_chars, one_line=True)})"


def date(when: datetime, token: str, fallback: str) -> str:
    """Slack's date formatting: ``when`` in each reader's time zone (``token`` e.g. ``{date_short_pretty}``), the
    ``fallback`` text (a ``strftime`` format, UTC) where a client cannot format it."""
    return f"<!date^{int(when.timestamp())}^{escape(token, one_line=True)}|{escape(f'{when:{fallback}}')}>"


def channel(channel_id: str) -> str:
    """A link to a channel by id (``<#C…>``); anything that is not a channel id is shown as escaped text."""
    if is_channel_id(channel_id):
        return f"<#{channel_id}>"
    return escape(f"#{channel_id}", 80, one_line=True)


def join_within(parts: Iterable[str], limit: int, separator: str = "\n") -> str:
    """Whole ``parts`` joined while they fit in ``limit`` characters (a part is never cut, so a link or an
    escape sequence is never broken); a last "…" says that some were left out."""
    items = list(parts)
    kept: list[str] = []
    used = 0
    for index, part in enumerate(items):
        cost = len(part) + (len(separator) if kept else 0)
        room_for_more = len(separator) + len(ELLIPSIS) if index < len(items) - 1 else 0
        if used + cost + room_for_more > limit:
            kept.append(ELLIPSIS)
            break
        kept.append(part)
        used += cost
    return separator.join(kept)
