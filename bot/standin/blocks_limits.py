"""Slack's limits on message content, checked the way ``chat.postMessage`` checks them.

A message needs text, blocks or attachments (``no_text``); its text may not exceed 40,000 characters
(``msg_too_long``); its blocks must be a list (``invalid_blocks_format``) and respect Block Kit's limits
(``invalid_blocks``, with Slack-style messages that point at the offending field).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

MAX_TEXT = 40_000
MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3_000
MAX_SECTION_FIELDS = 10
MAX_FIELD_TEXT = 2_000
MAX_HEADER_TEXT = 150
MAX_MARKDOWN_TEXT = 12_000
MAX_ACTIONS_ELEMENTS = 25
MAX_CONTEXT_ELEMENTS = 10
MAX_BUTTON_TEXT = 75
MAX_BUTTON_VALUE = 2_000
MAX_SELECT_OPTIONS = 100
MAX_OPTION_TEXT = 75
MAX_OPTION_VALUE = 150
MAX_PLACEHOLDER = 150
MAX_ID = 255

MESSAGE_BLOCK_TYPES = frozenset(
    {"actions", "context", "divider", "file", "header", "image", "markdown", "rich_text", "section", "video"}
)
MODAL_BLOCK_TYPES = MESSAGE_BLOCK_TYPES - {"markdown"} | {"input"}
MAX_MODAL_BLOCKS = 100
MAX_LABEL = 2_000
MAX_INPUT_LENGTH = 3_000
INPUT_ELEMENTS = frozenset({"plain_text_input", "static_select", "number_input"})


class ContentError(Exception):
    """A message Slack would refuse: ``error`` is Slack's code, ``details`` its ``[ERROR]`` messages."""

    def __init__(self, error: str, details: list[str] | None = None) -> None:
        super().__init__(error)
        self.error = error
        self.details = details or []


def check_message(text: str, blocks: Any, attachments: Any) -> None:
    """Raise :class:`ContentError` for content ``chat.postMessage`` would refuse."""
    if not text and not blocks and not attachments:
        raise ContentError("no_text")
    if len(text) > MAX_TEXT:
        raise ContentError("msg_too_long")
    if blocks is None:
        return
    if not isinstance(blocks, list):
        raise ContentError("invalid_blocks_format")
    problems = list(block_problems(blocks))
    if problems:
        raise ContentError("invalid_blocks", problems)


def block_problems(
    blocks: list[Any], *, limit: int = MAX_BLOCKS, types: frozenset[str] = MESSAGE_BLOCK_TYPES, root: str = ""
) -> Iterator[str]:
    """Each way ``blocks`` breaks Block Kit's limits, as ``"<what> [json-pointer:/blocks/...]"``; a modal's
    blocks pass their own ``limit`` and ``types`` and ``root="/view"``."""
    if len(blocks) > limit:
        yield f"must be less than {limit + 1} items [json-pointer:{root}/blocks]"
    seen_ids: set[str] = set()
    for index, block in enumerate(blocks):
        where = f"{root}/blocks/{index}"
        if not isinstance(block, dict) or block.get("type") not in types:
            yield f"must provide a known block type [json-pointer:{where}/type]"
            continue
        block_id = block.get("block_id")
        if block_id is not None:
            if not isinstance(block_id, str) or not 0 < len(block_id) <= MAX_ID:
                yield f"must be a string of 1 to {MAX_ID} characters [json-pointer:{where}/block_id]"
            elif block_id in seen_ids:
                yield f"duplicate block_id [json-pointer:{where}/block_id]"
            seen_ids.add(str(block_id))
        yield from _BLOCK_CHECKS.get(block["type"], _no_checks)(block, where)


def _no_checks(_block: dict[str, Any], _where: str) -> Iterator[str]:
    return iter(())


def _text_problems(text: Any, where: str, limit: int, *, plain_only: bool = False) -> Iterator[str]:
    allowed = ("plain_text",) if plain_only else ("plain_text", "mrkdwn")
    if not isinstance(text, dict) or text.get("type") not in allowed or not isinstance(text.get("text"), str):
        yield f"must be a {' or '.join(allowed)} text object [json-pointer:{where}]"
    elif not text["text"]:
        yield f"must be more than 0 characters [json-pointer:{where}/text]"
    elif len(text["text"]) > limit:
        yield f"must be less than {limit + 1} characters [json-pointer:{where}/text]"
    else:  # a text object has exactly its type's properties: emoji for plain_text, verbatim for mrkdwn
        flag = "emoji" if text["type"] == "plain_text" else "verbatim"
        for name in sorted(set(text) - {"type", "text", flag}):
            yield f"invalid additional property: {name} [json-pointer:{where}/{name}]"
        if flag in text and not isinstance(text[flag], bool):
            yield f"must be a boolean [json-pointer:{where}/{flag}]"


def _section(block: dict[str, Any], where: str) -> Iterator[str]:
    if "text" not in block and "fields" not in block:
        yield f"must provide text or fields [json-pointer:{where}]"
    if "text" in block:
        yield from _text_problems(block["text"], f"{where}/text", MAX_SECTION_TEXT)
    fields = block.get("fields", [])
    if not isinstance(fields, list) or len(fields) > MAX_SECTION_FIELDS:
        yield f"must be a list of at most {MAX_SECTION_FIELDS} items [json-pointer:{where}/fields]"
    else:
        for number, item in enumerate(fields):
            yield from _text_problems(item, f"{where}/fields/{number}", MAX_FIELD_TEXT)
    if "accessory" in block:
        yield from _element_problems(block["accessory"], f"{where}/accessory")


def _header(block: dict[str, Any], where: str) -> Iterator[str]:
    yield from _text_problems(block.get("text"), f"{where}/text", MAX_HEADER_TEXT, plain_only=True)


def _markdown(block: dict[str, Any], where: str) -> Iterator[str]:
    text = block.get("text")
    if not isinstance(text, str) or not 0 < len(text) <= MAX_MARKDOWN_TEXT:
        yield f"must be a string of 1 to {MAX_MARKDOWN_TEXT} characters [json-pointer:{where}/text]"


def _actions(block: dict[str, Any], where: str) -> Iterator[str]:
    elements = block.get("elements")
    if not isinstance(elements, list) or not elements:
        yield f"must provide elements [json-pointer:{where}/elements]"
        return
    if len(elements) > MAX_ACTIONS_ELEMENTS:
        yield f"must be less than {MAX_ACTIONS_ELEMENTS + 1} items [json-pointer:{where}/elements]"
    action_ids: set[str] = set()
    for number, element in enumerate(elements):
        yield from _element_problems(element, f"{where}/elements/{number}")
        action_id = element.get("action_id") if isinstance(element, dict) else None
        if isinstance(action_id, str) and action_id in action_ids:
            yield f"duplicate action_id [json-pointer:{where}/elements/{number}/action_id]"
        action_ids.add(str(action_id))


def _context(block: dict[str, Any], where: str) -> Iterator[str]:
    elements = block.get("elements")
    if not isinstance(elements, list) or not 0 < len(elements) <= MAX_CONTEXT_ELEMENTS:
        yield f"must provide 1 to {MAX_CONTEXT_ELEMENTS} elements [json-pointer:{where}/elements]"
        return
    for number, element in enumerate(elements):
        if isinstance(element, dict) and element.get("type") in ("plain_text", "mrkdwn"):
            yield from _text_problems(element, f"{where}/elements/{number}", MAX_SECTION_TEXT)


def _element_problems(element: Any, where: str) -> Iterator[str]:
    if not isinstance(element, dict) or not isinstance(element.get("type"), str):
        yield f"must provide an element type [json-pointer:{where}/type]"
        return
    action_id = element.get("action_id")
    if action_id is not None and (not isinstance(action_id, str) or len(action_id) > MAX_ID):
        yield f"must be a string of at most {MAX_ID} characters [json-pointer:{where}/action_id]"
    if element["type"] == "static_select":
        yield from _static_select_problems(element, where)
    if element["type"] != "button":
        return
    yield from _text_problems(element.get("text"), f"{where}/text", MAX_BUTTON_TEXT, plain_only=True)
    value = element.get("value")
    if value is not None and (not isinstance(value, str) or len(value) > MAX_BUTTON_VALUE):
        yield f"must be less than {MAX_BUTTON_VALUE + 1} characters [json-pointer:{where}/value]"


def _static_select_problems(element: dict[str, Any], where: str) -> Iterator[str]:
    """A static select menu: 1 to 100 options of plain text (75) and a value (150), an optional plain-text
    placeholder (150), and an initial option that is exactly one of its options."""
    if "placeholder" in element:
        yield from _text_problems(element["placeholder"], f"{where}/placeholder", MAX_PLACEHOLDER, plain_only=True)
    options = element.get("options")
    if not isinstance(options, list) or not 0 < len(options) <= MAX_SELECT_OPTIONS:
        yield f"must provide 1 to {MAX_SELECT_OPTIONS} options [json-pointer:{where}/options]"
        return
    for number, option in enumerate(options):
        yield from _option_problems(option, f"{where}/options/{number}")
    if "initial_option" in element and element["initial_option"] not in options:
        yield f"must match one of the options [json-pointer:{where}/initial_option]"


def _option_problems(option: Any, where: str) -> Iterator[str]:
    if not isinstance(option, dict):
        yield f"must be an option object [json-pointer:{where}]"
        return
    yield from _text_problems(option.get("text"), f"{where}/text", MAX_OPTION_TEXT, plain_only=True)
    value = option.get("value")
    if not isinstance(value, str) or not 0 < len(value) <= MAX_OPTION_VALUE:
        yield f"must be a string of 1 to {MAX_OPTION_VALUE} characters [json-pointer:{where}/value]"


def _input(block: dict[str, Any], where: str) -> Iterator[str]:
    """An input block (modals only): a plain-text label, one input element, an optional hint."""
    yield from _text_problems(block.get("label"), f"{where}/label", MAX_LABEL, plain_only=True)
    if "hint" in block:
        yield from _text_problems(block["hint"], f"{where}/hint", MAX_LABEL, plain_only=True)
    if "optional" in block and not isinstance(block["optional"], bool):
        yield f"must be a boolean [json-pointer:{where}/optional]"
    element = block.get("element")
    if not isinstance(element, dict) or element.get("type") not in INPUT_ELEMENTS:
        yield f"must provide a known input element [json-pointer:{where}/element]"
        return
    yield from _element_problems(element, f"{where}/element")
    if element["type"] == "plain_text_input":
        yield from _text_input_problems(element, f"{where}/element")
    if element["type"] == "number_input" and not isinstance(element.get("is_decimal_allowed"), bool):
        yield f"must provide is_decimal_allowed [json-pointer:{where}/element/is_decimal_allowed]"


def _text_input_problems(element: dict[str, Any], where: str) -> Iterator[str]:
    if "placeholder" in element:
        yield from _text_problems(element["placeholder"], f"{where}/placeholder", MAX_PLACEHOLDER, plain_only=True)
    for key, low in (("min_length", 0), ("max_length", 1)):
        value = element.get(key, low)
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= MAX_INPUT_LENGTH:
            yield f"must be an integer from {low} to {MAX_INPUT_LENGTH} [json-pointer:{where}/{key}]"
    initial = element.get("initial_value")
    if initial is not None and (not isinstance(initial, str) or len(initial) > MAX_INPUT_LENGTH):
        yield f"must be a string of at most {MAX_INPUT_LENGTH} characters [json-pointer:{where}/initial_value]"


_BLOCK_CHECKS = {
    "input": _input,
    "section": _section,
    "header": _header,
    "markdown": _markdown,
    "actions": _actions,
    "context": _context,
}
