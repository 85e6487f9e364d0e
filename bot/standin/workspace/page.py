"""The local workspace page, drawn whole on the server (so that a browser without script, or
``chromium --dump-dom``, shows the messages and their buttons); ``workspace.js`` keeps it live.

Ids the page's script and the browser tests use: ``#ws-user`` (the user picker), ``#ws-alert-menu`` and its
``button.ws-test-alert[data-sample]`` items, ``#ws-sidebar`` with ``a.ws-channel[data-channel]`` and their
``span.ws-unread``, ``#ws-messages`` (the channel's messages), ``#ws-composer`` with ``#ws-text``, the thread
panel ``#ws-thread`` with ``#ws-thread-messages`` and ``#ws-thread-composer``, ``#ws-modal`` (the open modal),
``#ws-status`` (what the last action did, or why it failed). ``body`` carries ``data-user``, ``data-channel``,
``data-thread-ts`` and ``data-feed`` (the token the page listens to ``/events`` with).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlencode

from bot.standin.store import Channel
from bot.standin.workspace import User
from bot.standin.workspace.alerts import Sample
from bot.standin.workspace.mrkdwn import esc

STATIC = "/workspace/static"


@dataclass(frozen=True)
class PageParts:
    """What one drawing of the page shows."""

    team: str
    user: str
    people: list[User]
    groups: Mapping[str, list[str]]
    """User group handle -> member ids (to say who is on call)."""
    channels: list[tuple[Channel, str, int]]
    """The conversations the user can open: channel, title, unread count."""
    channel: Channel
    title: str
    messages: list[str]
    thread_ts: str | None
    thread: list[str]
    modal: str
    samples: list[Sample]
    feed: str
    member: bool
    """The user may write in the channel."""


def render_page(parts: PageParts) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(parts.title)} · {esc(parts.team)} · incibot local workspace</title>"
        f'<link rel="stylesheet" href="{STATIC}/workspace.css"></head>'
        f'<body data-user="{esc(parts.user)}" data-channel="{esc(parts.channel.id)}"'
        f' data-thread-ts="{esc(parts.thread_ts or "")}" data-feed="{esc(parts.feed)}">'
        f'{_top(parts)}<div id="ws-layout">{_sidebar(parts)}{_main(parts)}{_thread(parts)}</div>'
        f'<div id="ws-modal"{"" if parts.modal else " hidden"}>{parts.modal}</div>'
        f'<script src="{STATIC}/workspace.js"></script></body></html>'
    )


def _link(user: str, channel: str, thread: str | None = None) -> str:
    query = {"as": user, "channel": channel} | ({"thread": thread} if thread else {})
    return "/?" + esc(urlencode(query))


def _top(parts: PageParts) -> str:
    roles: dict[str, list[str]] = {}
    for group, members in parts.groups.items():
        for member in members:
            roles.setdefault(member, []).append(group)
    options = "".join(
        f'<option value="{esc(person.id)}"{" selected" if person.id == parts.user else ""}>'
        f"{esc(person.real_name or person.name)} (@{esc(person.name)})"
        f"{esc(' · ' + ', '.join('@' + g for g in roles[person.id])) if person.id in roles else ''}</option>"
        for person in parts.people
    )
    samples = "".join(
        f'<li><button type="button" class="ws-test-alert" data-sample="{esc(sample.name)}">{esc(sample.title)}'
        "</button></li>"
        for sample in parts.samples
    )
    return (
        f'<header id="ws-top"><span class="ws-team">{esc(parts.team)}</span>'
        '<form id="ws-user-form" method="get" action="/">'
        f'<label for="ws-user">Acting as</label> <select id="ws-user" name="as">{options}</select>'
        f'<input type="hidden" name="channel" value="{esc(parts.channel.id)}">'
        '<noscript><button type="submit">Switch</button></noscript></form>'
        '<div id="ws-alerts"><button type="button" id="ws-alert-menu" aria-haspopup="true" aria-expanded="false">'
        f'Send test alert</button><ul id="ws-alert-list" hidden>{samples}</ul></div>'
        '<span id="ws-status" role="status" aria-live="polite"></span></header>'
    )


def _sidebar(parts: PageParts) -> str:
    channels: list[str] = []
    dms: list[str] = []
    for channel, title, unread in parts.channels:
        current = " ws-current" if channel.id == parts.channel.id else ""
        badge = f'<span class="ws-unread" data-channel="{esc(channel.id)}"{"" if unread else " hidden"}>{unread}</span>'
        item = (
            f'<li><a class="ws-channel{current}" data-channel="{esc(channel.id)}"'
            f' href="{_link(parts.user, channel.id)}">{esc(title)}{badge}</a></li>'
        )
        (dms if channel.is_im else channels).append(item)
    if not dms:
        dms.append(
            f'<li><a class="ws-channel ws-open-dm" href="/?{esc(urlencode({"as": parts.user, "dm": "1"}))}">'
            "incibot</a></li>"
        )
    return (
        f'<nav id="ws-sidebar"><h2>Channels</h2><ul>{"".join(channels)}</ul>'
        f"<h2>Direct messages</h2><ul>{''.join(dms)}</ul></nav>"
    )


def _composer(form_id: str, parts: PageParts, placeholder: str, thread_ts: str = "") -> str:
    disabled = "" if parts.member else " disabled"
    note = "" if parts.member else '<p class="ws-not-member">You are not a member of this channel.</p>'
    return (
        f'<form id="{form_id}" class="ws-composer" data-thread-ts="{esc(thread_ts)}">{note}'
        f'<textarea name="text" rows="2" placeholder="{esc(placeholder)}"{disabled}'
        f"{' id=ws-text' if not thread_ts else ''}></textarea>"
        f'<button type="submit" class="btn btn-primary"{disabled}>Send</button></form>'
    )


def _main(parts: PageParts) -> str:
    hint = f"Message {parts.title} (or a /command, e.g. /incident list)"
    empty = '<p class="ws-empty">No messages yet. Try "Send test alert".</p>' if not parts.messages else ""
    return (
        f'<main id="ws-main"><h1 id="ws-channel-title">{esc(parts.title)}</h1>'
        f'<div id="ws-messages" class="ws-pane" data-pane="channel">{empty}{"".join(parts.messages)}</div>'
        f"{_composer('ws-composer', parts, hint)}</main>"
    )


def _thread(parts: PageParts) -> str:
    if parts.thread_ts is None:
        return '<aside id="ws-thread" hidden></aside>'
    return (
        f'<aside id="ws-thread" data-thread-ts="{esc(parts.thread_ts)}">'
        f'<header class="ws-thread-head"><h2>Thread</h2><a class="ws-thread-close"'
        f' href="{_link(parts.user, parts.channel.id)}" aria-label="Close">&times;</a></header>'
        f'<div id="ws-thread-messages" class="ws-pane" data-pane="thread">{"".join(parts.thread)}</div>'
        f"{_composer('ws-thread-composer', parts, 'Reply…', parts.thread_ts)}</aside>"
    )
