"""The injection corpus at the parameter level: refused whatever the declared type allows, from a given value or
from an incident label used as a default, with a message naming the field, and the executor never called."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot.remediation.catalogue import ActionSpec, Catalogue
from bot.remediation.executors import CatalogueExecutor
from bot.remediation.parameters import ParameterError, resolve_run
from tests.remediation_support import Target, recording_target

CORPUS = {
    "semicolon": ";id",
    "command substitution": "$(id)",
    "backticks": "`id`",
    "newline": "checkout\nid",
    "carriage return": "checkout\r",
    "tab": "check\tout",
    "option": "--kubeconfig=/x",
    "leading dash": "-n",
    "path walk": "../../etc/passwd",
    "10 kB": "a" * 10_240,
    "fullwidth look-alike": "\uff43heckout",  # NFKC turns it into "checkout": refused, not silently normalised
    "cyrillic look-alike": "\u0441heckout",  # Cyrillic es
    "zero-width space": "check\u200bout",
    "pipe": "a|b",
    "ampersand": "a&&b",
    "redirect": "a>b",
    "variable": "${IFS}",
    "space": "a b",
    "nul": "a\x00b",
    "quote": "a'b",
    "template": "{labels.x}",
    "percent-encoded newline": "a%0ab",
}

CATALOGUE = """\
actions:
  - name: anything
    description: a string that its own pattern would let through
    executor: {type: http, url: "URL", body: {value: "{value}", count: "{count}", env: "{env}"}}
    params:
      value: {type: string, pattern: "(?s).*", max_length: 256, default: "{labels.service}"}
      count: {type: integer, min: 0, max: 100, default: 1}
      env: {type: enum, values: [staging, production], default: staging}
    risk: low
"""


@pytest.fixture
def target() -> Iterator[Target]:
    with recording_target() as recording:
        yield recording


def _action(url: str = "http://127.0.0.1:9/hook") -> tuple[Catalogue, ActionSpec]:
    catalogue = Catalogue.parse(CATALOGUE.replace("URL", url))
    action = catalogue.get("anything")
    assert action is not None
    return catalogue, action


@pytest.mark.parametrize("field", ["value", "count", "env"])
@pytest.mark.parametrize("payload", list(CORPUS.values()), ids=list(CORPUS))
def test_every_payload_is_refused_as_a_given_value_whatever_the_type(field: str, payload: str) -> None:
    _, action = _action()
    with pytest.raises(ParameterError) as refused:
        resolve_run(action, {field: payload}, {"service": "checkout"})
    assert refused.value.field == field
    assert str(refused.value).startswith(f"{field}: ") and refused.value.message


@pytest.mark.parametrize("payload", list(CORPUS.values()), ids=list(CORPUS))
def test_every_payload_is_refused_from_a_label_used_as_a_default(payload: str) -> None:
    _, action = _action()
    with pytest.raises(ParameterError) as refused:
        resolve_run(action, {}, {"service": payload})
    assert refused.value.field == "value"
    assert "the incident's label 'service' was refused" in refused.value.message


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("value", ";id", "contains ';', which is not allowed"),
        ("value", "--kubeconfig=/x", "must not start with '-'"),
        ("value", "../../x", "must not contain '..'"),
        ("value", "a" * 10_240, "is longer than 256 characters"),
        ("value", "\uff43heckout", "non-ASCII characters (look-alike characters are refused)"),
        ("value", "a\nb", "contains a control character"),
        ("env", "\uff53taging", "non-ASCII"),  # would equal "staging" after NFKC
        ("env", "Staging", "must be one of staging, production, not 'Staging'"),
        ("count", "\u0661", "non-ASCII"),  # an Arabic-Indic one: int() would take it
        ("count", "1e3", "must be a whole number"),
        ("count", "101", "must be at most 100, not 101"),
        ("count", "-1", "must not start with '-'"),
    ],
)
def test_refusals_say_why(field: str, value: str, says: str) -> None:
    _, action = _action()
    with pytest.raises(ParameterError) as refused:
        resolve_run(action, {field: value}, {"service": "checkout"})
    assert says in refused.value.message


def test_unknown_parameters_are_refused_and_named() -> None:
    _, action = _action()
    with pytest.raises(ParameterError) as refused:
        resolve_run(action, {"kubeconfig": "/x"}, {"service": "checkout"})
    assert refused.value.field == "kubeconfig" and "is not a parameter of anything" in refused.value.message
    with pytest.raises(ParameterError) as odd:
        resolve_run(action, {"x\n;id": "1"}, {"service": "checkout"})
    assert odd.value.field == repr("x\n;id")  # shown quoted, never raw


def test_kubernetes_names_are_checked_after_rendering() -> None:
    text = """\
kubernetes: {api_server: "https://k8s:6443", token_env: T}
actions:
  - name: restart
    description: r
    executor: {type: kubernetes, operation: rollout-restart, namespace: "{ns}", name: "{name}"}
    params:
      ns: {type: string, pattern: "[A-Za-z0-9-]+"}
      name: {type: string, pattern: "[A-Za-z0-9.-]+"}
    risk: low
"""
    action = Catalogue.parse(text).get("restart")
    assert action is not None
    with pytest.raises(ParameterError, match="'Checkout' is not a Kubernetes object name") as refused:
        resolve_run(action, {"ns": "shop", "name": "Checkout"}, {})
    assert refused.value.field == "name"
    with pytest.raises(ParameterError, match="is not a Kubernetes namespace"):
        resolve_run(action, {"ns": "a" * 64, "name": "checkout"}, {})


def test_a_refused_run_never_reaches_the_executor(target: Target) -> None:
    catalogue, action = _action(target.url)
    executor = CatalogueExecutor.build(catalogue)
    for payload in CORPUS.values():
        for given, labels in (({"value": payload}, {"service": "ok"}), ({}, {"service": payload})):
            try:
                run = resolve_run(action, given, labels)
            except ParameterError:
                continue
            executor.execute(run, "key")  # would record a call: the assertion below fails
    assert target.calls == []
    run = resolve_run(action, {"count": "3"}, {"service": "checkout"})  # the target does record a valid run
    assert executor.execute(run, "key").ok
    assert [call.json() for call in target.calls] == [{"value": "checkout", "count": 3, "env": "staging"}]
