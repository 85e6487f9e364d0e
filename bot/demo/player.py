"""Plays :mod:`bot.demo.story` against a running bot as its senders and people would: Alertmanager webhooks and
``POST /changes`` with the ingest token, slash commands and DMs signed by the stand-in's driver.

The seeded history is played on the demo clock moved back by days; the outage on wall time, its minutes
compressed into seconds (``speed``: story seconds per wall second), each alert's ``startsAt`` where it would be.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx

from bot.agent.answers import LOOKING
from bot.cli.replay import GroupId, group_of, webhook
from bot.demo import story
from bot.demo.clock import DemoClock
from bot.standin.driver import SlackDriver

WAIT_TIMEOUT = 30.0  # seconds for the bot to turn a delivery into an incident, or to answer a question
SETTLE_TIMEOUT = 60.0  # seconds for the history to be indexed, and for the Slack posts to go out


@dataclass(frozen=True)
class Probes:
    """What the player reads from the bot to know when to go on (as `incibot incidents list` would)."""

    latest_incident: Callable[[], int | None]
    """The newest incident's id."""
    outbox_idle: Callable[[], bool]
    """No Slack write is waiting to be sent."""
    history_indexed: Callable[[], bool]
    """Every incident is in the search index (so that the outage finds its similar past incidents)."""
    warm_agent: Callable[[], object]
    """Index the virtual agent's knowledge base (otherwise done on the first question, which then waits)."""


class StoryError(RuntimeError):
    """The bot did not do what the story needs next (the message says what)."""


class Player:
    def __init__(
        self,
        http: httpx.Client,
        standin: httpx.Client,
        driver: SlackDriver,
        clock: DemoClock,
        probes: Probes,
        *,
        speed: float,
        say: Callable[[str], None],
    ) -> None:
        """``http``: the bot's base URL with the ingest token; ``standin``: the stand-in's base URL (its
        ``/_standin/`` inspection endpoints); ``speed``: story seconds per wall second."""
        self._http, self._standin, self._driver = http, standin, driver
        self._clock, self._probes, self._speed, self._say = clock, probes, speed, say
        self._warming = threading.Thread(target=probes.warm_agent, name="demo-agent-warm-up", daemon=True)

    def play(self) -> int:
        """The history, then the outage, then the agent's answer to Dana; the outage's incident id."""
        self._warming.start()  # beside the history: it embeds the FAQ
        self.seed_history()
        self._wait(self._probes.history_indexed, SETTLE_TIMEOUT, "the history was not indexed")
        incident = self.play_outage()
        answer = self._wait(self._agent_answer, WAIT_TIMEOUT, "the virtual agent did not answer Dana")
        self._say(f"the bot answers dana: {' '.join(answer.split(' — ')[0].split())}")
        self._wait(self._probes.outbox_idle, SETTLE_TIMEOUT, "the bot's Slack posts did not all go out")
        return incident

    def seed_history(self) -> None:
        """Each past incident opened by its alert, resolved by Alice with its cause and note, on its day."""
        for past in sorted(story.HISTORY, key=lambda p: -p.days_ago):
            self._clock.set_behind(timedelta(days=past.days_ago))
            began = self._clock() - timedelta(minutes=2)
            incident = self._send_and_wait([past.alert.as_alertmanager(_iso(began))])
            self._clock.set_behind(timedelta(days=past.days_ago, minutes=-past.lasted_minutes))
            self._command(f"resolve {incident} cause={past.cause} {past.note}", user=story.ALICE)
            ended = _iso(self._clock())
            self._post("/alerts/alertmanager", webhook([past.alert.as_alertmanager(_iso(began), resolved_at=ended)]))
            self._say(f"history: incident #{incident} ({past.alert.summary}), resolved {past.days_ago:g} days ago")
        self._clock.set_behind(timedelta(0))

    def play_outage(self) -> int:
        """The deploy, the cascade's alerts (Alertmanager re-sends each group whole), Alice's remediation request
        once the root alert is in, Dana's question, then the unrelated certificate warning."""
        started = time.monotonic()
        origin = self._clock() - timedelta(minutes=story.OUTAGE_MINUTES)  # the outage began minutes ago
        change = story.CHANGE | {"when": _iso(origin - timedelta(minutes=story.CHANGE_MINUTES_BEFORE))}
        self._post("/changes", change)
        self._say(f"change: {change['service']} {change['version']} by {change['who']} ({change['description']})")
        before = self._probes.latest_incident() or 0
        groups: dict[GroupId, list[dict[str, object]]] = {}
        incident: int | None = None
        for alert in sorted((*story.OUTAGE, story.UNRELATED), key=lambda a: a.sent):
            self._sleep_until(started, alert.sent)
            began = origin + timedelta(minutes=alert.started)
            if alert is story.UNRELATED:
                self._ask_agent()
                self._clock.set_behind(-timedelta(minutes=story.QUIET_MINUTES))
                self._say(f"{story.QUIET_MINUTES:g} minutes later (the demo clock jumps ahead)")
                began = self._clock() - timedelta(minutes=1)
            body = alert.as_alertmanager(_iso(began))
            group = groups.setdefault(group_of(body), [])
            group.append(body)
            self._post("/alerts/alertmanager", webhook(group))
            self._say(f"alert: {alert.name} on {alert.service} ({alert.severity})")
            if incident is None:
                incident = self._wait_for_incident(before)
            if alert.name == "PostgresDown":
                self._request_remediation(incident)
        assert incident is not None, "the story has alerts"
        return incident

    def _request_remediation(self, incident: int) -> None:
        action, params = story.REMEDIATION
        self._command(f"run {incident} {action} {params}", user=story.REQUESTER)
        self._say(f"alice requests {action} {params} on incident #{incident}: it waits for an approver (bob, carol)")

    def _ask_agent(self) -> None:
        self._warming.join()
        said = self._driver.direct_message(story.QUESTION, user=story.END_USER)
        if not said.acked:
            raise StoryError("the bot did not ack Dana's direct message")
        self._say(f'dana asks the bot in a DM: "{story.QUESTION}"')

    def _agent_answer(self) -> str | None:
        """The bot's reply in the thread of Dana's question once it no longer says "looking…"."""
        channel = self._driver.im_channel(story.END_USER)
        listed = self._standin.get("/_standin/messages", params={"channel": channel}).raise_for_status()
        bot_user = self._driver.workspace.bot_user.id
        for message in listed.json()["messages"]:
            if message.get("user") == story.END_USER and message.get("text") == story.QUESTION:
                replies = message.get("replies") or []
                answers = [r for r in replies if r.get("user") == bot_user and r.get("text") != LOOKING]
                return str(answers[-1].get("text") or "") if answers else None
        return None

    def _send_and_wait(self, alerts: list[dict[str, object]]) -> int:
        before = self._probes.latest_incident() or 0
        self._post("/alerts/alertmanager", webhook(alerts))
        return self._wait_for_incident(before)

    def _wait_for_incident(self, newer_than: int) -> int:
        def newer() -> int | None:
            latest = self._probes.latest_incident() or 0
            return latest if latest > newer_than else None

        found: int = self._wait(newer, WAIT_TIMEOUT, "no incident opened for the alert")
        return found

    @staticmethod
    def _wait(probe: Callable[[], Any], timeout: float, failure: str) -> Any:
        deadline = time.monotonic() + timeout
        while not (result := probe()):
            if time.monotonic() > deadline:
                raise StoryError(f"{failure} within {timeout:.0f} s")
            time.sleep(0.05)
        return result

    def _command(self, text: str, *, user: str) -> None:
        delivery = self._driver.slash_command("/incident", text, user=user)
        if not delivery.acked:
            raise StoryError(f"the bot did not ack /incident {text} ({delivery.status}, {delivery.error})")

    def _post(self, path: str, body: dict[str, object]) -> None:
        response = self._http.post(path, json=body)
        if not response.is_success:
            raise StoryError(f"POST {path} answered {response.status_code}: {response.text[:200]}")

    def _sleep_until(self, started: float, story_minutes: float) -> None:
        due = started + story_minutes * 60 / self._speed
        time.sleep(max(0.0, due - time.monotonic()))


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
