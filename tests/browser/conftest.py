"""Fixtures for the dashboard's browser tests: one headless Chromium, a page per test, and a
tiny REST client used to act as a producer or worker while the page watches."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Screenshots go to docs/img when RELAY_DOCS_SCREENSHOTS=1 (to refresh docs/dashboard.md),
# otherwise to a temporary directory so a normal test run leaves the checkout clean.
DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"


class RestClient:
    """Minimal JSON client for the Relay API (stdlib only, so the tests need nothing extra)."""

    def __init__(self, base_url: str, api_key: str = "") -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["X-API-KEY"] = self.api_key
        request = urllib.request.Request(
            f"{self.base_url}/api{path}", data=data, headers=headers, method=method
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            raise AssertionError(f"{method} {path} -> {error.code}: {error.read()!r}") from error

    def enqueue(self, queue: str, type_: str, payload: Any, priority: int = 0, **extra: Any) -> str:
        answer = self.call(
            "POST",
            "/queue/message",
            {"queue": queue, "type": type_, "payload": payload, "priority": priority, **extra},
        )
        return str(answer["id"])

    def dequeue(self, queue: str, consumer: str = "worker-1") -> dict[str, Any]:
        return dict(self.call("GET", f"/queue/message?queue={queue}&consumerId={consumer}"))


@pytest.fixture(scope="module")
def browser(base_url: str) -> Iterator[Any]:
    # Playwright's sync API keeps an asyncio loop marked as running in this thread while it is
    # open, so asyncio.run() (used by the database fixtures) fails meanwhile. Hence the browser
    # depends on base_url (the server is up before it starts) and closes with the module.
    if not CHROMIUM.exists():
        pytest.skip("browser tests need Debian's /usr/bin/chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def base_url(request: pytest.FixtureRequest) -> str:
    """URL of the server under test: the suite's live server, or RELAY_BROWSER_BASE_URL if set."""
    override = os.environ.get("RELAY_BROWSER_BASE_URL")
    if override:
        return override.rstrip("/")
    return str(request.getfixturevalue("live_server").url).rstrip("/")


@pytest.fixture
def rest(base_url: str) -> RestClient:
    return RestClient(base_url)


@pytest.fixture
def page(browser: Any, base_url: str) -> Iterator[Any]:
    context = browser.new_context(
        viewport={"width": 1280, "height": 800}, locale="en-GB", color_scheme="light", accept_downloads=True
    )
    context.set_default_timeout(6000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.fixture(scope="session")
def screenshot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.environ.get("RELAY_DOCS_SCREENSHOTS") == "1":
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        return DOCS_IMG
    return tmp_path_factory.mktemp("screenshots")
