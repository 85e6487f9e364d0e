"""Debian's Chromium for the browser tests: finding it (a missing browser skips, but fails under CI=true),
driving it with Selenium through Debian's chromedriver, ``--dump-dom``, and screenshots kept as test artefacts."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.wait import WebDriverWait

from tests.processes import REPO_ROOT

ARTIFACTS = REPO_ROOT / "test-artifacts"  # gitignored; CI keeps it beside the checkout
DOCS_SCREENSHOT = REPO_ROOT / "docs" / "workspace.png"
UPDATE_SCREENSHOT = "INCIBOT_TEST_UPDATE_SCREENSHOT"  # =1: the test that shows the most rewrites DOCS_SCREENSHOT
WINDOW = (1280, 900)


@dataclass(frozen=True)
class Chromium:
    browser: Path
    driver: Path

    def flags(self) -> list[str]:
        """Headless, and without the sandbox where it cannot run (as root, as in CI)."""
        flags = ["--headless=new", "--disable-gpu", "--disable-dev-shm-usage", f"--window-size={WINDOW[0]},{WINDOW[1]}"]
        if os.geteuid() == 0:
            flags.append("--no-sandbox")
        return flags


def find_chromium() -> Chromium:
    """Debian's ``chromium`` and ``chromium-driver``; skipped with the reason when missing, failed under CI."""
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if browser and driver:
        return Chromium(Path(browser), Path(driver))
    reason = "no browser: install Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; .ci/run installs them, and CI must not skip the browser tests")
    pytest.skip(reason)


def start_chromium(chromium: Chromium) -> WebDriver:
    options = webdriver.ChromeOptions()
    options.binary_location = str(chromium.browser)
    for flag in chromium.flags():
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(chromium.driver)), options=options)
    width, height = WINDOW  # the page's own size (the window's includes the browser's frame)
    metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    return driver


def dump_dom(chromium: Chromium, url: str) -> str:
    """``chromium --headless --dump-dom URL``: the DOM once the page has loaded (its live feed left open)."""
    result = subprocess.run(
        [str(chromium.browser), *chromium.flags(), "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"chromium --dump-dom exited with {result.returncode}:\n{result.stderr[-2000:]}"
    return result.stdout


def artefact_path(nodeid: str, suffix: str = "") -> Path:
    """Where a test's screenshot goes: ``test-artifacts/<test name><suffix>.png``."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid.split("::")[-1])
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / f"{name}{suffix}.png"


def screenshot(driver: WebDriver, path: Path) -> None:
    if not driver.save_screenshot(str(path)):
        raise AssertionError(f"the browser could not save a screenshot to {path}")


def update_docs_screenshot(driver: WebDriver, top: str) -> bool:
    """Rewrite ``docs/workspace.png`` (the element at CSS selector ``top`` scrolled to the top of its pane) when
    ``INCIBOT_TEST_UPDATE_SCREENSHOT=1``; whether it did."""
    if os.environ.get(UPDATE_SCREENSHOT) != "1":
        return False
    driver.execute_script("document.querySelector(arguments[0]).scrollIntoView({block: 'start'});", top)
    DOCS_SCREENSHOT.parent.mkdir(exist_ok=True)
    screenshot(driver, DOCS_SCREENSHOT)
    return True


def eventually(driver: WebDriver, condition: Callable[[WebDriver], Any], timeout: float = 10.0) -> Any:
    """Wait for ``condition`` to return something truthy (elements re-rendered meanwhile are retried)."""
    wait = WebDriverWait(driver, timeout, poll_frequency=0.05, ignored_exceptions=[StaleElementReferenceException])
    try:
        return wait.until(condition)
    except WebDriverException as error:
        raise AssertionError(f"not seen in the page within {timeout}s: {condition}") from error
