"""The console in headless Chromium: its figures are the API's, its table moves as the API
would, connections' health changes without a reload, keys behave, and the page is clean
(no other host, no console error, no CSP violation, no serious accessibility problem)."""

from __future__ import annotations

import json
import re
import unicodedata
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx2
import pytest
from selenium.webdriver import Chrome as WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

from tests.console.conftest import (
    AXE,
    READER_KEY,
    SCREENSHOTS,
    WRITER_KEY,
    Evented,
    Stack,
    browser_log,
    chrome,
    figure,
    loaded,
    open_console,
    settle,
    text_of,
    wait_until,
    written,
)
from tests.support.events import observation

pytestmark = pytest.mark.e2e

MEANINGS = ("cash", "overdraft", "receivable", "payable")


def switch_language(driver: WebDriver, lang: str) -> None:
    Select(driver.find_element(By.ID, "lang")).select_by_value(lang)
    wait_until(driver, lambda d: d.find_element(By.TAG_NAME, "html").get_attribute("lang") == lang)


def table_accounts(driver: WebDriver) -> list[str]:
    # Read in one go: the page redraws its tables each time it looks again.
    accounts: list[str] = driver.execute_script(
        "return [...document.querySelectorAll('#positions tbody tr[data-account]')]"
        ".map(r => r.dataset.account)"
    )
    return accounts


def totals_table(driver: WebDriver) -> dict[str, list[str]]:
    """Each currency's cells as the page shows them (the figure and any label after it)."""
    rows: dict[str, list[str]] = driver.execute_script(
        "return Object.fromEntries([...document.querySelectorAll('#totals tbody tr')]"
        ".map(r => [r.dataset.currency, [...r.querySelectorAll('td')].map(c => c.textContent)]))"
    )
    return rows


def position_row(driver: WebDriver, account: str) -> list[str]:
    cells: list[str] = driver.execute_script(
        "const r = document.querySelector(`tr[data-account='${arguments[0]}']`);"
        "return r ? [...r.querySelectorAll('th, td')].map(c => c.textContent) : []",
        account,
    )
    return cells


def health(driver: WebDriver) -> dict[str, str]:
    # Read in one go: the page redraws the table each time it looks again.
    found: dict[str, str] = driver.execute_script(
        "return Object.fromEntries([...document.querySelectorAll('#health tbody tr')]"
        ".map(r => [r.dataset.source, r.dataset.status]))"
    )
    return found


def health_text(driver: WebDriver, source: str) -> str:
    text: str = driver.execute_script(
        "const r = document.querySelector(`#health tr[data-source='${arguments[0]}']`);"
        "return r ? r.textContent : ''",
        source,
    )
    return text


def errors_in_log(driver: WebDriver) -> list[dict[str, Any]]:
    return [entry for entry in browser_log(driver) if entry["level"] == "SEVERE"]


@pytest.mark.parametrize("lang", ["en", "es"])
def test_the_figures_on_the_page_are_the_api_figures_written_the_local_way(
    page: WebDriver, sandbox: Stack, lang: str
) -> None:
    open_console(page, sandbox)
    wait_until(page, loaded)
    switch_language(page, lang)
    body = sandbox.api("/positions", page_size=25).json()

    shown_totals = totals_table(page)
    assert set(shown_totals) == {total["currency"] for total in body["totals"]}
    for total in body["totals"]:
        cells = shown_totals[total["currency"]]
        expected = [written(total[m], lang) for m in (*MEANINGS, "net")]
        assert [figure(c) for c in cells] == expected, total["currency"]
        # What is owed is marked in words, never by colour alone.
        owed_label = {"en": "owed", "es": "deuda"}[lang]
        for cell, meaning in zip(cells, (*MEANINGS, "net"), strict=True):
            assert (owed_label in cell) == (Decimal(total[meaning]) < 0)

    # Page 1 of the table is the API's page 1 (25 a page, its order), figure by figure.
    assert table_accounts(page) == [p["account_id"] for p in body["positions"]]
    for position in body["positions"][::5]:
        name, currency, amount, *_ = position_row(page, position["account_id"])
        assert (name, currency) == (position["counterparty_name"], position["currency"])
        assert figure(amount) == written(position["amount"], lang)
    if lang == "es":
        # es-AR: 1.234,56 — a sandbox figure with thousands, checked literally once.
        assert "98.765.432.109,87" in page.find_element(By.ID, "positions").text
    # The invitation to pick a reporting currency follows the language switched to.
    invitation = {"en": "Choose a report currency", "es": "Elegí una moneda de reporte"}[lang]
    assert invitation in page.find_element(By.ID, "consolidated-note").text


def test_a_spanish_browser_gets_the_page_in_spanish(sandbox: Stack) -> None:
    spanish = chrome("es-AR,es")
    try:
        spanish.get(sandbox.url + "/")
        wait_until(spanish, loaded)
        assert spanish.find_element(By.TAG_NAME, "html").get_attribute("lang") == "es"
        assert spanish.find_element(By.ID, "totals-title").text == "Totales por moneda"
        assert "98.771.769.419,84" in spanish.find_element(By.ID, "totals").text
    finally:
        spanish.quit()


def _base(name: str) -> str:
    # As the page compares names (Intl.Collator, base sensitivity): no accents, no case.
    decomposed = unicodedata.normalize("NFKD", name)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def test_the_table_is_sorted_and_paged_from_the_keyboard(page: WebDriver, sandbox: Stack) -> None:
    open_console(page, sandbox)
    wait_until(page, loaded)
    button = page.find_element(By.CSS_SELECTOR, 'th[data-sort="counterparty_name"] button')
    button.send_keys(Keys.ENTER)  # ascending: the API's own order
    button.send_keys(Keys.ENTER)  # descending
    header = page.find_element(By.CSS_SELECTOR, 'th[data-sort="counterparty_name"]')
    assert header.get_attribute("aria-sort") == "descending"
    names = page.execute_script(
        "return [...document.querySelectorAll('#positions tbody th')].map(c => c.textContent)"
    )
    everything = sandbox.api("/positions").json()["positions"]
    expected = sorted((p["counterparty_name"] for p in everything), key=_base, reverse=True)
    assert names == expected[:25]
    page.find_element(By.ID, "next").send_keys(Keys.SPACE)
    assert "2" in page.find_element(By.ID, "page-info").text


def test_filters_search_paging_and_sorting_change_the_table_as_the_api_would(
    page: WebDriver, sandbox: Stack
) -> None:
    open_console(page, sandbox)
    wait_until(page, loaded)

    # Page 2 is the API's page 2.
    page.find_element(By.ID, "next").click()
    second = sandbox.api("/positions", page=2, page_size=25).json()["positions"]
    assert table_accounts(page) == [p["account_id"] for p in second]
    page.find_element(By.ID, "prev").click()

    # Filters are the API's filters.
    Select(page.find_element(By.ID, "f-kind")).select_by_value("external")
    Select(page.find_element(By.ID, "f-meaning")).select_by_value("payable")
    page.find_element(By.ID, "f-currency").send_keys("ars")
    settle(page)
    answer = sandbox.api("/positions", kind="external", meaning="payable", currency="ARS").json()
    expected = [p["account_id"] for p in answer["positions"]]
    wait_until(page, lambda d: table_accounts(d) == expected[:25])
    assert list(totals_table(page)) == ["ARS"]

    # Search is the API's (accent-insensitive): "cafe" finds Café del Sur's account.
    page.find_element(By.ID, "f-q").send_keys("cafe")
    settle(page)
    found = sandbox.api("/counterparties", q="cafe").json()["items"]
    ids = {c["id"] for c in found}
    expected = [p["account_id"] for p in answer["positions"] if p["counterparty_id"] in ids]
    assert expected
    wait_until(page, lambda d: table_accounts(d) == expected)

    # Clearing the filters, then sorting by amount: exact decimal order, largest first.
    page.find_element(By.ID, "f-q").clear()
    page.find_element(By.ID, "f-currency").clear()
    Select(page.find_element(By.ID, "f-kind")).select_by_value("")
    Select(page.find_element(By.ID, "f-meaning")).select_by_value("")
    settle(page)
    everything = sandbox.api("/positions").json()["positions"]
    wait_until(page, lambda d: len(table_accounts(d)) == min(25, len(everything)))
    button = page.find_element(By.CSS_SELECTOR, 'th[data-sort="amount"] button')
    button.click()
    button.click()
    header = page.find_element(By.CSS_SELECTOR, 'th[data-sort="amount"]')
    assert header.get_attribute("aria-sort") == "descending"
    by_amount = sorted(everything, key=lambda p: Decimal(p["amount"]), reverse=True)
    assert table_accounts(page) == [p["account_id"] for p in by_amount[:25]]


def test_a_fault_turns_a_connection_stale_then_unavailable_and_recovery_clears_it(
    page: WebDriver, sandbox: Stack
) -> None:
    open_console(page, sandbox)
    wait_until(page, lambda d: health(d).get("finsync") == "ok")
    page.execute_script("window.__same_page = true")
    sandbox.fault(sandbox.finsync_url, mode="error")
    try:
        wait_until(page, lambda d: health(d).get("finsync") == "stale", seconds=30)
        mark = page.find_element(By.ID, "state-mark")
        assert mark.get_attribute("data-state") in ("stale", "partial")
        # Why, in words and by its code.
        wait_until(page, lambda d: "upstream_error" in health_text(d, "finsync"))
        assert "the upstream answered with an error" in health_text(page, "finsync")
        wait_until(page, lambda d: health(d).get("finsync") == "unavailable", seconds=30)
        assert page.find_element(By.ID, "state-mark").get_attribute("data-state") == "partial"
    finally:
        sandbox.fault(sandbox.finsync_url)
    wait_until(page, lambda d: health(d).get("finsync") == "ok", seconds=30)
    assert page.execute_script("return window.__same_page === true")  # never reloaded


def test_a_change_told_by_events_updates_the_page_at_once(
    page: WebDriver, evented: Evented
) -> None:
    open_console(page, evented.stack)
    wait_until(page, loaded)
    mark = page.find_element(By.ID, "state-mark")
    wait_until(page, lambda d: mark.get_attribute("data-live") == "true")
    assert "Live" in mark.text
    account = evented.stack.api("/positions", page_size=1).json()["positions"][0]["account_id"]
    assert "just changed" not in " ".join(position_row(page, account))
    evented.log.write(observation(1, accounts={account: Decimal("10.00")}))
    # Marked as just changed within seconds (polling would take 15 s and mark nothing).
    wait_until(page, lambda d: "just changed" in " ".join(position_row(d, account)), seconds=5)


def test_what_this_tesoro_does_not_serve_is_hidden_with_a_note(
    page: WebDriver, sandbox: Stack
) -> None:
    spec = httpx2.get(sandbox.url + "/openapi.json", timeout=10).json()
    positions = [p["name"] for p in spec["paths"]["/positions"]["get"]["parameters"]]
    open_console(page, sandbox)
    wait_until(page, loaded)
    settle(page)
    if "report_currency" not in positions:
        assert not page.find_element(By.ID, "consolidated-form").is_displayed()
        note = page.find_element(By.ID, "consolidated-note")
        assert "does not convert" in note.text
    else:
        assert page.find_element(By.ID, "consolidated-form").is_displayed()
    if "/positions/history" not in spec["paths"]:
        assert "keeps no history yet" in page.find_element(By.ID, "history-note").text
        assert not page.find_element(By.ID, "history").is_displayed()


def test_the_consolidated_figure_and_its_rates_are_the_apis(
    page: WebDriver, sandbox: Stack
) -> None:
    spec = httpx2.get(sandbox.url + "/openapi.json", timeout=10).json()
    parameters = [p["name"] for p in spec["paths"]["/positions"]["get"]["parameters"]]
    if "report_currency" not in parameters:
        pytest.skip("this tesoro has no reporting currency (the note is checked above)")
    open_console(page, sandbox)
    wait_until(page, loaded)
    Select(page.find_element(By.ID, "report-currency")).select_by_value("EUR")
    wait_until(page, lambda d: d.find_elements(By.ID, "consolidated-net"))
    body = sandbox.api("/positions", page_size=25, report_currency="EUR", rates="official").json()
    consolidated = body["consolidated"]
    shown = page.find_element(By.ID, "consolidated-net")
    assert shown.get_attribute("data-amount") == consolidated["net"]
    assert figure(text_of(shown)) == written(consolidated["net"], "en")
    rows: dict[str, list[str]] = page.execute_script(
        "return Object.fromEntries([...document.querySelectorAll('#rates tbody tr')]"
        ".map(r => [r.querySelector('th').textContent,"
        " [...r.querySelectorAll('td')].map(c => c.textContent)]))"
    )
    assert set(rows) == {rate["currency"] for rate in consolidated["rates"]}
    totals = {t["currency"]: t for t in body["totals"]}
    for rate in consolidated["rates"]:
        converted, rate_text, legs = rows[rate["currency"]]
        assert figure(converted) == written(totals[rate["currency"]]["converted"]["net"], "en")
        assert written(rate["rate"], "en") in rate_text
        for leg in rate["legs"]:
            assert leg["rate_date"] in legs
            assert written(leg["published"], "en") in legs
    for missing in consolidated["missing_currencies"]:
        assert missing in page.find_element(By.ID, "consolidated-note").text


def test_the_history_and_the_changes_are_the_apis(page: WebDriver, sandbox: Stack) -> None:
    spec = httpx2.get(sandbox.url + "/openapi.json", timeout=10).json()
    if "/positions/history" not in spec["paths"]:
        pytest.skip("this tesoro keeps no history (the note is checked above)")
    open_console(page, sandbox)
    wait_until(page, loaded)
    wait_until(page, lambda d: d.find_elements(By.CSS_SELECTOR, "#history table"))
    assert page.find_element(By.CSS_SELECTOR, "#history canvas").is_displayed()
    last: list[str] = page.execute_script(
        "const rows = document.querySelectorAll('#history table:not(#changes) tbody tr');"
        "return [...rows[rows.length - 1].querySelectorAll('td')].map(c => c.textContent)"
    )
    currencies: list[str] = page.execute_script(
        "return [...document.querySelectorAll('#history table:not(#changes) thead th')]"
        ".slice(1).map(c => c.textContent)"
    )
    since = (datetime.now(UTC) - timedelta(days=30)).isoformat()
    points = sandbox.api("/positions/history", interval="day", **{"from": since}).json()["points"]
    nets = {t["currency"]: t["net"] for t in points[-1]["totals"]}
    assert [figure(cell) for cell in last] == [written(nets[c], "en") for c in currencies]


def test_without_keys_nothing_is_asked_and_a_writer_may_create(
    page: WebDriver, sandbox: Stack
) -> None:
    open_console(page, sandbox)
    wait_until(page, loaded)
    assert not page.find_element(By.ID, "key-section").is_displayed()
    assert page.find_element(By.ID, "create-section").is_displayed()


def _enter_key(driver: WebDriver, key: str) -> None:
    wait_until(driver, lambda d: d.find_element(By.ID, "key-input").is_displayed())
    field = driver.find_element(By.ID, "key-input")
    field.send_keys(key)
    field.submit()


def test_the_key_flow_wrong_reader_writer_and_a_duplicate(page: WebDriver, keyed: Stack) -> None:
    open_console(page, keyed)
    # No key: asked, nothing else shown.
    wait_until(page, lambda d: d.find_element(By.ID, "key-section").is_displayed())
    assert not page.find_element(By.ID, "content").is_displayed()

    # A wrong key explains itself and is not kept.
    _enter_key(page, "not-a-key")
    error = page.find_element(By.ID, "key-error")
    wait_until(page, lambda d: error.is_displayed())
    assert "401" in error.text
    assert "not a valid API key" in error.text
    assert page.execute_script("return sessionStorage.getItem('tesoro.key')") is None
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    assert page.save_screenshot(str(SCREENSHOTS / "console-en-1366x768-wrong-key.png"))

    # A reader sees the figures and no create form.
    _enter_key(page, READER_KEY)
    wait_until(page, loaded)
    settle(page)
    assert not page.find_element(By.ID, "create-section").is_displayed()
    # The consent ending in four and a half days: 5 days left, on its connection.
    assert "consent ends in 5 days" in health_text(page, "finqware:bt-main")
    # The key is in the tab's storage, never in the address or the page.
    assert READER_KEY not in page.current_url
    assert READER_KEY not in str(page.page_source)

    # A writer creates; the same name again is a 409, explained with the existing id.
    page.find_element(By.ID, "forget-key").click()
    _enter_key(page, WRITER_KEY)
    wait_until(page, lambda d: d.find_element(By.ID, "create-section").is_displayed())
    page.find_element(By.ID, "c-name").send_keys("Consola Prueba S.A.")
    page.find_element(By.ID, "c-name").submit()
    result = page.find_element(By.ID, "create-result")
    wait_until(page, lambda d: "Created" in result.text)
    created = re.search(r"\((finsync:\d+)\)", result.text)
    assert created is not None
    listed = keyed.api("/counterparties", q="consola prueba").json()["items"]
    assert [c["id"] for c in listed] == [created.group(1)]

    page.find_element(By.ID, "c-name").send_keys("CONSOLA  prueba s.a.")
    page.find_element(By.ID, "c-name").submit()
    # Explained: the one that exists, by its name and id.
    named = f"already exists: Consola Prueba S.A. ({created.group(1)})"
    wait_until(page, lambda d: named in result.text)
    page.execute_script("document.getElementById('create-section').scrollIntoView()")
    assert page.save_screenshot(str(SCREENSHOTS / "console-en-1366x768-duplicate.png"))
    # The only errors logged are the browser's notes of the refusals above (the wrong key's
    # 401, the scope probe's 403 or 422, the duplicate's 409): no script error, no CSP one.
    for entry in errors_in_log(page):
        assert entry["source"] == "network", entry
        assert re.search(r"status of (401|403|409|422) ", entry["message"]), entry


def test_each_create_attempt_sends_its_own_idempotency_key(page: WebDriver, keyed: Stack) -> None:
    open_console(page, keyed)
    _enter_key(page, WRITER_KEY)
    wait_until(page, lambda d: d.find_element(By.ID, "create-section").is_displayed())
    # Watch the page's own requests from inside it (the wire is the browser's).
    page.execute_script(
        """
        window.__sent = [];
        const original = window.fetch;
        window.fetch = (url, options = {}) => {
          const headers = new Headers(options.headers || {});
          if ((options.method || 'GET') === 'POST') window.__sent.push(
            [headers.get('Idempotency-Key'), headers.get('Authorization') ? 'bearer' : null]);
          return original(url, options);
        };
        """
    )
    for name in ("Consola Uno SRL", "Consola Dos SRL"):
        page.find_element(By.ID, "c-name").send_keys(name)
        page.find_element(By.ID, "c-name").submit()
        wait_until(page, lambda d: name in d.find_element(By.ID, "create-result").text)  # noqa: B023
    sent = page.execute_script("return window.__sent")
    assert len(sent) == 2
    assert all(key and auth == "bearer" for key, auth in sent)
    assert sent[0][0] != sent[1][0]


def test_no_other_host_no_console_error_no_csp_violation(page: WebDriver, sandbox: Stack) -> None:
    for path in ("/console/", "/docs"):
        page.get(sandbox.url + path)
        if path == "/console/":
            wait_until(page, loaded)
        else:
            wait_until(page, lambda d: d.find_elements(By.CSS_SELECTOR, ".opblock"))
        settle(page)
        urls = page.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)"
        )
        assert urls
        assert all(url.startswith(sandbox.url + "/") for url in urls), urls
        assert errors_in_log(page) == []
        response = httpx2.get(sandbox.url + path, timeout=10)
        assert "default-src 'self'" in response.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert response.headers["referrer-policy"] == "no-referrer"
        assert "<script>" not in response.text  # every script is a file


def _axe(driver: WebDriver) -> list[dict[str, Any]]:
    driver.execute_script(AXE.read_text())
    result = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document).then(r => done(JSON.stringify(r.violations)));"
    )
    violations: list[dict[str, Any]] = json.loads(result)
    return [v for v in violations if v["impact"] in ("serious", "critical")]


@pytest.mark.parametrize("lang", ["en", "es"])
def test_axe_finds_no_serious_or_critical_violation(
    page: WebDriver, sandbox: Stack, lang: str
) -> None:
    open_console(page, sandbox)
    wait_until(page, loaded)
    switch_language(page, lang)
    settle(page)
    found = _axe(page)
    assert found == [], [(v["id"], [n["target"] for n in v["nodes"]]) for v in found]


@pytest.mark.parametrize(("width", "height"), [(1366, 768), (390, 844)])
@pytest.mark.parametrize("lang", ["en", "es"])
def test_screenshots_and_no_horizontal_scrolling_of_the_page(
    page: WebDriver, sandbox: Stack, lang: str, width: int, height: int
) -> None:
    page.set_window_size(width, height)
    open_console(page, sandbox)
    wait_until(page, loaded)
    switch_language(page, lang)
    settle(page)
    scroll_width, inner_width = page.execute_script(
        "return [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert scroll_width <= inner_width
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    # The whole page, not only the first screen.
    full = page.execute_script("return document.documentElement.scrollHeight")
    page.set_window_size(width, max(height, full))
    assert page.save_screenshot(str(SCREENSHOTS / f"console-{lang}-{width}x{height}.png"))
    page.set_window_size(width, height)
    assert page.save_screenshot(str(SCREENSHOTS / f"console-{lang}-{width}x{height}-top.png"))
