"""Both Slack app manifests ask for exactly the scopes and events incibot's code uses.

The Web API methods come from a scan of ``bot/``: every identifier or string naming a slack_sdk ``WebClient``
method, as an attribute (``chat_postMessage``) or as Slack names it (``"chat.postMessage"``, e.g. passed to
``api_call``); the events come from the ``app.event("…")`` registrations (a ``message`` listener's module names its
``message.*`` subscriptions);
Slack's method → scope table (:mod:`bot.slack.scopes`) turns them into scopes.
"""

from __future__ import annotations

import io
import re
import tokenize
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from slack_sdk import WebClient

from bot.slack import scopes

ROOT = Path(__file__).resolve().parents[1]
MANIFESTS = sorted((ROOT / "deploy").glob("slack-manifest*.yml"))
NOT_CALLERS = {ROOT / "bot" / "slack" / "scopes.py"}  # the table names every method it knows
_EVENT = re.compile(r"""\.event\(\s*(?:["']|\{\s*["']type["']\s*:\s*["'])([A-Za-z_.]+)["']""")
_MESSAGE_SUBSCRIPTION = re.compile(r"""["'](message\.(?:im|mpim|channels|groups))["']""")
_COMMAND = re.compile(r"\.command\(")


def _sources() -> Iterator[Path]:
    for path in sorted((ROOT / "bot").rglob("*.py")):
        if "standin" not in path.relative_to(ROOT / "bot").parts and path not in NOT_CALLERS:
            yield path


def _names(path: Path) -> Iterator[str]:
    """Identifiers, and strings that are (dotted) identifiers, in the file's code, dots read as underscores."""
    for token in tokenize.generate_tokens(io.StringIO(path.read_text()).readline):
        if token.type == tokenize.NAME:
            yield token.string
        elif token.type == tokenize.STRING:
            value = token.string.strip("\"'")
            if all(part.isidentifier() for part in value.split(".")):
                yield value.replace(".", "_")


def called_methods() -> set[str]:
    """The Web API methods incibot's code calls."""
    api_methods = {name for name, value in vars(WebClient).items() if callable(value) and not name.startswith("_")}
    return {name.replace("_", ".") for path in _sources() for name in _names(path) if name in api_methods}


def subscribed_events() -> set[str]:
    """Events registered as ``app.event("name")`` or ``app.event({"type": "name", …})``; a ``message`` listener
    stands for the ``message.*`` subscriptions its module names (``"message.im"``: Bolt sees one event type)."""
    events: set[str] = set()
    for path in _sources():
        code = path.read_text()
        registered = set(_EVENT.findall(code))
        if "message" in registered:
            registered = (registered - {"message"}) | set(_MESSAGE_SUBSCRIPTION.findall(code))
        events |= registered
    return events


def has_commands() -> bool:
    return any(_COMMAND.search(path.read_text()) for path in _sources())


def _manifest(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    return data


def test_the_scan_finds_the_calls_it_must() -> None:
    """A sanity check of the scan itself: the outbox posts and edits, a mention is answered."""
    assert {"chat.postMessage", "chat.update"} <= called_methods()
    assert {"app_mention", "message.im"} <= subscribed_events()


def test_every_called_method_is_in_slacks_scope_table() -> None:
    unknown = called_methods() - set(scopes.METHODS)
    assert not unknown, f"add these methods' scopes to bot/slack/scopes.py: {sorted(unknown)}"


def test_bot_scopes_are_exactly_what_the_code_needs() -> None:
    needed = scopes.bot_scopes_for(called_methods(), subscribed_events(), commands=has_commands())
    assert set(scopes.BOT_SCOPES) == needed


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda path: path.name)
def test_manifest_scopes_are_exactly_what_the_code_needs(manifest: Path) -> None:
    granted = _manifest(manifest)["oauth_config"]["scopes"]["bot"]
    needed = scopes.bot_scopes_for(called_methods(), subscribed_events(), commands=has_commands())
    assert len(granted) == len(set(granted)), "a scope is listed twice"
    assert set(granted) == needed, f"extra: {sorted(set(granted) - needed)}, missing: {sorted(needed - set(granted))}"
    assert set(granted) == set(scopes.BOT_SCOPES)


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda path: path.name)
def test_manifest_events_are_the_ones_the_code_registers(manifest: Path) -> None:
    events = _manifest(manifest)["settings"]["event_subscriptions"]["bot_events"]
    assert set(events) == subscribed_events()


def test_both_manifests_are_checked() -> None:
    assert {path.name for path in MANIFESTS} == {"slack-manifest.yml", "slack-manifest-socket.yml"}
