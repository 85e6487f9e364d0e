"""Block Kit's interactive elements as HTML controls: buttons, static/user/channel selects, overflow menus,
images (as links), and the inputs of a modal (text, number, date and time inputs, checkboxes, radio buttons).

Each control carries what the page's script posts back as Slack would send it: ``data-action-id``,
``data-block-id``, ``data-kind`` (the element's type), a button's ``data-value`` (and ``data-url``, a confirm
dialog's ``data-confirm``), and the place it sits in (:class:`Place`: the message's channel and ts, or the view's
id). Controls that act at once have the class ``bk-action`` (a click, or a change of a menu); a modal's inputs
are named by their input block's id, as ``view_submission`` reports them, and act only on submit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.standin.workspace.mrkdwn import Names, esc, link, mrkdwn, plain_text, safe_href

_STYLES = frozenset({"primary", "danger"})


@dataclass(frozen=True)
class Place:
    """Where an element is: a message (``channel``, ``ts``) or a modal (``view_id``), and its block."""

    channel: str = ""
    ts: str = ""
    view_id: str = ""
    block_id: str = ""
    ephemeral: bool = False

    def attrs(self) -> str:
        """The place as ``data-*`` attributes (those that are set), each value escaped."""
        pairs = (
            ("channel", self.channel),
            ("ts", self.ts),
            ("view-id", self.view_id),
            ("block-id", self.block_id),
            ("ephemeral", "1" if self.ephemeral else ""),
        )
        return "".join(f' data-{name}="{esc(value)}"' for name, value in pairs if value)


def text_of(obj: Any, names: Names, *, inline: bool = False) -> str:
    """A text object (``plain_text`` or ``mrkdwn``) as HTML; anything else as nothing."""
    if not isinstance(obj, Mapping) or not isinstance(obj.get("text"), str):
        return ""
    if obj.get("type") == "mrkdwn":
        return mrkdwn(obj["text"], names)
    shown = plain_text(obj["text"], emojis=obj.get("emoji", True) is not False)
    return shown if inline else shown.replace("\n", "<br>")


def raw_text(obj: Any) -> str:
    """A text object's text, unrendered (for an attribute or an option's label); "" when there is none."""
    return str(obj["text"]) if isinstance(obj, Mapping) and isinstance(obj.get("text"), str) else ""


def element(item: Any, place: Place, names: Names) -> str:
    """An element of an actions block, a section's accessory or a context: its HTML control."""
    if not isinstance(item, Mapping):
        return ""
    kind = str(item.get("type") or "")
    if kind == "button":
        return button(item, place, names)
    if kind == "image":
        return image_link(item.get("image_url"), raw_text({"text": item.get("alt_text")}) or "image")
    if kind in ("plain_text", "mrkdwn"):
        return f'<span class="bk-text">{text_of(item, names)}</span>'
    if kind in _MENUS or kind == "overflow":
        return menu(item, place, names, acts=True)
    return f'<span class="bk-unsupported">[{esc(kind or "element")}]</span>'


def button(item: Mapping[str, Any], place: Place, names: Names) -> str:
    """A button: ``btn`` plus ``btn-primary``/``btn-danger`` for its style."""
    style = item.get("style")
    classes = "bk-action btn" + (f" btn-{style}" if style in _STYLES else "")
    extra = _common(item, place)
    if isinstance(item.get("value"), str):
        extra += f' data-value="{esc(item["value"])}"'
    href = safe_href(str(item.get("url") or ""))
    if href is not None:
        extra += f' data-url="{esc(href)}"'
    confirm = item.get("confirm")
    if isinstance(confirm, Mapping):
        question = " ".join(filter(None, (raw_text(confirm.get("title")), raw_text(confirm.get("text")))))
        extra += f' data-confirm="{esc(question or "Are you sure?")}"'
    label = text_of(item.get("text"), names, inline=True) or "button"
    return f'<button type="button" class="{classes}"{extra}>{label}</button>'


_MENUS = frozenset(
    {
        "static_select",
        "external_select",
        "users_select",
        "conversations_select",
        "channels_select",
        "multi_static_select",
        "multi_users_select",
        "multi_conversations_select",
        "multi_channels_select",
    }
)


def menu(item: Mapping[str, Any], place: Place, names: Names, *, acts: bool, name: str = "") -> str:
    """A select menu (static, users, conversations/channels, their multi- kinds) or an overflow menu as a
    ``<select>``; ``acts``: it posts ``block_actions`` on change (not in a modal's input block, whose value is
    ``name``d for the submission)."""
    kind = str(item.get("type") or "")
    chosen = _chosen(item)
    placeholder = raw_text(item.get("placeholder")) or ("\u22ef" if kind == "overflow" else "Select an item")
    rows = [f'<option value=""{"" if chosen else " selected"} disabled>{esc(placeholder)}</option>']
    for group_label, options in _option_groups(item, names):
        shown = "".join(
            f'<option value="{esc(value)}"{" selected" if value in chosen else ""}>{esc(label)}</option>'
            for value, label in options
        )
        rows.append(f'<optgroup label="{esc(group_label)}">{shown}</optgroup>' if group_label else shown)
    classes = ("bk-action " if acts else "") + ("bk-overflow" if kind == "overflow" else "bk-select")
    extra = _common(item, place) + (f' name="{esc(name)}"' if name else "")
    extra += " multiple" if kind.startswith("multi_") else ""
    return f'<select class="{classes}"{extra}>{"".join(rows)}</select>'


def _option_groups(item: Mapping[str, Any], names: Names) -> list[tuple[str, list[tuple[str, str]]]]:
    """The menu's options as (group label, [(value, label)]); a group label "" for options not in a group."""
    kind = str(item.get("type") or "").removeprefix("multi_")
    if kind == "users_select":
        return [("", sorted(names.users.items(), key=lambda pair: pair[1].lower()))]
    if kind in ("conversations_select", "channels_select"):
        return [("", [(cid, f"#{name}") for cid, name in sorted(names.channels.items(), key=lambda p: p[1])])]
    groups: list[tuple[str, list[tuple[str, str]]]] = [("", _options(item.get("options")))]
    for group in item.get("option_groups") or []:
        if isinstance(group, Mapping):
            groups.append((raw_text(group.get("label")) or "\u2014", _options(group.get("options"))))
    return groups


def _options(options: Any) -> list[tuple[str, str]]:
    return [
        (str(option.get("value") or ""), raw_text(option.get("text")))
        for option in (options if isinstance(options, list) else [])
        if isinstance(option, Mapping)
    ]


def _chosen(item: Mapping[str, Any]) -> set[str]:
    """The values selected at first: ``initial_option(s)``, ``initial_user(s)``, ``initial_conversation(s)``…"""
    chosen: set[str] = set()
    for key in ("initial_option", "initial_options"):
        found = item.get(key)
        for option in found if isinstance(found, list) else [found]:
            if isinstance(option, Mapping) and isinstance(option.get("value"), str):
                chosen.add(option["value"])
    for key in ("initial_user", "initial_conversation", "initial_channel"):
        if isinstance(item.get(key), str):
            chosen.add(item[key])
    for key in ("initial_users", "initial_conversations", "initial_channels"):
        if isinstance(item.get(key), list):
            chosen.update(str(value) for value in item[key])
    return chosen


def _common(item: Mapping[str, Any], place: Place) -> str:
    action_id = str(item.get("action_id") or "")
    kind = str(item.get("type") or "")
    return f' data-kind="{esc(kind)}" data-action-id="{esc(action_id)}"{place.attrs()}'


def image_link(url: Any, label: str) -> str:
    """An image as a link to it (a safe URL), else its label as text."""
    href = safe_href(url) if isinstance(url, str) else None
    if href is None:
        return f'<span class="bk-image">\U0001f5bc {esc(label)}</span>'
    return link(href, f"\U0001f5bc {label}").replace("<a ", '<a class="bk-image" ', 1)


def input_control(item: Any, place: Place, names: Names, *, name: str, optional: bool) -> str:
    """An input block's element as a form control named ``name`` (the block id)."""
    if not isinstance(item, Mapping):
        return ""
    kind = str(item.get("type") or "")
    common = _common(item, place) + f' name="{esc(name)}"' + ("" if optional else " required")
    placeholder = raw_text(item.get("placeholder"))
    common += f' placeholder="{esc(placeholder)}"' if placeholder else ""
    if kind == "plain_text_input":
        initial = str(item.get("initial_value") or "")
        limits = "".join(
            f' {attr}="{int(item[key])}"'
            for key, attr in (("max_length", "maxlength"), ("min_length", "minlength"))
            if isinstance(item.get(key), int) and not isinstance(item.get(key), bool)
        )
        if item.get("multiline"):
            return f'<textarea class="bk-input"{common}{limits}>{esc(initial)}</textarea>'
        return f'<input type="text" class="bk-input"{common}{limits} value="{esc(initial)}">'
    if kind == "number_input":
        step = "any" if item.get("is_decimal_allowed") else "1"
        bounds = "".join(
            f' {key.split("_")[0]}="{esc(str(item[key]))}"' for key in ("min_value", "max_value") if key in item
        )
        initial = esc(str(item.get("initial_value") or ""))
        return f'<input type="number" class="bk-input" step="{step}"{bounds}{common} value="{initial}">'
    if kind in ("datepicker", "timepicker", "email_text_input", "url_text_input"):
        html_type = {"datepicker": "date", "timepicker": "time", "email_text_input": "email"}.get(kind, "url")
        initial = item.get("initial_date") or item.get("initial_time") or item.get("initial_value") or ""
        return f'<input type="{html_type}" class="bk-input"{common} value="{esc(str(initial))}">'
    if kind in ("checkboxes", "radio_buttons"):
        return _choices(item, common, names, multiple=kind == "checkboxes")
    if kind in _MENUS:
        return menu(item, place, names, acts=False, name=name)
    return f'<span class="bk-unsupported">[{esc(kind or "input")}]</span>'


def _choices(item: Mapping[str, Any], common: str, names: Names, *, multiple: bool) -> str:
    kind = "checkbox" if multiple else "radio"
    chosen = _chosen(item)
    rows = []
    for option in item.get("options") or []:
        if not isinstance(option, Mapping):
            continue
        value = str(option.get("value") or "")
        checked = " checked" if value in chosen else ""
        label = text_of(option.get("text"), names, inline=True)
        rows.append(
            f'<label class="bk-choice"><input type="{kind}"{common} value="{esc(value)}"{checked}> {label}</label>'
        )
    return f'<div class="bk-choices">{"".join(rows)}</div>'
