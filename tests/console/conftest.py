"""The console in a real browser: Debian's chromium and chromedriver (`make chromium`) driven by
selenium, against tesoro on the sandbox over a real loopback socket."""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx2
import pytest
from selenium import webdriver
from selenium.webdriver import Chrome as WebDriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from app.main import create_app
from app.sandbox import create_finqware_app, create_finsync_app
from app.sandbox.wiring import sandbox_transport
from app.settings import Settings
from tests.support.apps import upstream_settings
from tests.support.events import MemoryLog
from tests.support.keys import sha256
from tests.support.servers import serve

READER_KEY = "console-reader-key"
WRITER_KEY = "console-writer-key"
# The README names this folder; a reviewer looks at the pictures there.
SCREENSHOTS = Path(__file__).resolve().parents[2] / ".gen" / "screenshots"
AXE = Path(__file__).parent / "vendor" / "axe.min.js"

# Short lifetimes so a fault shows on the page within seconds (the page polls as often as
# FinSync's data expires, at least every 2 s).
FAST: dict[str, Any] = {
    "finsync_ttl_seconds": 1,
    "finqware_ttl_seconds": 1,
    "stale_if_error_seconds": 6,
    "failure_backoff_seconds": 0,
    "min_refresh_interval_seconds": 0,
    "breaker_failures": 1000,
    "upstream_retry_attempts": 1,
    "upstream_timeout_seconds": 1,
}


@dataclass
class Stack:
    """tesoro and its two simulators, each on its own loopback port."""

    url: str
    finsync_url: str
    finqware_url: str
    headers: dict[str, str] = field(default_factory=dict)

    def api(self, path: str, **params: Any) -> httpx2.Response:
        return httpx2.get(f"{self.url}{path}", params=params, headers=self.headers, timeout=10)

    def fault(self, simulator_url: str, **fault: object) -> None:
        httpx2.put(f"{simulator_url}/_sandbox/faults", json=fault, timeout=5).raise_for_status()


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Stack]:
    """tesoro as `tesoro serve --sandbox` builds it (no keys: nobody is asked for one); its
    simulators also listen on ports of their own, so a test switches their faults by HTTP."""
    finsync, finqware = create_finsync_app(), create_finqware_app()
    settings = Settings(_env_file=None, sandbox=True, **FAST)
    with (
        serve(finsync) as finsync_url,
        serve(finqware) as finqware_url,
        serve(create_app(settings, transport=sandbox_transport(finsync, finqware))) as url,
    ):
        yield Stack(url, finsync_url, finqware_url)


@dataclass
class Evented:
    """tesoro on the sandbox whose events come from a history the test writes to."""

    stack: Stack
    log: MemoryLog


@pytest.fixture(scope="module")
def evented() -> Iterator[Evented]:
    log = MemoryLog()
    # Data that stays fresh for a minute: the page polls only every 15 s, so what arrives
    # sooner came through /events.
    settings = Settings(_env_file=None, sandbox=True, finsync_ttl_seconds=60)
    with serve(create_app(settings, observations=log)) as url:
        yield Evented(Stack(url, "", ""), log)


@pytest.fixture(scope="module")
def keyed() -> Iterator[Stack]:
    """tesoro with a reader and a writer key, and a bank consent ending in five days."""
    with serve(create_finsync_app()) as finsync_url, serve(create_finqware_app()) as fq_url:
        settings = upstream_settings(
            finsync_url,
            fq_url + "/v1",
            expiries={"bt-main": datetime.now(UTC) + timedelta(days=4, hours=12)},
            api_keys={
                "reader": {"sha256": sha256(READER_KEY), "scopes": ["read"]},
                "writer": {"sha256": sha256(WRITER_KEY), "scopes": ["read", "write"]},
            },
        )
        with serve(create_app(settings)) as url:
            yield Stack(url, finsync_url, fq_url, {"Authorization": f"Bearer {WRITER_KEY}"})


def _chromium() -> tuple[str, str]:
    browser = shutil.which("chromium")
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        raise RuntimeError("chromium and chromedriver are not installed: run `make chromium`")
    return browser, driver


def chrome(languages: str = "en-US,en") -> WebDriver:
    """Headless Chromium whose people read `languages` (its Accept-Language and
    navigator.languages), logging everything the page logs."""
    binary, driver = _chromium()
    options = Options()
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_experimental_option("prefs", {"intl.accept_languages": languages})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    started = webdriver.Chrome(options=options, service=Service(driver))
    started.set_window_size(1366, 768)
    return started


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    # English first; the tests switch to Spanish on the page.
    started = chrome()
    try:
        yield started
    finally:
        started.quit()


@pytest.fixture
def page(browser: WebDriver) -> Iterator[WebDriver]:
    """The browser with a clean tab state (no key, no language kept) and an empty log."""
    yield browser
    browser_log(browser)  # emptied for the next test
    if browser.current_url.startswith("http"):
        browser.execute_script("sessionStorage.clear()")
    browser.set_window_size(1366, 768)


def browser_log(driver: WebDriver) -> list[dict[str, Any]]:
    """What the page logged since the last call (console messages, network failures, CSP)."""
    entries: list[dict[str, Any]] = driver.get_log("browser")  # type: ignore[no-untyped-call]
    return entries


def wait_until(
    driver: WebDriver, condition: Callable[[WebDriver], Any], seconds: float = 20
) -> Any:
    return WebDriverWait(driver, seconds, poll_frequency=0.1).until(condition)


def open_console(driver: WebDriver, stack: Stack) -> None:
    driver.get(f"{stack.url}/")
    driver.execute_script("sessionStorage.clear()")
    driver.get(f"{stack.url}/")


def loaded(driver: WebDriver) -> bool:
    return bool(driver.execute_script("return document.querySelector('#totals tbody tr') !== null"))


def text_of(element: WebElement) -> str:
    return str(element.get_attribute("textContent")).strip()


def settle(driver: WebDriver) -> None:
    """Until the page has answered its latest question (filters are debounced 250 ms)."""
    time.sleep(0.4)
    wait_until(driver, lambda d: d.execute_script("return document.readyState") == "complete")


def written(amount: str, lang: str) -> str:
    """A decimal string as the page must write it: en-US `-1,234.5`, es-AR `-1.234,5`."""
    whole, _, fraction = amount.lstrip("-").partition(".")
    group, point = (",", ".") if lang == "en" else (".", ",")
    grouped = f"{int(whole):,}".replace(",", group)
    negative = Decimal(amount) < 0
    return ("-" if negative else "") + grouped + (point + fraction if fraction else "")


def figure(cell_text: str) -> str:
    """The figure in a cell, without the label that marks what is owed."""
    return re.split(r"\s+", cell_text.strip())[0]
