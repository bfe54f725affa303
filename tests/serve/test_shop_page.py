"""The shop page in a real headless Chromium on a real loopback server: suggestions, did-you-mean, relaxation, pins, console."""

from __future__ import annotations

import base64
from pathlib import Path

import polars as pl
import pytest
import test_shop
import test_web_page
from test_shop import ITEMS, Shop, search_events
from test_web_page import DevTools

from longtail.core.config import LongtailConfig
from longtail.pipeline.audit_step import run_audit

pytestmark = pytest.mark.slow
# The same loopback server and Chromium as the neighbouring tests, as fixtures of this module.
shop = test_shop.shop
browser = test_web_page.browser


def open_page(browser: DevTools, shop: Shop, key: str) -> None:
    browser.call("Page.navigate", url=f"{shop.url}/")
    browser.wait_for("document.readyState === 'complete' && !!document.getElementById('query')")
    browser.type_into("key", shop.keys[key])
    browser.evaluate("document.getElementById('key').dispatchEvent(new Event('change'))")


def screenshot(browser: DevTools, folder: Path, name: str) -> None:
    (folder / f"{name}.png").write_bytes(base64.b64decode(browser.call("Page.captureScreenshot", format="png")["data"]))


def texts(browser: DevTools, selector: str) -> list[str]:
    return browser.evaluate(f"[...document.querySelectorAll({selector!r})].map(e => e.textContent)")


def test_a_shopper_gets_suggestions_corrections_and_relaxed_results(browser: DevTools, shop: Shop, tmp_path: Path) -> None:
    open_page(browser, shop, "read")
    browser.type_into("query", "cordl")
    browser.wait_for("document.querySelectorAll('#suggestions li').length > 0")
    assert texts(browser, "#suggestions li")[0].startswith("cordless")
    screenshot(browser, tmp_path, "suggestions")

    browser.evaluate("document.getElementById('query').value = ''")
    browser.type_into("query", "nitrile gloevs", enter=True)
    browser.wait_for("document.getElementById('notice').textContent.includes('Showing results for')")
    assert "nitrile gloves" in browser.evaluate("document.getElementById('notice').textContent")
    assert texts(browser, "#results li a")[0] == "Nitrile examination gloves, large"
    screenshot(browser, tmp_path, "did-you-mean")
    browser.evaluate("document.getElementById('original').click()")
    browser.wait_for("document.getElementById('notice').textContent.includes('left out: gloevs')")

    browser.evaluate("document.getElementById('query').value = ''")
    browser.type_into("query", "glass zqxvw", enter=True)
    browser.wait_for("(document.querySelector('#notice .relaxed') || {textContent: ''}).textContent.includes('zqxvw')")
    notice = browser.evaluate("document.querySelector('#notice .relaxed').textContent")
    assert "left out: zqxvw" in notice and "“glass”" in notice
    assert {t for t in texts(browser, "#results li a")[:2]} == {"Borosilicate glass beaker 500 ml", "Erlenmeyer flask, glass, 250 ml"}
    screenshot(browser, tmp_path, "relaxed")
    assert browser.evaluate("document.getElementById('status').textContent") == ""


def test_a_pinned_item_comes_first_and_the_console_shows_the_audit_report(browser: DevTools, shop: Shop, tmp_path: Path) -> None:
    import httpx

    with httpx.Client(base_url=shop.url, headers={"Authorization": f"Bearer {shop.keys['admin']}"}) as admin:
        admin.post("/merchandising/rules", json={"action": "pin", "query": "power drill", "item_id": "beaker"}).raise_for_status()
    events = tmp_path / "events.parquet"
    pl.DataFrame(search_events()).with_columns(pl.col("timestamp").str.to_datetime(time_zone="UTC")).write_parquet(events)
    run_audit(shop.folder / "items.csv", events, shop.folder / "reports" / "audit", LongtailConfig())

    open_page(browser, shop, "admin")
    browser.type_into("query", "power drill", enter=True)
    browser.wait_for("document.querySelectorAll('#results li').length > 0")
    assert texts(browser, "#results li a")[0] == "Borosilicate glass beaker 500 ml"
    assert texts(browser, "#results li .badge")[0] == "pinned"
    assert browser.evaluate("document.querySelectorAll('#suggestions li').length") == 0
    screenshot(browser, tmp_path, "pinned")

    browser.evaluate("document.getElementById('console-button').click()")
    browser.wait_for("!document.getElementById('console').hidden")
    console = browser.evaluate("document.getElementById('console').textContent")
    assert "audit report: reports/audit/report.json" in console and "quarantined" in console and "ModelServices" in console
    cells = texts(browser, "#console table tr td")
    assert cells[:2] == ["items", str(ITEMS.height)]
    assert "beaker" in cells
    browser.evaluate("document.getElementById('console').scrollIntoView()")
    screenshot(browser, tmp_path, "console")
