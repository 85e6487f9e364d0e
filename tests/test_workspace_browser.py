"""The local workspace page in a real browser (Debian's chromium, driven by Selenium through chromium-driver),
against the whole bot on loopback with its stand-in: a test alert from the menu appears live, Acknowledge changes
the message, the thread opens, ``/incident list`` answers with an ephemeral, the remediation modal submits, and a
DM to the bot gets the virtual agent's answer. ``chromium --dump-dom`` shows the message server-side rendered.

Every test leaves a screenshot in ``test-artifacts/``; ``INCIBOT_TEST_UPDATE_SCREENSHOT=1`` rewrites
``docs/workspace.png``. Without a browser the tests skip, saying so; under ``CI=true`` they fail instead."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement

from bot.remediation.models import RequestState
from bot.settings import Settings
from bot.slack.blocks import ACK_ACTION
from bot.slack.remediation_blocks import APPROVE_ACTION, RUN_ACTION
from bot.standin.workspace import BOT_USER_ID
from bot.standin.workspace.actions import BotLink
from bot.standin.workspace.alerts import samples
from tests.browser_support import (
    Chromium,
    artefact_path,
    dump_dom,
    eventually,
    find_chromium,
    screenshot,
    start_chromium,
    update_docs_screenshot,
)
from tests.slack_support import SlackBot, running_bot
from tests.support import am_alert, am_group

INCIDENTS = "C0INCIDENTS"
CRASH_LOOP = "pod-crash-loop"
CATALOGUE = """
actions:
  - name: restart-writer
    description: Rolling restart of the crash-looping deployment
    executor: {type: http, url: "http://127.0.0.1:9/never-called-in-dry-run"}
    params:
      service: {type: string, pattern: "[a-z0-9-]{1,40}", default: "{labels.service}"}
      replicas: {type: integer, min: 1, max: 10, default: 2}
    target: "{service}"
    applies_to: {alertnames: [KubePodCrashLooping]}
    risk: medium
    approvals: 1
    approvers: [U0BOB]
"""


@pytest.fixture(scope="session")
def chromium() -> Chromium:
    return find_chromium()


@pytest.fixture(scope="session")
def _session_browser(chromium: Chromium) -> Iterator[WebDriver]:
    driver = start_chromium(chromium)  # once per session (about a second); each test gets its own stand-in origin
    yield driver
    driver.quit()


@pytest.fixture
def browser(_session_browser: WebDriver, request: pytest.FixtureRequest) -> Iterator[WebDriver]:
    """The browser; its last view of the page is kept as ``test-artifacts/<test>.png``, pass or fail."""
    yield _session_browser
    screenshot(_session_browser, artefact_path(request.node.nodeid))
    _session_browser.get("about:blank")  # no page of this test's (stopped) bot keeps listening


@pytest.fixture
def bot(settings: Settings, tmp_path: Path) -> Iterator[SlackBot]:
    """The bot on the real clock (its worker and outbox in their threads), remediation in dry-run."""
    actions = tmp_path / "actions.yml"
    actions.write_text(CATALOGUE)
    configured = settings.model_copy(update={"remediation": "dry-run", "actions_file": actions})
    with running_bot(configured) as running:
        slack = running.runtime.slack
        running.standin.link_bot(BotLink(running.url, slack.signing_secret, slack.ingest_token))
        yield running


def page_url(bot: SlackBot, user: str = "U0ALICE", channel: str = INCIDENTS, **more: str) -> str:
    return f"{bot.standin.url}/?{urlencode({'as': user, 'channel': channel, **more})}"


def send_sample(bot: SlackBot, name: str) -> None:
    [sample] = [sample for sample in samples() if sample.name == name]
    bot.send(sample.stamped(datetime.now(UTC)))


def messages(browser: WebDriver, pane: str = "#ws-messages") -> list[WebElement]:
    return browser.find_elements(By.CSS_SELECTOR, f"{pane} article.msg")


def message_with(browser: WebDriver, text: str, pane: str = "#ws-messages") -> WebElement | None:
    return next((m for m in messages(browser, pane) if text in m.text), None)


def button(message: WebElement, action_id: str) -> WebElement | None:
    found = message.find_elements(By.CSS_SELECTOR, f'[data-action-id^="{action_id}"]')
    return found[0] if found else None


def click(browser: WebDriver, find: Callable[[WebDriver], WebElement | None]) -> None:
    """Click what ``find`` finds, finding it again if a live update re-rendered it meanwhile."""

    def clicked(b: WebDriver) -> bool:
        element = find(b)
        if element is None:
            return False
        element.click()
        return True

    eventually(browser, clicked)


def message_button(text: str, action_id: str, pane: str = "#ws-messages") -> Callable[[WebDriver], WebElement | None]:
    """A finder: the button ``action_id`` of the message that says ``text``."""
    return lambda b: (m := message_with(b, text, pane)) and button(m, action_id)


def thread_link(b: WebDriver) -> WebElement | None:
    return next(iter(b.find_elements(By.CSS_SELECTOR, "#ws-messages .thread-link")), None)


def compose(browser: WebDriver, text: str, form: str = "#ws-composer") -> None:
    box = browser.find_element(By.CSS_SELECTOR, f"{form} textarea")
    box.send_keys(text)
    browser.find_element(By.CSS_SELECTOR, f"{form} button[type=submit]").click()


def mark_loaded(browser: WebDriver) -> None:
    """A mark that a reload would wipe: what the page shows after it arrived live."""
    browser.execute_script("window.__noReload = true;")


def not_reloaded(browser: WebDriver) -> bool:
    return bool(browser.execute_script("return window.__noReload === true;"))


def test_dump_dom_after_a_test_alert_shows_the_message_with_its_acknowledge_button(
    chromium: Chromium, bot: SlackBot
) -> None:
    send_sample(bot, CRASH_LOOP)
    post = bot.wait_for_post()

    dom = dump_dom(chromium, f"{bot.standin.url}/")  # the workspace URL as `incibot serve` logs it

    start = dom.index(f'data-ts="{post["ts"]}"')
    article = dom[start : dom.index("</article>", start)]
    assert "KubePodCrashLooping" in article
    assert f'data-action-id="{ACK_ACTION}"' in article and ">Acknowledge<" in article


def test_test_alert_appears_live_then_acknowledge_changes_it_and_its_thread_opens(
    browser: WebDriver, bot: SlackBot
) -> None:
    browser.get(page_url(bot))
    assert messages(browser) == []
    mark_loaded(browser)

    browser.find_element(By.ID, "ws-alert-menu").click()
    browser.find_element(By.CSS_SELECTOR, f'button.ws-test-alert[data-sample="{CRASH_LOOP}"]').click()
    eventually(
        browser, lambda b: (ack := message_button("KubePodCrashLooping", ACK_ACTION)(b)) and ack.text == "Acknowledge"
    )
    assert not_reloaded(browser)  # it arrived live

    click(browser, message_button("KubePodCrashLooping", ACK_ACTION))
    eventually(
        browser,
        lambda b: (
            (m := message_with(b, "KubePodCrashLooping")) and button(m, ACK_ACTION) is None and "Acknowledged" in m.text
        ),
    )
    assert not_reloaded(browser)
    [stored] = bot.posts()
    assert "acknowledged" in stored["text"]  # the click reached the bot as Slack's would, and it edited the post

    click(browser, thread_link)
    eventually(browser, lambda b: message_with(b, "Acknowledged by alice", "#ws-thread-messages"))
    assert browser.find_element(By.ID, "ws-thread").is_displayed()
    update_docs_screenshot(browser, "#ws-messages article.msg")


def test_slash_command_from_the_composer_answers_only_the_user_who_typed_it(browser: WebDriver, bot: SlackBot) -> None:
    bot.send(am_group([am_alert("HighErrorRate", service="checkout")]))
    bot.wait_for_post()
    browser.get(page_url(bot))

    compose(browser, "/incident list")
    answer = eventually(
        browser, lambda b: next(iter(b.find_elements(By.CSS_SELECTOR, "#ws-messages article.msg-ephemeral")), None)
    )
    assert "#1" in answer.text and "HighErrorRate" in answer.text
    assert "Only visible to you" in answer.text

    browser.get(page_url(bot, user="U0BOB"))
    assert browser.find_elements(By.CSS_SELECTOR, "#ws-messages article.msg-ephemeral") == []


def test_the_remediation_modal_submits_and_another_user_approves(browser: WebDriver, bot: SlackBot) -> None:
    send_sample(bot, CRASH_LOOP)
    post_ts = bot.wait_for_post()["ts"]
    browser.get(page_url(bot))

    eventually(
        browser,
        lambda b: (run := message_button("KubePodCrashLooping", RUN_ACTION)(b)) and "restart-writer" in run.text,
    )
    click(browser, message_button("KubePodCrashLooping", RUN_ACTION))
    modal = eventually(browser, lambda b: (m := b.find_element(By.ID, "ws-modal")).is_displayed() and m)
    replicas = modal.find_element(By.CSS_SELECTOR, '[name="param-replicas"]')
    replicas.clear()
    replicas.send_keys("3")
    modal.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    eventually(browser, lambda b: not b.find_element(By.ID, "ws-modal").is_displayed())
    remediation = bot.runtime.remediation
    assert remediation is not None
    [request] = remediation.service.requests_for(1)
    assert (request.action, request.params["replicas"], request.requester) == ("restart-writer", 3, "U0ALICE")

    browser.get(page_url(bot, user="U0BOB", thread=post_ts))  # Bob, an approver, opens the thread
    click(browser, message_button("requests restart-writer", APPROVE_ACTION, "#ws-thread-messages"))
    eventually(browser, lambda b: remediation.service.get(1).state is RequestState.DRY_RUN)
    eventually(browser, lambda b: message_with(b, "Dry run", "#ws-thread-messages"))


def test_a_dm_to_the_bot_gets_the_agents_answer(browser: WebDriver, bot: SlackBot) -> None:
    bot.send(am_group([am_alert("HighErrorRate", service="checkout")]))
    bot.wait_for_post()
    dm = bot.driver.im_channel("U0ALICE")
    browser.get(page_url(bot, channel=dm))

    compose(browser, "is checkout down?")
    click(browser, thread_link)  # the agent answers in the question's thread
    answer = eventually(
        browser,
        lambda b: next(
            (
                m
                for m in messages(b, "#ws-thread-messages")
                if m.find_elements(By.CSS_SELECTOR, f'.msg-author[data-user="{BOT_USER_ID}"]')
                and "HighErrorRate on checkout" in m.text
            ),
            None,
        ),
        timeout=10,
    )
    assert "triggered" in answer.text
