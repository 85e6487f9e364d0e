"""The stand-in's messages and modals as HTML, for the local workspace page: pure functions of what the
stand-in stores (:class:`~bot.standin.store.Message`) and what ``views.open`` received.

:func:`render_message` draws one message: author, time, its Block Kit (header, section with text, fields and an
accessory, context, divider, actions, image, input) or else its mrkdwn text, its attachments, "(edited)", a
deleted message's tombstone and the thread's reply count. :func:`render_view` draws a modal as a ``<form>``.
Every string is escaped (see :mod:`bot.standin.workspace.mrkdwn` and :mod:`bot.standin.workspace.elements`
for the rules and the ``data-*`` attributes the page's script posts back).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from bot.standin.store import Channel, Content, Message, parse_ts
from bot.standin.workspace import User
from bot.standin.workspace.elements import Place, element, image_link, input_control, raw_text, text_of
from bot.standin.workspace.mrkdwn import Names, esc, link, mrkdwn, plain_text, token

_COLORS = {"good": "#2eb67d", "warning": "#ecb22e", "danger": "#e01e5a"}


def names_of(users: Iterable[User], channels: Iterable[Channel]) -> Names:
    """What mentions show: each user's display name (else real name, else handle), each channel's name (a
    direct message by the name of its user)."""
    people = {user.id: user.display_name or user.real_name or user.name for user in users}
    rooms = {
        channel.id: people.get(channel.im_user, channel.name) if channel.im_user else channel.name
        for channel in channels
    }
    return Names(people, rooms)


def render_message(
    message: Message,
    users: Mapping[str, User],
    channels: Mapping[str, Channel],
    *,
    replies: int = 0,
    ephemeral: bool = False,
) -> str:
    """One message as an ``<article class="msg">`` with ``data-channel``, ``data-ts`` (and ``data-thread-ts``
    for a reply). ``users``/``channels`` by id name the author and mentions; ``replies``: the thread's reply
    count (a button with ``data-thread-ts`` opens it); ``ephemeral``: "Only visible to you"."""
    names = names_of(users.values(), channels.values())
    place = Place(channel=message.channel_id, ts=message.ts, ephemeral=ephemeral)
    author = users.get(message.user)
    shown = (author.display_name or author.real_name or author.name) if author else message.user
    badge = '<span class="msg-app">APP</span>' if author is not None and author.is_bot else ""
    attrs = f' data-channel="{esc(message.channel_id)}" data-ts="{esc(message.ts)}"'
    if message.thread_ts:
        attrs += f' data-thread-ts="{esc(message.thread_ts)}"'
    classes = "msg" + (" msg-ephemeral" if ephemeral else "") + (" msg-deleted" if message.deleted else "")
    head = (
        f'<header class="msg-head"><span class="msg-avatar" aria-hidden="true">{esc(shown[:1].upper())}</span>'
        f'<span class="msg-author" data-user="{esc(message.user)}">{esc(shown)}</span>{badge}'
        f"{_time(message.ts)}</header>"
    )
    if message.deleted:
        body = '<div class="msg-body"><em>This message was deleted.</em></div>'
    else:
        body = f'<div class="msg-body">{render_content(message.content, names, place)}</div>'
    tail = ""
    if message.edited_ts and not message.deleted:
        tail += '<span class="msg-edited">(edited)</span>'
    if ephemeral:
        tail += '<span class="msg-only-you">Only visible to you</span>'
    if replies > 0:
        word = "reply" if replies == 1 else "replies"
        tail += (
            f'<button type="button" class="thread-link" data-channel="{esc(message.channel_id)}"'
            f' data-thread-ts="{esc(message.ts)}">{replies} {word}</button>'
        )
    foot = f'<footer class="msg-foot">{tail}</footer>' if tail else ""
    anchor = esc(message_anchor(message.channel_id, message.ts))
    return f'<article class="{classes}" id="{anchor}"{attrs}>{head}{body}{foot}</article>'


def message_anchor(channel_id: str, ts: str) -> str:
    """The element id of a message (``msg-C0INCIDENTS-1712345678_000100``), for the page to replace it."""
    return f"msg-{channel_id}-{ts.replace('.', '_')}"


def ephemeral_message(channel_id: str, entry: Mapping[str, Any], author: str) -> Message:
    """An entry of :meth:`Store.ephemerals <bot.standin.store.Store.ephemerals>` as a message by ``author``
    (the bot), for :func:`render_message` with ``ephemeral=True``."""
    content = Content(str(entry.get("text") or ""), entry.get("blocks"))
    return Message(channel_id, str(entry["ts"]), author, content, entry.get("thread_ts"), None, None)


def render_content(content: Content, names: Names, place: Place) -> str:
    """A message's body: its blocks when it has any (Slack then shows no ``text``), else its text as mrkdwn;
    then its attachments."""
    if content.blocks:
        body = render_blocks(content.blocks, names, place)
    else:
        body = f'<div class="msg-text">{mrkdwn(content.text, names)}</div>'
    return body + "".join(_attachment(item, names, place) for item in content.attachments or [])


def render_blocks(blocks: Iterable[Any], names: Names, place: Place) -> str:
    """Block Kit blocks as HTML, each in a ``<div class="bk bk-TYPE">`` with ``data-block-id``."""
    return "".join(_block(block, names, place) for block in blocks if isinstance(block, Mapping))


def render_view(
    view: Mapping[str, Any],
    users: Mapping[str, User] | None = None,
    channels: Mapping[str, Channel] | None = None,
    *,
    errors: Mapping[str, str] | None = None,
) -> str:
    """A modal (as ``views.open`` answers it) as ``<form class="modal" data-view-id data-callback-id>``: title,
    blocks (input blocks as form controls named by block id), ``errors`` from the bot's answer under their
    input blocks, and Close (``data-close``) / submit buttons."""
    names = names_of((users or {}).values(), (channels or {}).values())
    view_id = str(view.get("id") or "")
    place = Place(view_id=view_id)
    title = esc(raw_text(view.get("title")) or "Modal")
    close = esc(raw_text(view.get("close")) or "Cancel")
    submit = raw_text(view.get("submit"))
    callback = esc(str(view.get("callback_id") or ""))
    parts = [
        f'<form class="modal" data-view-id="{esc(view_id)}" data-callback-id="{callback}">',
        f'<header class="modal-head"><h2 class="modal-title">{title}</h2></header><div class="modal-body">',
    ]
    state = (view.get("state") or {}).get("values") or {}
    for block in view.get("blocks") or []:
        if isinstance(block, Mapping) and block.get("type") == "input":
            block_id = str(block.get("block_id") or "")
            filled = _filled(block, state.get(block_id))
            parts.append(_input_block(filled, names, place, (errors or {}).get(block_id)))
        elif isinstance(block, Mapping):
            parts.append(_block(block, names, place))
    parts.append('</div><footer class="modal-foot">')
    parts.append(f'<button type="button" class="btn modal-close" data-close="1">{close}</button>')
    if submit:
        parts.append(f'<button type="submit" class="btn btn-primary modal-submit">{esc(submit)}</button>')
    parts.append("</footer></form>")
    return "".join(parts)


def _time(ts: str) -> str:
    micros = parse_ts(ts)
    if micros is None:
        return ""
    moment = datetime.fromtimestamp(micros / 1_000_000, UTC)
    return f'<time class="msg-time" datetime="{moment.isoformat()}">{moment:%H:%M}</time>'


def _block(block: Mapping[str, Any], names: Names, place: Place) -> str:
    kind = str(block.get("type") or "")
    block_id = str(block.get("block_id") or "")
    here = Place(place.channel, place.ts, place.view_id, block_id, place.ephemeral)
    inner = _BLOCKS[kind](block, names, here) if kind in _BLOCKS else f"[unsupported block: {esc(kind)}]"
    kind_class = esc(kind) if kind in _BLOCKS else "unknown"
    block_attr = f' data-block-id="{esc(block_id)}"' if block_id else ""
    return f'<div class="bk bk-{kind_class}"{block_attr}>{inner}</div>'


def _header(block: Mapping[str, Any], names: Names, place: Place) -> str:
    return f"<h3>{text_of(block.get('text'), names, inline=True)}</h3>"


def _section(block: Mapping[str, Any], names: Names, place: Place) -> str:
    parts = []
    if "text" in block:
        parts.append(f'<div class="bk-section-text">{text_of(block.get("text"), names)}</div>')
    fields = block.get("fields")
    if isinstance(fields, list) and fields:
        cells = "".join(f'<div class="bk-field">{text_of(item, names)}</div>' for item in fields)
        parts.append(f'<div class="bk-fields">{cells}</div>')
    main = f'<div class="bk-section-main">{"".join(parts)}</div>'
    accessory = block.get("accessory")
    if accessory is None:
        return main
    return f'{main}<div class="bk-accessory">{element(accessory, place, names)}</div>'


def _context(block: Mapping[str, Any], names: Names, place: Place) -> str:
    items = block.get("elements")
    return "".join(element(item, place, names) for item in items) if isinstance(items, list) else ""


def _divider(block: Mapping[str, Any], names: Names, place: Place) -> str:
    return "<hr>"


def _actions(block: Mapping[str, Any], names: Names, place: Place) -> str:
    items = block.get("elements")
    return "".join(element(item, place, names) for item in items) if isinstance(items, list) else ""


def _image(block: Mapping[str, Any], names: Names, place: Place) -> str:
    label = raw_text(block.get("title")) or str(block.get("alt_text") or "image")
    return image_link(block.get("image_url"), label)


def _markdown(block: Mapping[str, Any], names: Names, place: Place) -> str:
    """A ``markdown`` block (standard Markdown): shown as its text, line breaks kept."""
    return f'<div class="bk-markdown">{plain_text(str(block.get("text") or "")).replace(chr(10), "<br>")}</div>'


def _rich_text(block: Mapping[str, Any], names: Names, place: Place) -> str:
    """A ``rich_text`` block (what Slack's composer sends): its sections, lists, quotes and code as text."""
    return "".join(_rich(item, names) for item in block.get("elements") or [] if isinstance(item, Mapping))


def _rich(item: Mapping[str, Any], names: Names) -> str:
    kind = item.get("type")
    children = [child for child in item.get("elements") or [] if isinstance(child, Mapping)]
    if kind == "rich_text_list":
        tag = "ol" if item.get("style") == "ordered" else "ul"
        return f"<{tag}>{''.join(f'<li>{_rich(child, names)}</li>' for child in children)}</{tag}>"
    inner = "".join(_rich_leaf(child, names) for child in children)
    if kind == "rich_text_preformatted":
        return f'<pre class="mrkdwn-pre">{inner}</pre>'
    if kind == "rich_text_quote":
        return f'<blockquote class="mrkdwn-quote">{inner}</blockquote>'
    return f"<div>{inner}</div>"


def _rich_leaf(leaf: Mapping[str, Any], names: Names) -> str:
    kind = leaf.get("type")
    if kind in ("user", "channel", "broadcast"):
        sigil, key = {"user": ("@", "user_id"), "channel": ("#", "channel_id"), "broadcast": ("!", "range")}[kind]
        return token(sigil + str(leaf.get(key) or ""), names)
    if kind == "emoji":
        return plain_text(f":{leaf.get('name')}:")
    if kind == "link":
        return link(str(leaf.get("url") or ""), str(leaf.get("text") or ""))
    text = esc(str(leaf.get("text") or "")).replace("\n", "<br>")
    style = leaf.get("style")
    style = style if isinstance(style, Mapping) else {}
    for key, tag in (("bold", "b"), ("italic", "i"), ("strike", "s"), ("code", "code")):
        if style.get(key):
            text = f"<{tag}>{text}</{tag}>"
    return text


def _filled(block: Mapping[str, Any], state: Any) -> Mapping[str, Any]:
    """An input block showing what was typed or picked in it (its ``state.values`` entry) instead of its
    initial value, as a modal shown again after the bot's ``errors`` keeps it."""
    element = block.get("element")
    if not isinstance(element, Mapping) or not isinstance(state, Mapping):
        return block
    entry = state.get(str(element.get("action_id") or ""))
    if not isinstance(entry, Mapping):
        return block
    if "selected_option" in entry:
        chosen = entry["selected_option"]
        return {**block, "element": {**element, "initial_option": chosen}}
    if "value" in entry:
        return {**block, "element": {**element, "initial_value": entry["value"]}}
    return block


def _input_block(block: Mapping[str, Any], names: Names, place: Place, error: str | None) -> str:
    block_id = str(block.get("block_id") or "")
    optional = bool(block.get("optional"))
    here = Place(view_id=place.view_id, block_id=block_id)
    label = text_of(block.get("label"), names, inline=True)
    marker = ' <span class="bk-optional">(optional)</span>' if optional else ""
    control = input_control(block.get("element"), here, names, name=block_id, optional=optional)
    hint = text_of(block.get("hint"), names)
    parts = [f'<label class="bk-label">{label}{marker}</label>{control}']
    if hint:
        parts.append(f'<div class="bk-hint">{hint}</div>')
    if error:
        parts.append(f'<div class="bk-error" role="alert">{esc(error)}</div>')
    return f'<div class="bk bk-input" data-block-id="{esc(block_id)}">{"".join(parts)}</div>'


def _attachment(item: Any, names: Names, place: Place) -> str:
    """A legacy attachment: a coloured bar, pretext, title (linked when safe), text, fields and blocks."""
    if not isinstance(item, Mapping):
        return ""
    color = str(item.get("color") or "")
    color = _COLORS.get(color, color if _is_hex_color(color) else "#ddd")
    parts = []
    if isinstance(item.get("pretext"), str):
        parts.append(f'<div class="att-pretext">{mrkdwn(item["pretext"], names)}</div>')
    if isinstance(item.get("title"), str):
        title = esc(item["title"])
        if isinstance(item.get("title_link"), str):
            title = link(item["title_link"], item["title"])
        parts.append(f'<div class="att-title"><b>{title}</b></div>')
    if isinstance(item.get("text"), str):
        parts.append(f'<div class="att-text">{mrkdwn(item["text"], names)}</div>')
    for field in item.get("fields") or []:
        if isinstance(field, Mapping):
            parts.append(
                f'<div class="bk-field"><b>{esc(str(field.get("title") or ""))}</b><br>'
                f"{mrkdwn(str(field.get('value') or ''), names)}</div>"
            )
    if isinstance(item.get("blocks"), list):
        parts.append(render_blocks(item["blocks"], names, place))
    return f'<div class="att" style="border-left-color:{color}">{"".join(parts)}</div>'


def _is_hex_color(text: str) -> bool:
    return len(text) in (4, 7) and text.startswith("#") and all(c in "0123456789abcdefABCDEF" for c in text[1:])


_BLOCKS = {
    "header": _header,
    "section": _section,
    "context": _context,
    "divider": _divider,
    "actions": _actions,
    "image": _image,
    "markdown": _markdown,
    "rich_text": _rich_text,
}
