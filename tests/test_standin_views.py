"""The stand-in's modals are as strict as Slack's: ``views.open``/``views.push`` exchange a trigger id once within
3 seconds of the stand-in's clock, views are validated as Slack validates them, ``views.update`` checks the hash
and keeps typed input, and the driver's signed ``view_submission`` applies Slack's client-side rules and then the
bot's ``response_action``. Through slack_sdk and a small bot over loopback HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import orjson
import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bot.standin.driver import ClientRefusal, SlackDriver
from bot.standin.server import StandinServer
from bot.standin.workspace import DEFAULT_BOT_TOKEN
from tests.support import serve_in_thread


def _text(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text}


def _modal(**more: Any) -> dict[str, Any]:
    blocks = [
        {
            "type": "input",
            "block_id": "replicas",
            "label": _text("Replicas"),
            "element": {"type": "plain_text_input", "action_id": "value", "initial_value": "3", "max_length": 4},
        },
        {
            "type": "input",
            "block_id": "namespace",
            "label": _text("Namespace"),
            "element": {
                "type": "static_select",
                "action_id": "value",
                "options": [{"text": _text(name), "value": name} for name in ("shop", "pay")],
            },
        },
    ]
    return {"type": "modal", "title": _text("Scale"), "submit": _text("Request"), "blocks": blocks} | more


@pytest.fixture
def standin(tmp_path: Path) -> Iterator[StandinServer]:
    with StandinServer(tmp_path / "standin.sqlite", rate_limits=False) as server:
        yield server


@pytest.fixture
def slack(standin: StandinServer) -> WebClient:
    return WebClient(base_url=standin.api_url, token=DEFAULT_BOT_TOKEN, retry_handlers=[], timeout=10)


def _trigger(standin: StandinServer, user: str = "U0ALICE") -> str:
    return standin._parts.views.mint_trigger(user)


def _error(call: Any, **kwargs: Any) -> dict[str, Any]:
    with pytest.raises(SlackApiError) as caught:
        call(**kwargs)
    data: dict[str, Any] = caught.value.response.data
    return data


def test_a_trigger_id_opens_one_view_within_3_seconds(standin: StandinServer, slack: WebClient) -> None:
    trigger = _trigger(standin)
    view = slack.views_open(trigger_id=trigger, view=_modal(private_metadata="incident:7", callback_id="run"))["view"]
    assert view["id"].startswith("V") and view["type"] == "modal" and view["root_view_id"] == view["id"]
    assert (view["private_metadata"], view["callback_id"], view["state"]) == ("incident:7", "run", {"values": {}})
    assert [v["id"] for v in standin.views("U0ALICE")] == [view["id"]] and standin.views("U0BOB") == []
    assert _error(slack.views_open, trigger_id=trigger, view=_modal())["error"] == "exchanged_trigger_id"

    late = _trigger(standin)
    standin.advance_clock(3.1)
    assert _error(slack.views_open, trigger_id=late, view=_modal())["error"] == "expired_trigger_id"
    assert _error(slack.views_open, trigger_id="12345.98765.abcd2358fdea", view=_modal())["error"] == (
        "invalid_trigger_id"
    )
    assert _error(slack.views_open, trigger_id="; rm -rf", view=_modal())["error"] == "invalid_trigger_id"
    assert [call["error"] for call in standin.calls("views.open")] == [
        None,
        "exchanged_trigger_id",
        "expired_trigger_id",
        "invalid_trigger_id",
        "invalid_trigger_id",
    ]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"title": _text("x" * 25)}, "must be 1 to 24 characters [json-pointer:/view/title/text]"),
        ({"submit": _text("Request this run, please")}, None),  # 24 characters: fine
        ({"close": {"type": "mrkdwn", "text": "x"}}, "must be a plain_text text object [json-pointer:/view/close]"),
        ({"type": "home"}, "must be modal [json-pointer:/view/type]"),
        ({"submit": None}, "must provide submit when the view has input blocks [json-pointer:/view/submit]"),
        (
            {"private_metadata": "x" * 3001},
            "must be a string of at most 3000 characters [json-pointer:/view/private_metadata]",
        ),
        ({"callback_id": "x" * 256}, "must be a string of at most 255 characters [json-pointer:/view/callback_id]"),
        ({"blocks": [{"type": "divider"}] * 101}, "must be less than 101 items [json-pointer:/view/blocks]"),
        (
            {"blocks": [{"type": "input", "block_id": "a", "label": _text("A"), "element": {"type": "button"}}]},
            "must provide a known input element [json-pointer:/view/blocks/0/element]",
        ),
        (
            {
                "blocks": [
                    {"type": "input", "label": _text("A"), "element": {"type": "plain_text_input", "max_length": 3001}}
                ]
            },
            "must be an integer from 1 to 3000 [json-pointer:/view/blocks/0/element/max_length]",
        ),
    ],
)
def test_views_are_validated_as_slack_validates_them(
    standin: StandinServer, slack: WebClient, change: dict[str, Any], message: str | None
) -> None:
    view = {key: value for key, value in (_modal() | change).items() if value is not None}
    if message is None:
        assert slack.views_open(trigger_id=_trigger(standin), view=view)["ok"]
        return
    answer = _error(slack.views_open, trigger_id=_trigger(standin), view=view)
    assert answer["error"] == "invalid_arguments"
    assert f"[ERROR] {message}" in answer["response_metadata"]["messages"]
    assert standin.views("U0ALICE") == []


def test_update_checks_the_hash_and_keeps_what_was_typed(standin: StandinServer, slack: WebClient) -> None:
    opened = slack.views_open(trigger_id=_trigger(standin), view=_modal(external_id="run-7"))["view"]
    standin._parts.views.submission(opened["id"], "U0ALICE", {"replicas": "5", "namespace": "pay"})
    changed = _modal(title=_text("Scale (preview)"), external_id="run-7")
    changed["blocks"][1]["element"]["action_id"] = "other"  # a changed element loses its input
    updated = slack.views_update(view_id=opened["id"], hash=opened["hash"], view=changed)["view"]
    assert updated["id"] == opened["id"] and updated["hash"] != opened["hash"]
    assert updated["title"]["text"] == "Scale (preview)"
    assert updated["state"]["values"] == {"replicas": {"value": {"type": "plain_text_input", "value": "5"}}}
    stale = _error(slack.views_update, view_id=opened["id"], hash=opened["hash"], view=_modal())
    assert stale["error"] == "hash_conflict"
    assert slack.views_update(external_id="run-7", view=_modal(external_id="run-7"))["view"]["id"] == opened["id"]
    assert _error(slack.views_update, view_id="VNOPE", view=_modal())["error"] == "not_found"
    both = _error(
        slack.api_call,
        api_method="views.update",
        json={"view_id": opened["id"], "external_id": "run-7", "view": _modal()},
    )
    assert both["error"] == "invalid_arguments"
    other = _error(slack.views_open, trigger_id=_trigger(standin, "U0BOB"), view=_modal(external_id="run-7"))
    assert other["error"] == "duplicate_external_id"


def test_push_stacks_at_most_three_views(standin: StandinServer, slack: WebClient) -> None:
    assert _error(slack.views_push, trigger_id=_trigger(standin), view=_modal())["error"] == "not_found"
    root = slack.views_open(trigger_id=_trigger(standin), view=_modal())["view"]
    second = slack.views_push(trigger_id=_trigger(standin), view=_modal())["view"]
    assert (second["root_view_id"], second["previous_view_id"]) == (root["id"], root["id"])
    slack.views_push(trigger_id=_trigger(standin), view=_modal())
    assert _error(slack.views_push, trigger_id=_trigger(standin), view=_modal())["error"] == "push_limit_reached"
    assert len(standin.views("U0ALICE")) == 3


@pytest.fixture
def answers() -> dict[str, Any]:
    """What the little bot below answers to a submission, by the view's callback_id."""
    return {}


@pytest.fixture
def received() -> list[dict[str, Any]]:
    """The payloads the little bot below received."""
    return []


@pytest.fixture
def driver(standin: StandinServer, answers: dict[str, Any], received: list[dict[str, Any]]) -> Iterator[SlackDriver]:

    async def events(request: Request) -> Response:
        payload = orjson.loads(parse_qs((await request.body()).decode())["payload"][0])
        received.append(payload)
        answer = answers.get(payload["view"]["callback_id"])
        return Response(orjson.dumps(answer) if answer is not None else b"", media_type="application/json")

    app = Starlette(routes=[Route("/slack/events", events, methods=["POST"])])
    with serve_in_thread(app) as url, SlackDriver(standin.url, bot_url=url, signing_secret="s") as slack_driver:
        yield slack_driver


def test_a_submission_carries_the_state_and_the_bots_answer_is_applied(
    standin: StandinServer,
    slack: WebClient,
    driver: SlackDriver,
    answers: dict[str, Any],
    received: list[dict[str, Any]],
) -> None:
    opened = slack.views_open(trigger_id=_trigger(standin), view=_modal(callback_id="check"))["view"]
    with pytest.raises(ClientRefusal, match="Namespace is required"):
        driver.view_submission({"replicas": "4"})
    with pytest.raises(ClientRefusal, match="Replicas takes at most 4 characters"):
        driver.view_submission({"replicas": "12345", "namespace": "pay"})
    with pytest.raises(ClientRefusal, match="Namespace has no option 'prod'"):
        driver.view_submission({"namespace": "prod"})
    assert received == []

    answers["check"] = {"response_action": "errors", "errors": {"replicas": "Replicas must be 1 to 10."}}
    refused = driver.view_submission({"namespace": "pay"})
    [sent] = received
    assert sent["type"] == "view_submission" and sent["user"]["id"] == "U0ALICE"
    assert sent["view"]["id"] == opened["id"] and sent["view"]["callback_id"] == "check"
    assert sent["view"]["state"]["values"] == {
        "replicas": {"value": {"type": "plain_text_input", "value": "3"}},  # its initial value
        "namespace": {"value": {"type": "static_select", "selected_option": {"text": _text("pay"), "value": "pay"}}},
    }
    assert refused.view_outcome is not None
    assert refused.view_outcome["errors"] == {"replicas": "Replicas must be 1 to 10."}
    assert [v["id"] for v in refused.view_outcome["views"]] == [opened["id"]]  # it stays open

    answers["check"] = {"response_action": "errors", "errors": {"nowhere": "x"}}
    wrong = driver.view_submission({"namespace": "pay"})
    assert wrong.view_outcome is not None and not wrong.view_outcome["ok"]
    assert "only the view's input blocks" in wrong.view_outcome["error"]

    answers["check"] = {"response_action": "update", "view": _modal(title=_text("x" * 30))}
    invalid = driver.view_submission({"namespace": "pay"})
    assert invalid.view_outcome is not None and invalid.view_outcome["error"] == "invalid_arguments"

    answers["check"] = {"response_action": "update", "view": _modal(title=_text("Requested"), callback_id="done")}
    updated = driver.view_submission({"namespace": "shop"})
    assert updated.view_outcome is not None
    assert [v["title"]["text"] for v in updated.view_outcome["views"]] == ["Requested"]

    closed = driver.view_submission({"namespace": "shop"})  # no answer for "done": the modal closes
    assert closed.view_outcome == {"ok": True, "action": "close", "views": []}
    assert standin.views("U0ALICE") == []
    with pytest.raises(LookupError):
        driver.view_submission({})
