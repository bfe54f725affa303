"""The web page in a real headless Chromium: type a key and a query, see results, facets, similar items and a user's picks."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import Api

websocket = pytest.importorskip("websocket", reason="websocket-client (dev extra) drives Chromium over the DevTools protocol")

ARTIFACTS = Path(__file__).resolve().parents[2] / "out" / "test-artifacts"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",
    "--window-size=1280,900",
]


def chromium_binary() -> str | None:
    return next((found for name in ("chromium", "chromium-browser") if (found := shutil.which(name))), None)


class DevTools:
    """The few DevTools-protocol calls the test needs, over one page's websocket."""

    def __init__(self, url: str) -> None:
        self.socket = websocket.create_connection(url, timeout=30, suppress_origin=True)
        self.last_id = 0

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.last_id += 1
        self.socket.send(json.dumps({"id": self.last_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == self.last_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def evaluate(self, expression: str) -> Any:
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 30.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.1)
        status = self.evaluate("document.getElementById('status').textContent")
        raise AssertionError(f"timed out waiting for {expression}; page status: {status!r}")

    def type_into(self, element_id: str, text: str, enter: bool = False) -> None:
        """Focus a field and type as a keyboard would; Enter submits its form."""
        self.evaluate(f"document.getElementById({element_id!r}).focus()")
        self.call("Input.insertText", text=text)
        if enter:
            for kind in ("keyDown", "keyUp"):
                self.call(
                    "Input.dispatchKeyEvent",
                    type=kind,
                    key="Enter",
                    code="Enter",
                    windowsVirtualKeyCode=13,
                    nativeVirtualKeyCode=13,
                    text="\r" if kind == "keyDown" else "",
                )


@pytest.fixture
def browser() -> Iterator[DevTools]:
    binary = chromium_binary()
    if binary is None:
        pytest.skip("Chromium is not installed (Debian package `chromium`; `make setup` installs it where apt-get can)")
    profile = Path(tempfile.mkdtemp(prefix="longtail-chromium-"))
    process = subprocess.Popen(
        [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().count("\n") >= 1):
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("Chromium did not open its DevTools port")
            time.sleep(0.1)
        port = int(port_file.read_text().splitlines()[0])
        pages = [target for target in httpx.get(f"http://127.0.0.1:{port}/json/list").json() if target["type"] == "page"]
        tools = DevTools(pages[0]["webSocketDebuggerUrl"])
        yield tools
        tools.socket.close()
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # the group this test started: Chromium and its helpers
        process.wait(timeout=20)
        shutil.rmtree(profile, ignore_errors=True)


def test_a_person_searches_filters_and_sees_recommendations(browser: DevTools, api: Api) -> None:
    browser.call("Page.navigate", url=f"{api.url}/")
    browser.wait_for("document.readyState === 'complete' && !!document.getElementById('query')")
    browser.type_into("key", api.keys["read"])
    browser.type_into("query", "sanding roll", enter=True)

    assert browser.wait_for("document.querySelectorAll('#results li').length") == 10
    titles = browser.evaluate("[...document.querySelectorAll('#results li a')].map(a => a.textContent)")
    assert "sanding" in titles[0].lower() and "roll" in titles[0].lower()
    assert browser.evaluate("document.getElementById('summary').textContent").endswith("matching items")
    facets = browser.evaluate("[...document.querySelectorAll('#facets .facet')].map(b => b.textContent)")
    assert any(text.startswith("PORTER-CABLE (") for text in facets)

    browser.evaluate("[...document.querySelectorAll('#facets .facet')].find(b => b.textContent.startsWith('PORTER-CABLE (')).click()")
    browser.wait_for("document.querySelector('#facets .facet.active') !== null")
    brands = browser.evaluate("[...document.querySelectorAll('#results li .meta')].map(m => m.textContent.split(' · ')[0])")
    assert brands and set(brands) == {"PORTER-CABLE"}

    browser.evaluate("document.querySelector('#results li a').click()")
    assert browser.wait_for("document.querySelectorAll('#similar li').length") == 5

    browser.type_into("user", "ABW8NXS7SV55K", enter=True)
    assert browser.wait_for("document.querySelectorAll('#recommendations li').length") == 10
    profile = browser.wait_for("document.getElementById('profile').textContent")
    assert "events, last seen" in profile and "Top categories" in profile
    assert browser.evaluate("document.getElementById('status').textContent") == ""

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = browser.call("Page.captureScreenshot", format="png")["data"]
    (ARTIFACTS / "web-page.png").write_bytes(base64.b64decode(shot))


def test_the_page_reports_a_wrong_key(browser: DevTools, api: Api) -> None:
    browser.call("Page.navigate", url=f"{api.url}/")
    browser.wait_for("document.readyState === 'complete' && !!document.getElementById('query')")
    browser.type_into("key", "lt_0000_wrong")
    browser.type_into("query", "glue", enter=True)
    assert "unknown, revoked or malformed" in browser.wait_for("document.getElementById('status').textContent")
