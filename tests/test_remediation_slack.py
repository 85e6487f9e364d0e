"""Remediation through Slack, with signed requests through the stand-in: the post offers the matching actions,
"Run…" opens the modal (``views.open`` from the click, within the trigger's 3 seconds) with typed parameters and a
dry-run preview, a submission is a request in the thread with Approve / Deny, another person approves, the runner
runs it (dry run: never the executor; on: the local HTTP target once), and the result is posted in the thread."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.incidents.models import Incident
from bot.knowledge.models import IncidentDocument
from bot.knowledge.suggestions import RunbookHit, Suggestions
from bot.remediation.models import RequestState
from bot.remediation.wiring import Remediation
from bot.settings import Settings
from bot.slack.listeners.remediation import NOT_OURS, TRIGGER_LOST
from bot.slack.models import OutboxItem, OutboxKind, OutboxStatus
from bot.slack.notifier import enqueue_coalesced
from bot.slack.remediation_blocks import APPROVE_ACTION, CANCEL_ACTION, DENY_ACTION, RERUN_ACTION, RUN_ACTION
from bot.standin.driver import Delivery
from tests.remediation_support import Target, recording_target
from tests.slack_support import SlackBot, running_bot
from tests.support import T0, FakeClock, am_alert, am_group, wait_for

pytestmark = pytest.mark.db

RUN = f"{RUN_ACTION}-0"


def catalogue(url: str) -> str:
    return f"""
actions:
  - name: restart-checkout
    description: Rolling restart through the runbook automation
    executor: {{type: http, url: "{url}", body: {{service: "{{service}}", replicas: "{{replicas}}", how: "{{how}}"}}}}
    params:
      service: {{type: string, pattern: "[a-z0-9-]{{1,40}}", default: "{{labels.service}}"}}
      replicas: {{type: integer, min: 1, max: 10, default: 2}}
      how: {{type: enum, values: [rolling, all-at-once], default: rolling}}
    target: "{{service}}"
    applies_to: {{alertnames: [HighErrorRate]}}
    risk: medium
    approvals: 1
    approvers: [U0BOB, S0ONCALL]
  - name: flush-cache
    description: Only offered where a runbook names it
    executor: {{type: http, url: "{url}"}}
    risk: low
"""


@pytest.fixture
def target() -> Iterator[Target]:
    with recording_target() as recording:
        yield recording


def _bot(settings: Settings, clock: FakeClock, target: Target, tmp_path: Path, mode: str) -> Iterator[SlackBot]:
    actions = tmp_path / "actions.yml"
    actions.write_text(catalogue(target.url))
    configured = settings.model_copy(update={"remediation": mode, "actions_file": actions})
    with running_bot(configured, clock=clock) as running:
        running.send(am_group([am_alert("HighErrorRate", service="checkout")]))
        running.drain()
        yield running


@pytest.fixture
def bot(settings: Settings, clock: FakeClock, target: Target, tmp_path: Path) -> Iterator[SlackBot]:
    yield from _bot(settings, clock, target, tmp_path, "dry-run")


def _remediation(bot: SlackBot) -> Remediation:
    assert bot.runtime.remediation is not None
    return bot.runtime.remediation


def _post(bot: SlackBot) -> dict[str, Any]:
    [post] = bot.posts()
    return post


def _texts(bot: SlackBot) -> list[str]:
    return [str(reply["text"]) for reply in _post(bot).get("replies", [])]


def _open_modal(bot: SlackBot, user: str = "U0ALICE") -> dict[str, Any]:
    delivery = bot.driver.block_action("incidents", _post(bot)["ts"], RUN, user=user)
    assert delivery.acked
    views: list[dict[str, Any]] = wait_for(lambda: bot.driver.views(user), timeout=5)
    return views[-1]


def _inputs(view: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {block["block_id"]: block["element"] for block in view["blocks"] if block["type"] == "input"}


def _click(bot: SlackBot, message: dict[str, Any], action_id: str, user: str, value: str | None = None) -> str:
    delivery = bot.driver.block_action("incidents", message["ts"], action_id, user=user, value=value, wait_responses=5)
    return str(delivery.responses[0]["text"])


def _request_message(bot: SlackBot) -> dict[str, Any]:
    bot.drain()
    replies = [r for r in _post(bot).get("replies", []) if "requests *restart-checkout*" in r["text"]]
    message: dict[str, Any] = replies[-1]
    return message


def _buttons(message: dict[str, Any]) -> list[str]:
    return [e["action_id"] for b in message.get("blocks", []) if b["type"] == "actions" for e in b["elements"]]


def _errors(delivery: Delivery) -> dict[str, str]:
    assert delivery.view_outcome is not None and delivery.view_outcome["ok"], delivery.view_outcome
    errors: dict[str, str] = delivery.view_outcome.get("errors") or {}
    return errors


def test_the_post_offers_the_action_and_the_modal_asks_for_typed_parameters_with_a_preview(
    bot: SlackBot, target: Target
) -> None:
    post = _post(bot)
    buttons = [e for b in post["blocks"] if b["type"] == "actions" for e in b["elements"]]
    run = next(button for button in buttons if button["action_id"] == RUN)
    assert (run["text"]["text"], run["value"]) == ("Run restart-checkout…", "run:1:restart-checkout")
    assert "restart-checkout" in str(post["blocks"])  # named in "What to do next" (or the actions' own lines)

    view = _open_modal(bot)
    inputs = _inputs(view)
    assert inputs["param-service"]["initial_value"] == "checkout"  # from the incident's labels
    assert inputs["param-replicas"]["initial_value"] == "2"
    assert inputs["param-how"]["type"] == "static_select"
    assert [o["value"] for o in inputs["param-how"]["options"]] == ["rolling", "all-at-once"]
    assert inputs["param-how"]["initial_option"]["value"] == "rolling"
    preview = view["blocks"][-1]["elements"][0]["text"]
    assert preview.startswith(f"dry run: nothing will be executed: POST {target.url} with JSON")
    assert '"replicas": 2' in preview and '"service": "checkout"' in preview

    wrong = bot.driver.view_submission({"param-replicas": "12"})
    assert _errors(wrong) == {"param-replicas": "replicas: must be at most 10, not 12"}
    assert len(bot.driver.views("U0ALICE")) == 1  # still open, the field marked
    assert _remediation(bot).service.requests_for(1) == []


def test_request_approve_by_another_person_and_dry_run_result_in_the_thread(bot: SlackBot, target: Target) -> None:
    _open_modal(bot)
    done = bot.driver.view_submission({"param-replicas": "3", "param-how": "all-at-once"})
    assert done.view_outcome == {"ok": True, "action": "close", "views": []}
    message = _request_message(bot)
    assert message["text"].startswith("*alice* requests *restart-checkout* (request #1)\nTarget: `checkout`\n")
    assert "Parameters: `how=all-at-once` `replicas=3` `service=checkout`" in message["text"]
    assert "Needs 1 approval from the action's approvers (not the requester) by 09:15 UTC." in message["text"]
    assert "dry run: would POST" in message["text"]
    [buttons] = [b["elements"] for b in message["blocks"] if b["type"] == "actions"]
    assert [b["action_id"] for b in buttons] == [APPROVE_ACTION, DENY_ACTION, CANCEL_ACTION]

    refused = _click(bot, message, APPROVE_ACTION, "U0ALICE")
    assert refused == "You requested this action, so your approval does not count: someone else must approve."
    approved = _click(bot, message, APPROVE_ACTION, "U0CAROL")  # Carol is in the approver group S0ONCALL
    assert approved == "You approved request #1."
    again = _click(bot, message, APPROVE_ACTION, "U0CAROL")  # a double click
    assert again == "Request #1 is already approved."
    runner = _remediation(bot).runner
    runner.run_pending()  # dry run: records what would be done, runs nothing
    runner.run_pending()
    bot.drain()
    texts = _texts(bot)
    assert "carol approved request #1 (restart-checkout): it runs now." in texts[-2]
    assert texts[-1].startswith(":memo: Request #1 *restart-checkout* on `checkout`: ")
    assert "would POST" in texts[-1]
    assert target.count() == 0  # dry run: the executor is never called
    assert _remediation(bot).service.get(1).state == RequestState.DRY_RUN
    edited = _request_message(bot)  # the request itself: its buttons gone, its state said
    assert edited["ts"] == message["ts"] and _buttons(edited) == []
    assert edited["text"].startswith("*alice* requests *restart-checkout* (request #1)\n")
    assert edited["text"].endswith(":memo: *Dry run*: recorded, nothing was executed.")
    with bot.runtime.database.read() as session:  # the approval's edit and the dry run's became one
        edits = session.scalars(select(OutboxItem.status).where(OutboxItem.kind == OutboxKind.REMEDIATION_EDIT))
        assert list(edits) == [OutboxStatus.DONE]


def test_on_mode_runs_the_target_once_for_replayed_approvals(
    settings: Settings, clock: FakeClock, target: Target, tmp_path: Path
) -> None:
    for bot in _bot(settings, clock, target, tmp_path, "on"):
        reply = bot.driver.slash_command(
            "/incident", "run 1 restart-checkout replicas=4", user="U0ALICE", wait_responses=5
        )
        assert reply.responses[0]["text"] == (
            "Requested #1 (restart-checkout); its approvers were asked in the incident's thread."
        )
        message = _request_message(bot)
        answers = [_click(bot, message, APPROVE_ACTION, "U0BOB") for _ in range(3)]  # a click replayed twice
        assert answers[0] == "You approved request #1."
        assert set(answers[1:]) == {"Request #1 is already approved."}
        runner = _remediation(bot).runner
        assert runner.run_pending() == 1 and runner.run_pending() == 0
        assert target.count() == 1
        [call] = target.calls
        assert call.json() == {"service": "checkout", "replicas": 4, "how": "rolling"} and call.key
        late = _click(bot, message, DENY_ACTION, "U0BOB")  # clicked before the edit removing it reached Slack
        assert late == "Request #1 is succeeded: nothing more to do."
        bot.drain()
        assert _texts(bot)[-1].startswith(":white_check_mark: Request #1 *restart-checkout* on `checkout`: ")
        shown = bot.driver.slash_command("/incident", "show 1", user="U0CAROL", wait_responses=5).responses[0]["text"]
        for event in ("requested", "approved", "running", "succeeded"):  # the audit log, in the incident's timeline
            assert f"remediation #1 restart-checkout on checkout: {event}" in shown, shown
        edited = _request_message(bot)
        assert _buttons(edited) == [] and edited["text"].endswith(
            "\n:white_check_mark: *Succeeded* (the result is below)."
        )
        assert target.count() == 1


def test_an_expired_trigger_tells_the_user_and_opens_nothing(bot: SlackBot) -> None:
    late = bot.driver.block_action(
        "incidents", _post(bot)["ts"], RUN, user="U0ALICE", trigger_age=3.5, wait_responses=5
    )
    assert [r["text"] for r in late.responses] == [TRIGGER_LOST]
    assert bot.driver.views("U0ALICE") == []
    [call] = bot.standin.calls("views.open")
    assert call["error"] == "expired_trigger_id"


def test_deny_by_an_approver_and_a_non_member_is_refused(bot: SlackBot) -> None:
    bot.driver.slash_command("/incident", "run 1 restart-checkout", user="U0ALICE", wait_responses=5)
    message = _request_message(bot)
    assert _click(bot, message, DENY_ACTION, "U0ALICE") == "You requested this: use Cancel to withdraw it."
    assert _click(bot, message, DENY_ACTION, "U0CAROL") == "You denied request #1."
    bot.drain()
    assert _texts(bot)[-1] == ":no_entry_sign: carol denied request #1 (restart-checkout): nothing runs."
    assert _remediation(bot).runner.run_pending() == 0
    edited = _request_message(bot)
    assert _buttons(edited) == [] and edited["text"].endswith(
        "carol denied request #1 (restart-checkout): nothing runs."
    )


def test_cancel_by_the_requester_withdraws_the_request_and_later_clicks_are_refused(bot: SlackBot) -> None:
    bot.driver.slash_command("/incident", "run 1 restart-checkout", user="U0ALICE", wait_responses=5)
    message = _request_message(bot)
    assert _click(bot, message, CANCEL_ACTION, "U0ALICE") == "You cancelled request #1."
    assert _click(bot, message, APPROVE_ACTION, "U0BOB") == "Request #1 is cancelled: nothing more to do."
    assert _remediation(bot).service.get(1).state == RequestState.CANCELLED
    assert _remediation(bot).runner.run_pending() == 0
    bot.drain()
    edited = _request_message(bot)
    assert _buttons(edited) == [] and edited["text"].endswith(
        "alice cancelled request #1 (restart-checkout): nothing runs."
    )
    assert len(_texts(bot)) == 2  # the request and the cancellation: the refused click said nothing in the thread


def test_actions_command_lists_what_applies(bot: SlackBot) -> None:
    answer = bot.driver.slash_command("/incident", "actions 1", user="U0CAROL", wait_responses=5).responses[0]["text"]
    assert answer.startswith("Actions for incident #1 (dry run: nothing is executed (INCIBOT_REMEDIATION=dry-run))")
    assert "`/incident run 1 restart-checkout service=… replicas=… how=…`" in answer


def test_actions_named_by_the_suggested_runbooks_front_matter_are_offered(bot: SlackBot) -> None:
    assert "flush-cache" not in str(_post(bot)["blocks"])  # nothing about the incident names it
    hit = RunbookHit("cache/stale", "Stale cache", 0.9, None, None, actions=("flush-cache",))
    with bot.runtime.database.write() as session:  # what the suggester stores for the first post
        document = session.get(IncidentDocument, 1) or IncidentDocument(incident_id=1, text="x", updated_at=T0)
        session.add(document)
        document.suggestions = Suggestions((hit,), 0.9, ()).to_json()
        incident = session.get_one(Incident, 1)
        enqueue_coalesced(session, OutboxKind.UPDATE_INCIDENT, incident, incident.slack_channel or "", T0)
    bot.drain()
    buttons = [e for b in _post(bot)["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert "run:1:flush-cache" in [button.get("value") for button in buttons]
    answer = bot.driver.slash_command("/incident", "actions 1", user="U0CAROL", wait_responses=5).responses[0]["text"]
    assert "`/incident run 1 flush-cache`" in answer and "restart-checkout" in answer


def test_remediation_off_hides_the_actions(
    settings: Settings, clock: FakeClock, target: Target, tmp_path: Path
) -> None:
    for bot in _bot(settings, clock, target, tmp_path, "off"):
        assert "remediation" not in str(_post(bot)["blocks"])
        off = bot.driver.slash_command("/incident", "run 1 restart-checkout", user="U0ALICE", wait_responses=5)
        assert off.responses[0]["text"] == "Remediation is off here (INCIBOT_REMEDIATION=off)."
        assert _click(bot, _post(bot), "incident_resolve", "U0ALICE") != ""  # the post still works


# The injection corpus, through every input path; nothing is ever requested or executed.

CORPUS = [
    ";id",
    "$(id)",
    "`id`",
    "checkout\nid",
    "--kubeconfig=/x",
    "-rf",
    "../../etc",
    "\u0441heckout",  # a Cyrillic small es for the "c"
    "\uff43heckout",  # a fullwidth "c"
]


def test_injection_through_modal_fields_is_refused_naming_the_field(bot: SlackBot, target: Target) -> None:
    _open_modal(bot)
    for value in CORPUS:
        errors = _errors(bot.driver.view_submission({"param-service": value}))
        assert list(errors) == ["param-service"], value
        assert errors["param-service"].startswith("service: "), errors
    assert "contains ';'" in _errors(bot.driver.view_submission({"param-service": ";id"}))["param-service"]
    assert "non-ASCII" in _errors(bot.driver.view_submission({"param-service": "\u0441heckout"}))["param-service"]
    longest = _errors(bot.driver.view_submission({"param-service": "a" * 128}))["param-service"]
    assert longest == f"service: '{'a' * 128}' does not match the pattern [a-z0-9-]{{1,40}}"
    for value in ("a" * 129, "a" * 10_000):  # the field takes the parameter's 128 characters: Slack's client stops more
        with pytest.raises(ValueError, match="at most 128 characters"):
            bot.driver.view_submission({"param-service": value})
    assert _remediation(bot).service.requests_for(1) == []
    assert target.count() == 0


def test_injection_through_slash_text_is_refused_with_a_clear_message(bot: SlackBot, target: Target) -> None:
    def answer(text: str) -> str:
        return str(bot.driver.slash_command("/incident", text, user="U0ALICE", wait_responses=5).responses[0]["text"])

    for value in CORPUS:
        text = answer(f"run 1 restart-checkout service={value}")
        assert text.startswith(("Not requested: service: ", "`")), (value, text)
    assert answer("run 1 restart-checkout service=checkout\n;id") == (
        "`;id` is not a parameter: write `name=value` (no spaces)."
    )
    assert (
        answer("run 1 restart-checkout service=$(id)") == "Not requested: service: contains '$', which is not allowed"
    )
    assert answer("run 1 ;id").startswith("`;id` is not an action name")
    assert answer("run 1 restart-checkout --kubeconfig=/x").startswith("`--kubeconfig=/x` is not a parameter")
    assert answer("run 1 restart-checkout ../../x=1").startswith("`../../x=1` is not a parameter")
    too_long = bot.driver.slash_command("/incident", "run 1 restart-checkout service=" + "a" * 10_000, user="U0ALICE")
    assert too_long.body.startswith("The run request is too long (10025 characters; at most 1000).")  # in the ack
    assert answer("run 1 restart-checkout kubeconfig=/x") == (
        "Not requested: kubeconfig: is not a parameter of restart-checkout"
    )
    assert _remediation(bot).service.requests_for(1) == []
    assert target.count() == 0


def test_tampered_button_values_are_refused_and_nothing_runs(bot: SlackBot, target: Target) -> None:
    bot.driver.slash_command("/incident", "run 1 restart-checkout", user="U0ALICE", wait_responses=5)
    message = _request_message(bot)
    fingerprint = _remediation(bot).service.get(1).fingerprint
    for value in ("request:1:;id", "request:1:$(id)", f"request:1:{fingerprint}\n", "request:-1:x", "x" * 2000):
        assert _click(bot, message, APPROVE_ACTION, "U0BOB", value) == NOT_OURS, value
    other = "0" * 64
    assert _click(bot, message, APPROVE_ACTION, "U0BOB", f"request:1:{other}") == (
        "The parameters changed since this was shown to you: approve the request as it stands now."
    )
    assert _click(bot, message, DENY_ACTION, "U0BOB", f"request:1:{other}").startswith("That button does not match")
    assert _click(bot, message, APPROVE_ACTION, "U0BOB", f"request:9:{fingerprint}") == (
        "There is no remediation request #9."
    )
    for value in ("run:1:;id", "run:1:restart-checkout;id", "run:1:../../x", "run:1:\u0441"):
        late = bot.driver.block_action(
            "incidents", _post(bot)["ts"], RUN, user="U0ALICE", value=value, wait_responses=5
        )
        assert [r["text"] for r in late.responses] == [NOT_OURS]
    assert bot.driver.views("U0ALICE") == []
    assert _remediation(bot).service.get(1).state == RequestState.REQUESTED
    assert _remediation(bot).runner.run_pending() == 0
    assert target.count() == 0


def test_an_unknown_outcome_asks_a_person_who_may_run_it_again(
    settings: Settings, clock: FakeClock, target: Target, tmp_path: Path
) -> None:
    for bot in _bot(settings, clock, target, tmp_path, "on"):
        bot.driver.slash_command("/incident", "run 1 restart-checkout", user="U0ALICE", wait_responses=5)
        assert _click(bot, _request_message(bot), APPROVE_ACTION, "U0BOB") == "You approved request #1."
        runner = _remediation(bot).runner
        assert runner.claim_next() is not None  # claimed, and the process dies before it runs: the lease runs out
        clock.advance(minutes=5)
        runner.run_pending()
        bot.drain()
        unknown = _post(bot)["replies"][-1]
        assert unknown["text"].startswith(":warning: Request #1 *restart-checkout* on `checkout`: ")
        [button] = [e for b in unknown["blocks"] if b["type"] == "actions" for e in b["elements"]]
        assert (button["action_id"], button["text"]["text"]) == (RERUN_ACTION, "Run again…")
        assert target.count() == 0
        again = _click(bot, unknown, RERUN_ACTION, "U0ALICE")
        assert again == "Requested #1 (restart-checkout); its approvers were asked in the incident's thread."
        assert _remediation(bot).service.get(1).state == RequestState.REQUESTED  # a new round of approvals
        assert "requests *restart-checkout* (request #1)" in _request_message(bot)["text"]
