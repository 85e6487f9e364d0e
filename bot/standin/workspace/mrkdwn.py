"""Slack text as HTML for the local workspace page: mrkdwn (``*bold*``, ``_italics_``, ``~strike~``, `` `code` ``,
```` ```pre``` ````, ``>`` quotes, ``<url|label>`` links, ``<@U…>``, ``<#C…>``, ``<!here>``, ``<!subteam^…>`` and
``<!date^…|fallback>``) and ``plain_text`` (with ``:emoji:`` shortcodes).

Safety first: the result is built from HTML-escaped text, and markup is added only around text that is escaped
already, so nothing in a message (an alert's title, a user's words) ever becomes markup. A link's target must be
an http, https or mailto URL (:func:`safe_href`); any other is shown as text. The stand-in renders the text on
its own, without the bot's mrkdwn helpers: the page shows what Slack would, not what the bot meant.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit

MAX_HREF = 3000
_SCHEMES = frozenset({"http", "https", "mailto"})
_SENTINEL = re.compile("\ue000([0-9]+)\ue001")
_PRIVATE = re.compile("[\ue000\ue001]")
_TOKEN = re.compile(r"<([^<>\n]*)>")
_CODE = re.compile(r"(?<![`\w])`([^`\n]+)`(?![`\w])")
_FENCE = re.compile(r"```(.*?)```", re.DOTALL)
_ENTITIES = (("&lt;", "<"), ("&gt;", ">"), ("&amp;", "&"))  # Slack escapes only these (&amp; last)
_EMOJI_NAME = re.compile(r":([a-z0-9_+\-]+):")
_STYLES = (
    ("*", "b"),
    ("_", "i"),
    ("~", "s"),
)
EMOJI: Mapping[str, str] = {
    "+1": "\U0001f44d",
    "-1": "\U0001f44e",
    "thumbsup": "\U0001f44d",
    "thumbsdown": "\U0001f44e",
    "white_check_mark": "\u2705",
    "ballot_box_with_check": "\u2611\ufe0f",
    "heavy_check_mark": "\u2714\ufe0f",
    "x": "\u274c",
    "heavy_multiplication_x": "\u2716\ufe0f",
    "warning": "\u26a0\ufe0f",
    "hourglass": "\u231b",
    "hourglass_flowing_sand": "\u23f3",
    "fire": "\U0001f525",
    "rotating_light": "\U0001f6a8",
    "eyes": "\U0001f440",
    "red_circle": "\U0001f534",
    "large_orange_circle": "\U0001f7e0",
    "large_yellow_circle": "\U0001f7e1",
    "large_blue_circle": "\U0001f535",
    "large_green_circle": "\U0001f7e2",
    "white_circle": "\u26aa",
    "twisted_rightwards_arrows": "\U0001f500",
    "tada": "\U0001f389",
    "speech_balloon": "\U0001f4ac",
    "small_blue_diamond": "\U0001f539",
    "rocket": "\U0001f680",
    "repeat": "\U0001f501",
    "raising_hand": "\U0001f64b",
    "no_entry_sign": "\U0001f6ab",
    "no_entry": "\u26d4",
    "memo": "\U0001f4dd",
    "mag": "\U0001f50d",
    "link": "\U0001f517",
    "information_source": "\u2139\ufe0f",
    "books": "\U0001f4da",
    "bell": "\U0001f514",
    "wrench": "\U0001f527",
    "lock": "\U0001f512",
    "robot_face": "\U0001f916",
}
"""The shortcodes the bot uses (and a few more), as Unicode; others stay as typed."""


@dataclass(frozen=True)
class Names:
    """Who and what mentions name: user id -> shown name, channel id -> channel name (without ``#``), user
    group id -> handle."""

    users: Mapping[str, str] = field(default_factory=dict)
    channels: Mapping[str, str] = field(default_factory=dict)
    groups: Mapping[str, str] = field(default_factory=dict)


def esc(text: str) -> str:
    """``text`` as HTML text or attribute value (quotes escaped too)."""
    return html.escape(text, quote=True)


def safe_href(url: str) -> str | None:
    """``url`` when a page may link to it: http(s) with a host, or mailto with an address; no whitespace,
    control or invisible characters, at most :data:`MAX_HREF` characters. Else None."""
    if not url or len(url) > MAX_HREF:
        return None
    if any(c.isspace() or unicodedata.category(c)[0] in "CZ" or c in "<>\"'`\\" for c in url):
        return None
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES or (scheme != "mailto" and not host) or (scheme == "mailto" and "@" not in url):
        return None
    return url


def emoji(escaped: str) -> str:
    """Known ``:shortcodes:`` in (escaped) text as Unicode."""
    return _EMOJI_NAME.sub(lambda m: EMOJI.get(m.group(1), m.group(0)), escaped)


def plain_text(text: str, *, emojis: bool = True) -> str:
    """A ``plain_text`` object's text as HTML: escaped, shortcodes as emoji when ``emojis``."""
    escaped = esc(text)
    return emoji(escaped) if emojis else escaped


def mrkdwn(text: str, names: Names | None = None) -> str:
    """Slack mrkdwn as HTML (line breaks as ``<br>``, quotes as ``<blockquote>``, fences as ``<pre>``)."""
    names = names or Names()
    text = _PRIVATE.sub("", text)
    parts: list[str] = []
    pieces = _FENCE.split(text)
    for number, piece in enumerate(pieces):
        if number % 2:
            code = _TOKEN.sub(lambda m: _visible(token(m.group(1), names)), piece.strip("\n"))
            parts.append(f'<pre class="mrkdwn-pre">{esc(_unescape(code))}</pre>')
            continue
        piece = piece.removeprefix("\n") if number else piece  # the line break after a fence is the fence's
        piece = piece.removesuffix("\n") if number < len(pieces) - 1 else piece
        if piece:
            parts.append(_lines(piece, names))
    return "".join(parts)


def _visible(markup: str) -> str:
    """What HTML ``markup`` (made here) shows, as Slack-escaped text again."""
    shown = html.unescape(re.sub(r"<[^>]*>", "", markup))
    return shown.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _lines(text: str, names: Names) -> str:
    """Lines, those starting with ``>`` grouped into quotes."""
    out: list[str] = []
    quoted: list[str] = []
    for line in text.split("\n"):
        if line.startswith(">"):
            quoted.append(_inline(line[1:].removeprefix(" "), names))
            continue
        if quoted:
            out.append(f'<blockquote class="mrkdwn-quote">{"<br>".join(quoted)}</blockquote>')
            quoted = []
        out.append(_inline(line, names) + "<br>")
    if quoted:
        out.append(f'<blockquote class="mrkdwn-quote">{"<br>".join(quoted)}</blockquote>')
    return "".join(out).removesuffix("<br>")


def _inline(line: str, names: Names) -> str:
    """One line: tokens and code spans set aside, the rest escaped, then styled, then the set-aside put back."""
    kept: list[str] = []

    def keep(markup: str) -> str:
        kept.append(markup)
        return f"\ue000{len(kept) - 1}\ue001"

    line = _TOKEN.sub(lambda m: keep(token(m.group(1), names)), line)
    line = _CODE.sub(lambda m: keep(f"<code>{esc(_unescape(_plain_of(m.group(1), kept)))}</code>"), line)
    escaped = emoji(esc(_unescape(line)))
    for mark, tag in _STYLES:
        escaped = _style(escaped, mark, tag)
    return _SENTINEL.sub(lambda m: kept[int(m.group(1))], escaped)


def _style(escaped: str, mark: str, tag: str) -> str:
    """``*x*`` as ``<b>x</b>`` (and ``_``, ``~``): the marks must hug the text and not sit inside a word."""
    m = re.escape(mark)
    pattern = re.compile(rf"(?<![\w{m}]){m}(?=[^\s{m}<>])([^{m}\n<>]*?[^\s{m}<>])?{m}(?![\w{m}])")
    return pattern.sub(lambda match: f"<{tag}>{match.group(0)[1:-1]}</{tag}>", escaped)


def _plain_of(code: str, kept: list[str]) -> str:
    """A code span's text with any set-aside token shown by its visible text."""
    return _SENTINEL.sub(lambda m: _visible(kept[int(m.group(1))]), code)


def _unescape(text: str) -> str:
    for entity, char in _ENTITIES:
        text = text.replace(entity, char)
    return text


def token(body: str, names: Names) -> str:
    """One ``<…>`` token's body (``@U…``, ``#C…|name``, ``!here``, ``url|label``…) as HTML."""
    target, _, label = body.partition("|")
    kind = target[:1]
    if kind == "@":
        user = target[1:]
        shown = names.users.get(user) or _unescape(label) or user
        return f'<span class="mention" data-user="{esc(user)}">@{esc(shown)}</span>'
    if kind == "#":
        channel = target[1:]
        shown = names.channels.get(channel) or _unescape(label) or channel
        return f'<span class="channel-mention" data-channel="{esc(channel)}">#{esc(shown)}</span>'
    if kind == "!":
        return _special(target[1:], _unescape(label), names)
    if safe_href(_unescape(target)) is None and not label:
        return esc(f"<{_unescape(target)}>")  # not a link Slack would make: the text as typed
    return link(_unescape(target), _unescape(label))


def link(url: str, label: str = "") -> str:
    """A link to a :func:`safe_href` URL showing ``label`` (or the URL), opening in a new tab; any other URL
    is shown, never followed: ``label (url)``."""
    href = safe_href(url)
    if href is None:
        return esc(f"{label} ({url})" if label else url)
    return f'<a href="{esc(href)}" target="_blank" rel="noopener noreferrer nofollow">{esc(label or url)}</a>'


def _special(command: str, label: str, names: Names) -> str:
    """``<!here>``, ``<!channel>``, ``<!everyone>``, ``<!subteam^S…>``, ``<!date^…>``; others by their label."""
    head, _, rest = command.partition("^")
    if head in ("here", "channel", "everyone"):
        return f'<span class="mention mention-broadcast">@{esc(head)}</span>'
    if head == "subteam":
        shown = names.groups.get(rest) or label or rest
        shown = shown if shown.startswith("@") else "@" + shown
        return f'<span class="mention" data-group="{esc(rest)}">{esc(shown)}</span>'
    if head == "date":
        return _date(rest, label)
    return esc(label or f"<!{command}>")


_DATE_TOKENS: Mapping[str, Callable[[datetime], str]] = {
    "date_num": lambda d: d.strftime("%Y-%m-%d"),
    "date": lambda d: d.strftime("%B ") + f"{d.day}, {d.year}",
    "date_short": lambda d: d.strftime("%b ") + f"{d.day}, {d.year}",
    "date_long": lambda d: d.strftime("%A, %B ") + f"{d.day}, {d.year}",
    "date_pretty": lambda d: d.strftime("%B ") + f"{d.day}, {d.year}",
    "date_short_pretty": lambda d: d.strftime("%b ") + f"{d.day}, {d.year}",
    "date_long_pretty": lambda d: d.strftime("%A, %B ") + f"{d.day}, {d.year}",
    "time": lambda d: d.strftime("%H:%M"),
    "time_secs": lambda d: d.strftime("%H:%M:%S"),
}


def _date(rest: str, fallback: str) -> str:
    """``<!date^EPOCH^TOKENS[^LINK]|fallback>``: the time formatted (UTC) with its tokens, in a ``<time>``."""
    epoch, _, spec = rest.partition("^")
    tokens, _, _link = spec.partition("^")
    if not epoch.lstrip("-").isdigit() or len(epoch) > 12:
        return esc(fallback)
    try:
        moment = datetime.fromtimestamp(int(epoch), UTC)
    except (OverflowError, OSError, ValueError):
        return esc(fallback)
    shown = re.sub(
        r"\{([a-z_]+)\}",
        lambda m: _DATE_TOKENS[m.group(1)](moment) if m.group(1) in _DATE_TOKENS else m.group(0),
        _unescape(tokens),
    )
    return f'<time datetime="{moment.isoformat()}" title="{esc(fallback)}">{esc(shown or fallback)}</time>'
