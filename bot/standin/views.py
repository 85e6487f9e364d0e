"""Modals: ``views.open``, ``views.update`` and ``views.push`` as Slack answers them, the trigger ids they
exchange, what a user's submission sends and how the bot's answer to it is applied.

A trigger id is minted for each slash command and interaction the driver sends, for the user who acted; it is
good for one exchange within :data:`TRIGGER_LIFETIME` seconds of the stand-in's clock (``expired_trigger_id``
after that, ``exchanged_trigger_id`` on a second use, ``invalid_trigger_id`` for one never issued). A view must
be valid as Slack checks it (``invalid_arguments`` with Slack's ``[ERROR] … [json-pointer:/view/…]`` messages
otherwise): ``type`` ``modal``, a plain-text ``title`` (and ``submit``/``close``) of at most 24 characters, at
most 100 blocks of the types a modal takes, a ``submit`` when it has input blocks, ``private_metadata`` up to
3,000 characters, ``callback_id`` and ``external_id`` up to 255; at most 250 kB in all (``view_too_large``).
Each user has one stack of at most three views (``push_limit_reached``). ``views.update`` names the view by
``view_id`` or ``external_id`` (``not_found``), and a ``hash`` that is not the view's current one answers
``hash_conflict``; what was typed in an input block that keeps its ``block_id`` and ``action_id`` stays.

On submission (:meth:`ViewBook.submission`) the client's own rules come first: a required input left empty, a
value over the element's ``max_length`` (3,000 at most) or an option the menu lacks never reaches the bot
(:class:`ClientRefused`). The bot's answer (:meth:`ViewBook.answer`) then closes the view, shows ``errors``
under the named input blocks (which must be in the view), or ``update``s, ``push``es or ``clear``s the stack.

Views live in memory: a restarted stand-in has no modal open, as a reloaded Slack client has none.
"""

from __future__ import annotations

import re
import secrets
import string
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from bot.standin.api import ApiError, Args, Handler
from bot.standin.blocks_limits import (
    MAX_ID,
    MAX_INPUT_LENGTH,
    MAX_MODAL_BLOCKS,
    MODAL_BLOCK_TYPES,
    block_problems,
)
from bot.standin.clock import StandinClock
from bot.standin.workspace import Workspace

TRIGGER_LIFETIME = 3.0
MAX_VIEW_TEXT = 24  # title, submit, close
MAX_PRIVATE_METADATA = 3_000
MAX_VIEW_BYTES = 250_000
MAX_STACK = 3
_TRIGGER = re.compile(r"[0-9]+\.[0-9]+\.[0-9a-f]+")


class ClientRefused(ValueError):
    """What Slack's client would not let the user submit (the reason, as a sentence)."""


@dataclass
class _Trigger:
    user: str
    issued: float
    used: bool = False


class ViewBook:
    """Trigger ids, and each user's stack of open modals."""

    def __init__(self, clock: StandinClock, workspace: Workspace) -> None:
        self._clock = clock
        self._ws = workspace
        self._lock = threading.Lock()
        self._triggers: dict[str, _Trigger] = {}
        self._views: dict[str, dict[str, Any]] = {}  # by id, as the API answers them
        self._stacks: dict[str, list[str]] = {}  # user -> view ids, root first

    @property
    def methods(self) -> dict[str, Handler]:
        return {"views.open": self._open, "views.push": self._push, "views.update": self._update}

    def mint_trigger(self, user: str, issued_ago: float = 0.0) -> str:
        """A trigger id for an interaction by ``user``, issued ``issued_ago`` seconds ago."""
        digits = "".join(secrets.choice(string.digits) for _ in range(13))
        trigger_id = f"{digits}.{secrets.randbelow(10**11):011d}.{secrets.token_hex(16)}"
        with self._lock:
            self._triggers[trigger_id] = _Trigger(user, self._clock.now() - issued_ago)
        return trigger_id

    def stack(self, user: str) -> list[dict[str, Any]]:
        """The user's open views, root first."""
        with self._lock:
            return [self._views[view_id] for view_id in self._stacks.get(user, [])]

    # The Web API methods.

    def _open(self, args: Args) -> dict[str, Any]:
        view = _checked_view(args)
        with self._lock:
            user = self._exchange(args)
            self._check_external_id(view, None)
            for old in self._stacks.pop(user, []):
                self._views.pop(old, None)
            shaped = self._new_view(view, root=None, previous=None)
            self._stacks[user] = [shaped["id"]]
        return {"view": shaped}

    def _push(self, args: Args) -> dict[str, Any]:
        view = _checked_view(args)
        with self._lock:
            user = self._exchange(args)
            stack = self._stacks.get(user)
            if not stack:
                raise ApiError("not_found")
            if len(stack) >= MAX_STACK:
                raise ApiError("push_limit_reached")
            self._check_external_id(view, None)
            shaped = self._new_view(view, root=stack[0], previous=stack[-1])
            stack.append(shaped["id"])
        return {"view": shaped}

    def _update(self, args: Args) -> dict[str, Any]:
        if ("view_id" in args) == ("external_id" in args):
            raise ApiError("invalid_arguments", response_metadata={"messages": ["[ERROR] give view_id or external_id"]})
        view = _checked_view(args)
        with self._lock:
            current = self._find(args.text("view_id"), args.text("external_id"))
            if "hash" in args and args.text("hash") != current["hash"]:
                raise ApiError("hash_conflict")
            self._check_external_id(view, current["id"])
            return {"view": self._replace(current, view)}

    # Submissions.

    def submission(self, view_id: str, user: str, values: Mapping[str, str | None]) -> dict[str, Any]:
        """The view as a ``view_submission`` carries it when ``user`` submits ``values`` (by input block id:
        the text typed, or the value of the option picked); :class:`ClientRefused` for what Slack's client
        would not send, LookupError for a view that is not the user's open one."""
        with self._lock:
            stack = self._stacks.get(user) or []
            if not stack or stack[-1] != view_id:
                raise LookupError(f"{view_id} is not {user}'s open view")
            view = self._views[view_id]
            inputs = _inputs(view)
            unknown = set(values) - set(inputs)
            if unknown:
                raise LookupError(f"the view has no input block {sorted(unknown)[0]!r}")
            state: dict[str, Any] = {}
            for block_id, block in inputs.items():
                element = block["element"]
                value = values.get(block_id, _initial(element))
                if value in (None, "") and not block.get("optional"):
                    raise ClientRefused(f"{_label(block)} is required")
                state[block_id] = {element.get("action_id", ""): _element_state(block, element, value)}
            view["state"] = {"values": state}
            return dict(view)

    def answer(self, view_id: str, user: str, ack: Mapping[str, Any] | None) -> dict[str, Any]:
        """Apply the bot's answer to a submission of ``view_id``: ``{"ok", "action", "errors"?, "error"?,
        "views"}``; ``ok`` false (with why) where Slack would show the user its "trouble connecting" error."""
        action = str((ack or {}).get("response_action") or "close")
        with self._lock:
            stack = self._stacks.get(user) or []
            if view_id not in stack:
                return self._outcome(user, action, error="the view is not open")
            try:
                errors = self._apply(user, stack, view_id, action, ack or {})
            except ApiError as exc:
                return self._outcome(user, action, error=exc.error)
            return self._outcome(user, action, errors=errors)

    def _apply(
        self, user: str, stack: list[str], view_id: str, action: str, ack: Mapping[str, Any]
    ) -> dict[str, str] | None:
        if action == "close":
            stack.remove(view_id)
            self._views.pop(view_id, None)
        elif action == "clear":
            for old in self._stacks.pop(user, []):
                self._views.pop(old, None)
        elif action == "errors":
            errors = ack.get("errors")
            inputs = _inputs(self._views[view_id])
            if not isinstance(errors, dict) or not errors:
                raise ApiError("errors must be an object of input block ids to messages")
            if any(key not in inputs or not isinstance(text, str) or not text for key, text in errors.items()):
                raise ApiError("errors may name only the view's input blocks, each with a message")
            return dict(errors)
        elif action == "update":
            self._replace(self._views[view_id], _valid_view(ack.get("view")))
        elif action == "push":
            if len(stack) >= MAX_STACK:
                raise ApiError("push_limit_reached")
            stack.append(self._new_view(_valid_view(ack.get("view")), stack[0], stack[-1])["id"])
        else:
            raise ApiError(f"unknown response_action {action!r}")
        return None

    def _outcome(
        self, user: str, action: str, *, errors: dict[str, str] | None = None, error: str | None = None
    ) -> dict[str, Any]:
        outcome: dict[str, Any] = {"ok": error is None, "action": action}
        if errors is not None:
            outcome["errors"] = errors
        if error is not None:
            outcome["error"] = error
        outcome["views"] = [self._views[view_id] for view_id in self._stacks.get(user, [])]
        return outcome

    # Helpers (called with the lock held).

    def _exchange(self, args: Args) -> str:
        trigger_id = args.text("trigger_id") or args.text("interactivity_pointer")
        if not _TRIGGER.fullmatch(trigger_id):
            raise ApiError("invalid_trigger_id")
        trigger = self._triggers.get(trigger_id)
        if trigger is None:
            raise ApiError("invalid_trigger_id")
        if trigger.used:
            raise ApiError("exchanged_trigger_id")
        if self._clock.now() - trigger.issued > TRIGGER_LIFETIME:
            raise ApiError("expired_trigger_id")
        trigger.used = True
        return trigger.user

    def _find(self, view_id: str, external_id: str) -> dict[str, Any]:
        for view in self._views.values():
            if (view_id and view["id"] == view_id) or (external_id and view["external_id"] == external_id):
                return view
        raise ApiError("not_found")

    def _check_external_id(self, view: Mapping[str, Any], own_id: str | None) -> None:
        external = view.get("external_id") or ""
        if external and any(v["external_id"] == external and v["id"] != own_id for v in self._views.values()):
            raise ApiError("duplicate_external_id")

    def _new_view(self, view: Mapping[str, Any], root: str | None, previous: str | None) -> dict[str, Any]:
        view_id = "V" + secrets.token_hex(5).upper()
        shaped = self._shape(view, view_id, {"values": {}})
        shaped |= {"root_view_id": root or view_id, "previous_view_id": previous}
        self._views[view_id] = shaped
        return shaped

    def _replace(self, current: dict[str, Any], view: Mapping[str, Any]) -> dict[str, Any]:
        kept = {
            block_id: values
            for block_id, values in current["state"]["values"].items()
            if set(values) == {str(block["element"].get("action_id", "")) for block in _same_block(view, block_id)}
        }
        shaped = self._shape(view, current["id"], {"values": kept})
        shaped |= {key: current[key] for key in ("root_view_id", "previous_view_id")}
        self._views[current["id"]] = shaped
        return shaped

    def _shape(self, view: Mapping[str, Any], view_id: str, state: dict[str, Any]) -> dict[str, Any]:
        """A view as the API answers it."""
        return {
            "id": view_id,
            "team_id": self._ws.team_id,
            "type": "modal",
            "title": view["title"],
            "submit": view.get("submit"),
            "close": view.get("close"),
            "blocks": list(view["blocks"]),
            "private_metadata": view.get("private_metadata") or "",
            "callback_id": view.get("callback_id") or "",
            "external_id": view.get("external_id") or "",
            "state": state,
            "hash": f"{int(self._clock.now())}.{secrets.token_hex(4)}",
            "clear_on_close": bool(view.get("clear_on_close")),
            "notify_on_close": bool(view.get("notify_on_close")),
            "app_id": self._ws.app_id,
            "app_installed_team_id": self._ws.team_id,
            "bot_id": self._ws.bot_id,
        }


def _checked_view(args: Args) -> dict[str, Any]:
    if "view" not in args:
        raise ApiError("invalid_arguments", response_metadata={"messages": ["[ERROR] missing required field: view"]})
    raw = args.params["view"]
    if len(raw if isinstance(raw, str) else orjson.dumps(raw)) > MAX_VIEW_BYTES:
        raise ApiError("view_too_large")
    return _valid_view(args.json_value("view", "invalid_arguments"))


def _valid_view(view: Any) -> dict[str, Any]:
    """``view`` if Slack accepts it; else ``invalid_arguments`` with Slack's messages."""
    problems = list(view_problems(view))
    if problems:
        raise ApiError("invalid_arguments", response_metadata={"messages": [f"[ERROR] {p}" for p in problems]})
    assert isinstance(view, dict)
    return view


def view_problems(view: Any) -> list[str]:
    """Each way ``view`` breaks Slack's rules for a modal, as ``"<what> [json-pointer:/view/...]"``."""
    if not isinstance(view, dict):
        return ["must be a view object [json-pointer:/view]"]
    problems: list[str] = []
    if view.get("type") != "modal":
        problems.append("must be modal [json-pointer:/view/type]")
    for key in ("title", "submit", "close"):
        if key != "title" and view.get(key) is None:
            continue
        text = view.get(key)
        if not isinstance(text, dict) or text.get("type") != "plain_text" or not isinstance(text.get("text"), str):
            problems.append(f"must be a plain_text text object [json-pointer:/view/{key}]")
        elif not 0 < len(text["text"]) <= MAX_VIEW_TEXT:
            problems.append(f"must be 1 to {MAX_VIEW_TEXT} characters [json-pointer:/view/{key}/text]")
    blocks = view.get("blocks")
    if not isinstance(blocks, list):
        problems.append("must provide an array of blocks [json-pointer:/view/blocks]")
    else:
        problems += block_problems(blocks, limit=MAX_MODAL_BLOCKS, types=MODAL_BLOCK_TYPES, root="/view")
        has_input = any(isinstance(b, dict) and b.get("type") == "input" for b in blocks)
        if has_input and view.get("submit") is None:
            problems.append("must provide submit when the view has input blocks [json-pointer:/view/submit]")
    for key, limit in (("private_metadata", MAX_PRIVATE_METADATA), ("callback_id", MAX_ID), ("external_id", MAX_ID)):
        value = view.get(key)
        if value is not None and (not isinstance(value, str) or len(value) > limit):
            problems.append(f"must be a string of at most {limit} characters [json-pointer:/view/{key}]")
    return problems


def _inputs(view: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The view's input blocks by block id."""
    return {
        str(block.get("block_id")): block
        for block in view["blocks"]
        if block.get("type") == "input" and block.get("block_id")
    }


def _same_block(view: Mapping[str, Any], block_id: str) -> list[dict[str, Any]]:
    return [b for b in view["blocks"] if b.get("type") == "input" and b.get("block_id") == block_id]


def _label(block: Mapping[str, Any]) -> str:
    return str((block.get("label") or {}).get("text") or block.get("block_id"))


def _initial(element: Mapping[str, Any]) -> str | None:
    if element["type"] == "static_select":
        return str(element["initial_option"]["value"]) if element.get("initial_option") else None
    initial = element.get("initial_value")
    return None if initial is None else str(initial)


def _element_state(block: Mapping[str, Any], element: Mapping[str, Any], value: str | None) -> dict[str, Any]:
    """One input's entry in ``state.values``, after the client's checks."""
    kind = element["type"]
    if kind == "static_select":
        chosen = next((o for o in element.get("options") or [] if o.get("value") == value), None)
        if value is not None and chosen is None:
            raise ClientRefused(f"{_label(block)} has no option {value!r}")
        selected = {"text": chosen["text"], "value": value} if chosen else None
        return {"type": kind, "selected_option": selected}
    text = None if value in (None, "") else str(value)
    if kind == "plain_text_input" and text is not None:
        longest = min(int(element.get("max_length", MAX_INPUT_LENGTH)), MAX_INPUT_LENGTH)
        if len(text) > longest:
            raise ClientRefused(f"{_label(block)} takes at most {longest} characters")
        if len(text) < int(element.get("min_length", 0)):
            raise ClientRefused(f"{_label(block)} needs at least {element['min_length']} characters")
    if kind == "number_input" and text is not None:
        pattern = r"-?[0-9]+(\.[0-9]+)?" if element.get("is_decimal_allowed") else r"-?[0-9]+"
        if not re.fullmatch(pattern, text):
            raise ClientRefused(f"{_label(block)} takes a number")
    return {"type": kind, "value": text}
