"""The local workspace page over HTTP (no browser): drawn on the server with the bot's posts and their buttons, kept
live by server-sent events, and everything it does reaching the bot as Slack would (signed, through the driver)."""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from bot.settings import Settings
from bot.slack.blocks import ACK_ACTION
from bot.standin.workspace.actions import BotLink
from bot.standin.workspace.alerts import samples
from tests.slack_support import SlackBot, running_bot
from tests.support import FakeClock, wait_for

pytestmark = pytest.mark.db


@pytest.fixture
def bot(settings: Settings, clock: FakeClock) -> Iterator[SlackBot]:
    with running_bot(settings, clock=clock) as running:
        slack = running.runtime.slack
        running.standin.link_bot(BotLink(running.url, slack.signing_secret, slack.ingest_token))
        yield running


@pytest.fixture
def page(bot: SlackBot) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=bot.standin.url, timeout=10) as client:
        yield client


def _alert(bot: SlackBot, page: httpx.Client, sample: str = "pod-crash-loop") -> dict[str, Any]:
    answer = page.post("/workspace/alerts", json={"sample": sample})
    assert answer.status_code == 200, answer.text
    return bot.wait_for_post()


class _Listener:
    """The page's ``/events`` stream read in a thread: its events, in order."""

    def __init__(self, client: httpx.Client, params: dict[str, str]) -> None:
        self.events: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        self._response = client.send(client.build_request("GET", "/events", params=params), stream=True)
        assert self._response.headers["content-type"].startswith("text/event-stream")
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        name = ""
        try:
            for line in self._response.iter_lines():
                if line.startswith("event: "):
                    name = line.removeprefix("event: ")
                elif line.startswith("data: "):
                    self.events.put((name, json.loads(line.removeprefix("data: "))))
        except httpx.HTTPError:
            return

    def next(self, name: str, predicate: Any = lambda _data: True, timeout: float = 10) -> dict[str, Any]:
        while True:
            got, data = self.events.get(timeout=timeout)
            if got == name and predicate(data):
                return data

    def close(self) -> None:
        self._response.close()


def _feed(html: str) -> str:
    return html.split('data-feed="', 1)[1].split('"', 1)[0]


def test_the_page_shows_the_incident_a_test_alert_opened_with_its_buttons(bot: SlackBot, page: httpx.Client) -> None:
    assert [sample.name for sample in samples()] == [
        "certificate-expiry",
        "disk-filling-up",
        "node-failure-cascade",
        "pod-crash-loop",
    ]
    post = _alert(bot, page)
    html = page.get("/", params={"as": "U0ALICE"}).text
    messages = html.split('id="ws-messages"', 1)[1]
    assert f'data-ts="{post["ts"]}"' in messages and "ledger-writer" in messages
    assert f'data-action-id="{ACK_ACTION}"' in messages and ">Acknowledge</button>" in messages
    assert 'class="ws-test-alert" data-sample="node-failure-cascade"' in html
    assert '<option value="U0BOB">' in html  # the user picker
    info = json.loads((bot.runtime.settings.state_dir / "runtime.json").read_text())
    assert info["workspace_url"] == f"{bot.standin.url}/"


def test_a_click_reaches_the_bot_signed_and_the_change_arrives_as_an_event(bot: SlackBot, page: httpx.Client) -> None:
    post = _alert(bot, page)
    drawn = page.get("/", params={"as": "U0CAROL", "channel": "incidents"}).text
    listener = _Listener(page, {"page": _feed(drawn)})
    try:
        click = {"as": "U0CAROL", "channel": "C0INCIDENTS", "ts": post["ts"], "action_id": ACK_ACTION}
        answer = page.post("/workspace/actions", json=click)
        assert answer.json() == {"ok": True}
        bot.drain()
        changed = listener.next("message", lambda data: data["ts"] == post["ts"] and not data["new"])
        assert changed["pane"] == "channel" and "msg-edited" in changed["html"]
        assert "Acknowledged" in changed["html"] and f'data-action-id="{ACK_ACTION}"' not in changed["html"]
        assert bot.incident(1).status == "acknowledged"
    finally:
        listener.close()


def test_a_slash_command_answers_only_the_user_who_typed_it(bot: SlackBot, page: httpx.Client) -> None:
    _alert(bot, page)
    answer = page.post("/workspace/commands", json={"as": "U0BOB", "channel": "C0INCIDENTS", "text": "/incident list"})
    assert answer.json() == {"ok": True}

    def shown(user: str) -> str:
        return page.get("/", params={"as": user}).text.split('id="ws-messages"', 1)[1]

    wait_for(lambda: "msg-ephemeral" in shown("U0BOB"))
    ephemeral = shown("U0BOB").split("msg-ephemeral", 1)[1]
    assert "Only visible to you" in ephemeral and "Open incidents" in ephemeral and "Pod is crash looping." in ephemeral
    assert "msg-ephemeral" not in shown("U0ALICE")


def test_a_message_is_written_as_the_chosen_user_and_delivered_as_an_event(bot: SlackBot, page: httpx.Client) -> None:
    said = page.post("/workspace/messages", json={"as": "U0ALICE", "channel": "C0INCIDENTS", "text": "looking *now*"})
    assert said.status_code == 200, said.text
    [message] = bot.posts()
    assert (message["user"], message["text"]) == ("U0ALICE", "looking *now*")
    drawn = page.get("/", params={"as": "U0BOB"}).text
    assert "<b>now</b>" in drawn and 'data-user="U0ALICE"' in drawn
    refused = page.post("/workspace/messages", json={"as": "U0NOBODY", "channel": "C0INCIDENTS", "text": "hi"})
    assert refused.status_code == 404 and not refused.json()["ok"]


def test_the_page_refuses_what_a_foreign_site_could_send(page: httpx.Client) -> None:
    form = page.post("/workspace/alerts", content=b"sample=pod-crash-loop", headers={"Content-Type": "text/plain"})
    assert form.status_code == 415
    rebound = page.get("/", headers={"Host": "attacker.example"})
    assert rebound.status_code == 403
    assert page.post("/workspace/alerts", json={"sample": "nope"}).status_code == 404
    assert page.get("/workspace/static/workspace.js").headers["content-type"].startswith("text/javascript")
    assert page.get("/workspace/static/../app.py").status_code == 404


def test_a_modal_the_bot_opens_arrives_as_an_event_and_closing_it_clears_it(bot: SlackBot, page: httpx.Client) -> None:
    drawn = page.get("/", params={"as": "U0ALICE"}).text
    listener = _Listener(page, {"page": _feed(drawn)})
    try:
        trigger = page.post("/_standin/triggers", json={"user": "U0ALICE"}).json()["trigger_id"]
        note = {"type": "plain_text_input", "action_id": "note"}
        view = {
            "type": "modal",
            "title": {"type": "plain_text", "text": "Resolution <b>note</b>"},
            "submit": {"type": "plain_text", "text": "Save"},
            "blocks": [
                {"type": "input", "block_id": "note", "label": {"type": "plain_text", "text": "Note"}, "element": note}
            ],
        }
        opened = bot.runtime.slack.client.views_open(trigger_id=trigger, view=view)["view"]
        shown = listener.next("view", lambda data: bool(data["html"]))
        assert shown["view_id"] == opened["id"] and 'name="note"' in shown["html"]
        assert "Resolution &lt;b&gt;note&lt;/b&gt;" in shown["html"]
        assert f'data-view-id="{opened["id"]}"' in page.get("/", params={"as": "U0ALICE"}).text  # drawn open on reload
        closed = page.post(f"/workspace/views/{opened['id']}/close", json={"as": "U0ALICE"})
        assert closed.json()["ok"] is True
        assert listener.next("view", lambda data: True)["html"] == ""
    finally:
        listener.close()
