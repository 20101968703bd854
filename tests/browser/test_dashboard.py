"""Browser tests of the dashboard: headless Chromium against a real Relay server.

The page is driven like an operator would, while a REST client plays producer and worker;
assertions read what the page shows. Screenshots for docs/dashboard.md are taken on the way
(see conftest.screenshot_dir).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import RestClient

pytestmark = pytest.mark.browser

ROWS = '[data-testid^="msg-row-"]'
# "live" means the SSE stream is open (the polling fallback shows "polling").
LIVE = "live"


def expect(target: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(target)


def new_queue_name(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(2)}"


def open_dashboard(page: Any, base_url: str, route: str = "") -> None:
    page.goto(f"{base_url}/dashboard/{route}")
    expect(page.get_by_test_id("live-status")).to_have_attribute("data-status", LIVE)


def wait_for_history(rest: RestClient, message_id: str, action: str) -> None:
    """Activity entries are written off the request path (within 1 s): wait for one."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        history = rest.call("GET", f"/queue/activity/message/{message_id}")["history"]
        if any(entry["action"] == action for entry in history):
            return
        time.sleep(0.1)
    raise AssertionError(f"no {action} entry in the history of {message_id}")


def shot(page: Any, path: Path, full_page: bool = False) -> None:
    """Screenshot for the docs, without the notices that would cover the content."""
    page.evaluate("document.getElementById('toasts').replaceChildren()")
    page.screenshot(path=path, full_page=full_page)


def mark_page(page: Any) -> None:
    """Tag the window; if the page reloads, the tag disappears (see assert_not_reloaded)."""
    page.evaluate("window.__notReloaded = true")


def assert_not_reloaded(page: Any) -> None:
    assert page.evaluate("window.__notReloaded === true"), "the page reloaded"


def test_root_redirects_to_the_dashboard(page: Any, base_url: str) -> None:
    page.goto(f"{base_url}/")
    expect(page).to_have_url(re.compile(r"/dashboard/#/queues$"))
    expect(page.get_by_test_id("queue-row-default")).to_be_visible()


def test_message_lifecycle(page: Any, rest: RestClient, base_url: str, screenshot_dir: Path) -> None:
    queue = new_queue_name("orders")
    open_dashboard(page, base_url)
    mark_page(page)

    # Create a queue through the dialog.
    page.get_by_test_id("queue-create").click()
    dialog = page.get_by_test_id("queue-dialog")
    dialog.get_by_test_id("field-name").fill(queue)
    dialog.get_by_test_id("field-max_attempts").fill("2")
    dialog.get_by_test_id("field-description").fill("Orders from the web shop")
    dialog.get_by_test_id("dialog-submit").click()
    expect(dialog).to_be_hidden()
    expect(page.get_by_test_id(f"queue-row-{queue}")).to_contain_text("Orders from the web shop")

    # Messages enqueued by a producer show up in the counts without a reload.
    ana = rest.enqueue(queue, "email", {"order": 1001, "to": "ana@example.com"}, priority=5)
    ben = rest.enqueue(queue, "sms", {"order": 1002, "phone": "+34 600 000 001"}, priority=2)
    cai = rest.enqueue(queue, "sms", {"order": 1003, "phone": "+34 600 000 002"})
    expect(page.get_by_test_id(f"count-{queue}-queued")).to_have_text("3")
    shot(page, screenshot_dir / "queues.png")

    # The queue page lists them, and a new one appears live.
    page.get_by_test_id(f"queue-link-{queue}").click()
    expect(page.locator(ROWS)).to_have_count(3)
    job = rest.enqueue(queue, "report", {"report": "daily"}, priority=1, maxAttempts=1)
    expect(page.locator(ROWS)).to_have_count(4)
    expect(page.get_by_test_id("tab-count-main")).to_have_text("4")
    assert_not_reloaded(page)

    # Filters: by type, by payload text, then cleared.
    page.get_by_test_id("filter-type").select_option("sms")
    expect(page.locator(ROWS)).to_have_count(2)
    expect(page.get_by_test_id(f"msg-row-{ben}")).to_be_visible()
    page.get_by_test_id("filter-clear").click()
    page.get_by_test_id("filter-search").fill("ana@example")
    expect(page.locator(ROWS)).to_have_count(1)
    expect(page.get_by_test_id(f"msg-row-{ana}")).to_be_visible()
    page.get_by_test_id("filter-clear").click()
    expect(page.locator(ROWS)).to_have_count(4)
    shot(page, screenshot_dir / "queue-main.png")

    # Edit a message's payload and priority.
    page.get_by_test_id(f"msg-edit-{ana}").click()
    editor = page.get_by_test_id("message-dialog")
    editor.get_by_test_id("field-priority").select_option("9")
    editor.get_by_test_id("field-payload").fill('{"order": 1001, "to": "ana@example.org"}')
    shot(page, screenshot_dir / "edit-message.png")
    editor.get_by_test_id("dialog-submit").click()
    expect(page.get_by_test_id(f"msg-row-{ana}")).to_contain_text("ana@example.org")
    listed = rest.call("GET", f"/queue/main/messages?queueName={queue}&search=ana")["messages"]
    assert [(m["priority"], m["payload"]["to"]) for m in listed] == [(9, "ana@example.org")]

    # Multi-select two messages and move them to the dead-letter status.
    page.get_by_test_id(f"msg-select-{ben}").check()
    page.get_by_test_id(f"msg-select-{cai}").check()
    expect(page.get_by_test_id("selection-info")).to_have_text("2 selected")
    page.get_by_test_id("bulk-move-target").select_option("dead")
    page.get_by_test_id("bulk-move").click()
    mover = page.get_by_test_id("move-dialog")
    expect(mover.get_by_test_id("field-toQueue")).to_have_value("dead")
    mover.get_by_test_id("field-errorReason").fill("invalid phone number")
    mover.get_by_test_id("dialog-submit").click()
    expect(page.locator(ROWS)).to_have_count(2)
    expect(page.get_by_test_id("tab-count-dead")).to_have_text("2")

    # A worker takes a message: it shows in processing with the time left on its lease.
    page.get_by_test_id("tab-processing").click()
    taken = rest.call("GET", f"/queue/message?queue={queue}&type=report&consumerId=worker-1")
    assert taken["id"] == job
    expect(page.get_by_test_id(f"lease-{job}")).to_have_text(re.compile(r"\d+ s left"))
    shot(page, screenshot_dir / "queue-processing.png")

    # Its nack exhausts its single attempt: it leaves processing and joins the dead letters, live.
    rest.call(
        "POST",
        f"/queue/message/{job}/nack",
        {"lock_token": taken["lock_token"], "errorReason": "renderer crashed"},
    )
    expect(page.locator(ROWS)).to_have_count(0)
    expect(page.get_by_test_id("tab-count-dead")).to_have_text("3")

    page.get_by_test_id("tab-dead").click()
    expect(page.locator(ROWS)).to_have_count(3)
    expect(page.get_by_test_id(f"msg-row-{ben}")).to_contain_text("invalid phone number")
    expect(page.get_by_test_id(f"msg-row-{job}")).to_contain_text("renderer crashed")
    shot(page, screenshot_dir / "queue-dead.png")

    # Delete one dead message.
    page.get_by_test_id(f"msg-delete-{cai}").click()
    page.get_by_test_id("confirm-dialog").get_by_test_id("dialog-submit").click()
    expect(page.locator(ROWS)).to_have_count(2)
    expect(page.get_by_test_id("tab-count-dead")).to_have_text("2")

    # A worker processes the last queued message; the acknowledged count follows live.
    taken = rest.call("GET", f"/queue/message?queue={queue}&consumerId=worker-2")
    assert taken["id"] == ana
    rest.call("POST", "/queue/ack", {"id": ana, "lock_token": taken["lock_token"]})
    expect(page.get_by_test_id("tab-count-acknowledged")).to_have_text("1")
    expect(page.get_by_test_id("tab-count-main")).to_have_text("0")

    # The history dialog of a moved message tells its story from the activity log.
    wait_for_history(rest, ben, "move")
    page.get_by_test_id(f"msg-history-{ben}").click()
    history = page.get_by_test_id("history-dialog")
    expect(history.get_by_test_id("history-entry")).to_have_count(2)
    expect(history.get_by_test_id("history-entry").nth(0)).to_have_attribute("data-action", "enqueue")
    expect(history.get_by_test_id("history-entry").nth(1)).to_have_attribute("data-action", "move")
    expect(history.get_by_test_id("history-payload")).to_contain_text("+34 600 000 001")
    shot(page, screenshot_dir / "message-history.png")
    history.get_by_test_id("dialog-close").click()

    # Activity, anomalies (the nack's dead-letter is a warning) and consumers.
    wait_for_history(rest, job, "move_to_dlq")
    page.get_by_test_id("tab-activity").click()
    expect(page.locator('[data-testid^="activity-row-"][data-action="move"]')).to_have_count(2)
    shot(page, screenshot_dir / "queue-activity.png")
    page.get_by_test_id("tab-anomalies").click()
    dlq = page.locator('[data-testid^="anomaly-row-"]', has_text="Dead-lettered")
    expect(dlq).to_have_count(1)
    expect(dlq.locator(".severity-warning")).to_have_text("Warning")
    page.get_by_test_id("filter-severity").select_option("critical")
    expect(page.locator('[data-testid^="anomaly-row-"]')).to_have_count(0)
    page.get_by_test_id("filter-severity").select_option("")
    expect(dlq).to_have_count(1)
    shot(page, screenshot_dir / "queue-anomalies.png")
    page.get_by_test_id("tab-consumers").click()
    expect(page.get_by_test_id("consumer-row-worker-1")).to_be_visible()
    expect(page.get_by_test_id("consumer-row-worker-2")).to_contain_text("1")
    shot(page, screenshot_dir / "queue-consumers.png")
    assert_not_reloaded(page)


def test_queue_management(page: Any, rest: RestClient, base_url: str) -> None:
    queue = new_queue_name("billing")
    renamed = f"{queue}-v2"
    rest.call("POST", "/queues", {"name": queue})
    open_dashboard(page, base_url)

    page.get_by_test_id(f"queue-rename-{queue}").click()
    page.get_by_test_id("field-newName").fill(renamed)
    page.get_by_test_id("dialog-submit").click()
    expect(page.get_by_test_id(f"queue-row-{renamed}")).to_be_visible()
    expect(page.get_by_test_id(f"queue-row-{queue}")).to_have_count(0)

    for number in range(3):
        rest.enqueue(renamed, "invoice", {"invoice": number})
    expect(page.get_by_test_id(f"count-{renamed}-queued")).to_have_text("3")

    page.get_by_test_id(f"queue-purge-{renamed}").click()
    page.get_by_test_id("confirm-dialog").get_by_test_id("dialog-submit").click()
    expect(page.get_by_test_id(f"count-{renamed}-queued")).to_have_text("0")

    # A queue with waiting messages is only deleted with "force".
    rest.enqueue(renamed, "invoice", {"invoice": 99})
    expect(page.get_by_test_id(f"count-{renamed}-queued")).to_have_text("1")
    page.get_by_test_id(f"queue-delete-{renamed}").click()
    confirm = page.get_by_test_id("confirm-dialog")
    confirm.get_by_test_id("dialog-submit").click()
    expect(confirm.get_by_test_id("dialog-error")).to_have_text(
        'The queue has queued or processing messages. Tick "force" to delete it with all its messages.')
    confirm.get_by_test_id("field-force").check()
    confirm.get_by_test_id("dialog-submit").click()
    expect(page.get_by_test_id(f"queue-row-{renamed}")).to_have_count(0)


def test_auto_refresh_toggle(page: Any, rest: RestClient, base_url: str) -> None:
    queue = new_queue_name("live")
    rest.call("POST", "/queues", {"name": queue})
    open_dashboard(page, base_url, f"#/queue/{queue}/main")
    expect(page.get_by_test_id("messages-empty")).to_be_visible()

    page.get_by_test_id("live-toggle").uncheck()
    expect(page.get_by_test_id("live-status")).to_have_attribute("data-status", "off")
    rest.enqueue(queue, "ping", {"n": 1})
    page.wait_for_timeout(1500)  # SSE events arrive well within this when live
    expect(page.locator(ROWS)).to_have_count(0)

    page.get_by_test_id("live-toggle").check()
    expect(page.locator(ROWS)).to_have_count(1)
    expect(page.get_by_test_id("live-status")).to_have_attribute("data-status", LIVE)


def test_spanish_dark_mode_and_phone(
    page: Any, rest: RestClient, base_url: str, screenshot_dir: Path
) -> None:
    queue = new_queue_name("pedidos")
    rest.call("POST", "/queues", {"name": queue, "description": "Pedidos de la tienda"})
    for number in range(3):
        rest.enqueue(
            queue, "correo", {"pedido": number, "para": f"cliente{number}@example.es"}, priority=number
        )
    open_dashboard(page, base_url)

    page.get_by_test_id("lang-select").select_option("es")
    expect(page.get_by_test_id("nav-queues")).to_have_text("Colas")
    expect(page.get_by_test_id("queue-create")).to_have_text("+ Nueva cola")
    page.get_by_test_id("theme-toggle").click()
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    shot(page, screenshot_dir / "queues-dark-es.png")

    page.get_by_test_id(f"queue-link-{queue}").click()
    expect(page.locator(ROWS)).to_have_count(3)
    expect(page.get_by_test_id("tab-dead")).to_contain_text("Mensajes muertos")
    expect(page.get_by_test_id("page-info")).to_have_text("Página 1 de 1 · 3 en total")
    shot(page, screenshot_dir / "queue-dark-es.png")
    for tab, table in [
        ("activity", "activity"),
        ("anomalies", "anomalies"),
        ("consumers", "consumers"),
        ("processing", "messages"),
    ]:
        page.get_by_test_id(f"tab-{tab}").click()
        expect(page.get_by_test_id(f"{table}-table").locator("tbody tr").first).to_be_visible()
        expect(page.get_by_test_id("page-error")).to_be_hidden()
    assert page.evaluate("window.__i18nMissing") == [], "untranslated labels"

    # The choice survives a reload (stored), and the page fits a phone's width.
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    page.get_by_test_id("tab-main").click()
    expect(page.locator(ROWS)).to_have_count(3)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    shot(page, screenshot_dir / "phone-queue.png", full_page=True)
    page.get_by_test_id("nav-queues").click()
    expect(page.get_by_test_id(f"queue-row-{queue}")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    shot(page, screenshot_dir / "phone-queues.png", full_page=True)


@contextlib.contextmanager
def key_prompt(browser: Any, request: pytest.FixtureRequest) -> Iterator[tuple[Any, Any, Any]]:
    """The dashboard of a server with SECRET_KEY, showing its key prompt: (server, page, prompt)."""
    from tests.support.server import start_server

    database_url = request.getfixturevalue("live_server").database_url
    with start_server(database_url, env={"SECRET_KEY": "open-sesame"}) as server:
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        page = context.new_page()
        try:
            page.goto(f"{server.url}/dashboard/")
            prompt = page.get_by_test_id("auth-dialog")
            expect(prompt).to_contain_text("requires an API key")
            yield server, page, prompt
        finally:
            context.close()


@pytest.mark.skipif(bool(os.environ.get("RELAY_BROWSER_BASE_URL")), reason="needs its own server")
def test_api_key_prompt(browser: Any, request: pytest.FixtureRequest, screenshot_dir: Path) -> None:
    with key_prompt(browser, request) as (server, page, prompt):
        prompt.get_by_test_id("field-key").fill("wrong-key")
        prompt.get_by_test_id("dialog-submit").click()
        expect(prompt.get_by_test_id("dialog-error")).to_contain_text("Invalid API key")
        shot(page, screenshot_dir / "api-key.png")

        prompt.get_by_test_id("field-key").fill("open-sesame")
        prompt.get_by_test_id("dialog-submit").click()
        expect(prompt).to_be_hidden()
        expect(page.get_by_test_id("queue-row-default")).to_be_visible()

        # The key also opens the full event stream: counts still update live.
        RestClient(server.url, api_key="open-sesame").enqueue("default", "keyed", {"ok": True})
        expect(page.get_by_test_id("count-default-queued")).not_to_have_text("0")


@pytest.mark.skipif(bool(os.environ.get("RELAY_BROWSER_BASE_URL")), reason="needs its own server")
def test_api_key_prompt_cancelled(browser: Any, request: pytest.FixtureRequest) -> None:
    with key_prompt(browser, request) as (server, page, prompt):
        keyed = RestClient(server.url, api_key="open-sesame")
        prompt.get_by_test_id("dialog-cancel").click()

        # A lasting state instead of the dialog: a notice with a button, no "Live" badge,
        # and the error where the table said "Loading…".
        expect(page.get_by_test_id("auth-needed")).to_be_visible()
        expect(page.get_by_test_id("live-status")).to_have_attribute("data-status", "key-needed")
        expect(page.get_by_test_id("queues-error")).to_contain_text("requires an API key")

        # Changes on the server (events) do not bring the dialog back.
        for number in range(3):
            keyed.enqueue("default", "keyless", {"n": number})
            page.wait_for_timeout(500)
        expect(prompt).to_have_count(0)
        page.goto(f"{server.url}/dashboard/#/queue/default/main")
        expect(page.get_by_test_id("page-error")).to_contain_text("requires an API key")
        expect(page.get_by_test_id("tab-count-main")).to_have_text("—")

        # A reload asks once more; the notice's button asks any time.
        page.reload()
        expect(prompt).to_contain_text("requires an API key")
        prompt.get_by_test_id("dialog-cancel").click()
        expect(page.get_by_test_id("auth-needed")).to_be_visible()
        keyed.enqueue("default", "keyless", {"n": 3})
        page.wait_for_timeout(1000)
        expect(prompt).to_have_count(0)
        page.get_by_test_id("auth-enter").click()
        prompt.get_by_test_id("field-key").fill("open-sesame")
        prompt.get_by_test_id("dialog-submit").click()
        expect(prompt).to_be_hidden()
        expect(page.get_by_test_id("auth-needed")).to_be_hidden()
        expect(page.get_by_test_id("live-status")).to_have_attribute("data-status", LIVE)
        expect(page.locator(ROWS)).not_to_have_count(0)
        expect(page.get_by_test_id("tab-count-main")).not_to_have_text("—")

        # A stored key that no longer works is asked for again, as invalid.
        page.evaluate("localStorage.setItem('relay.apiKey', 'stale-key')")
        page.reload()
        expect(prompt).to_contain_text("Invalid API key")
        prompt.get_by_test_id("field-key").fill("open-sesame")
        prompt.get_by_test_id("dialog-submit").click()
        expect(prompt).to_be_hidden()
        expect(page.locator(ROWS)).not_to_have_count(0)


def test_paging_sorting_export_and_import(page: Any, rest: RestClient, base_url: str, tmp_path: Path) -> None:
    queue = new_queue_name("bulk")
    rest.call("POST", "/queues", {"name": queue})
    batch = [{"queue": queue, "type": "bulk", "payload": {"n": n}, "priority": n % 10} for n in range(30)]
    rest.call("POST", "/queue/batch", batch)
    open_dashboard(page, base_url, f"#/queue/{queue}/main")

    # Server-side paging: 25 per page, then the remaining 5.
    page.get_by_test_id("page-size").select_option("25")
    expect(page.get_by_test_id("page-info")).to_have_text("Page 1 of 2 · 30 total")
    expect(page.locator(ROWS)).to_have_count(25)
    page.get_by_test_id("page-next").click()
    expect(page.get_by_test_id("page-info")).to_have_text("Page 2 of 2 · 30 total")
    expect(page.locator(ROWS)).to_have_count(5)
    page.get_by_test_id("page-prev").click()

    # The main tab opens in dequeue order (priority, highest first); a click on the header
    # flips the order, and the server sorts across pages.
    priorities = page.locator(f"{ROWS} .priority")
    expect(priorities.first).to_have_text("9")
    page.get_by_test_id("sort-priority").click()
    expect(page.locator('th[aria-sort="ascending"]')).to_contain_text("Priority")
    expect(priorities.first).to_have_text("0")
    expect(priorities.last).to_have_text("8")  # three of each priority: the 25 lowest end with an 8
    page.get_by_test_id("sort-priority").click()
    expect(priorities.first).to_have_text("9")

    # Select the whole page and delete it in one request.
    page.get_by_test_id("select-all").check()
    expect(page.get_by_test_id("selection-info")).to_have_text("25 selected")
    page.get_by_test_id("bulk-delete").click()
    page.get_by_test_id("confirm-dialog").get_by_test_id("dialog-submit").click()
    expect(page.get_by_test_id("page-info")).to_have_text("Page 1 of 1 · 5 total")

    # Export the rest as a JSON file, then import that file: the queue holds twice as many.
    with page.expect_download() as download_info:
        page.get_by_test_id("export").click()
    exported = tmp_path / download_info.value.suggested_filename
    download_info.value.save_as(exported)
    assert exported.name.startswith("main-queue-export")
    assert len(json.loads(exported.read_text())) == 5
    page.get_by_test_id("import-input").set_input_files(str(exported))
    expect(page.get_by_test_id("page-info")).to_have_text("Page 1 of 1 · 10 total")
    expect(page.get_by_test_id("tab-count-main")).to_have_text("10")


@pytest.mark.skipif(bool(os.environ.get("RELAY_BROWSER_BASE_URL")), reason="needs its own server")
def test_import_larger_than_one_batch_goes_in_chunks(browser: Any, request: pytest.FixtureRequest,
                                                      tmp_path: Path) -> None:
    """An export can hold more than the server takes per import (MAX_BATCH_SIZE, here 3)."""
    from tests.support.server import start_server

    database_url = request.getfixturevalue("live_server").database_url
    with start_server(database_url, env={"MAX_BATCH_SIZE": "3"}) as server:
        rest = RestClient(server.url)
        queue = "chunks_" + os.urandom(3).hex()
        rest.call("POST", "/queues", {"name": queue})
        file = tmp_path / "seven.json"
        file.write_text(json.dumps([{"type": "t", "payload": i} for i in range(7)]))
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        page = context.new_page()
        try:
            page.goto(f"{server.url}/dashboard/#/queue/{queue}/main")
            page.get_by_test_id("import-input").set_input_files(str(file))
            expect(page.get_by_test_id("page-info")).to_contain_text("7 total")
            expect(page.locator(".toast")).to_contain_text("Imported 7 messages")
            # A refused chunk after others: the toast says how many went in before it.
            file.write_text(json.dumps([{"type": "t", "payload": 1}] * 4 + [{"type": "t", "priority": 99}]))
            page.get_by_test_id("import-input").set_input_files(str(file))
            expect(page.locator(".toast").last).to_contain_text("Imported 3 messages; the rest, from message 3 on")
            expect(page.get_by_test_id("page-info")).to_contain_text("10 total")
        finally:
            context.close()


def test_many_queues_are_paged_and_filtered_by_name(page: Any, rest: RestClient, base_url: str) -> None:
    """Thousands of queues drawn whole made the page take seconds, on every refresh: the table
    shows 200 at a time, with a name filter; counts refresh promptly (they waited 25 ms per
    queue between refetches, from when each queue had a request of its own)."""
    prefix = new_queue_name("many")
    names = [f"{prefix}-{i:03d}" for i in range(205)]
    for name in names:
        rest.call("POST", "/queues", {"name": name})
    try:
        open_dashboard(page, base_url, "#/queues")
        expect(page.get_by_test_id("queues-page-info")).to_be_visible()
        expect(page.locator('[data-testid^="queue-row-"]')).to_have_count(200)
        page.get_by_test_id("queues-filter").fill(f"{prefix}-20")
        expect(page.locator('[data-testid^="queue-row-"]')).to_have_count(5)  # -200 to -204
        expect(page.get_by_test_id("queues-page-info")).to_be_hidden()
        rest.enqueue(names[203], "t", {"n": 1})
        expect(page.get_by_test_id(f"count-{names[203]}-queued")).to_have_text("1")
        page.get_by_test_id("queues-filter").fill(prefix)
        expect(page.get_by_test_id("queues-page-info")).to_have_text("Page 1 of 2 · 205 total")
        page.get_by_test_id("queues-page-next").click()
        expect(page.locator('[data-testid^="queue-row-"]')).to_have_count(5)
        page.get_by_test_id("queues-filter").fill("no-such-queue-anywhere")
        expect(page.get_by_text("Nothing matches these filters.")).to_be_visible()
    finally:
        for name in names:
            rest.call("DELETE", f"/queues/{name}?force=true")


def test_long_unbroken_texts_never_widen_a_table_past_the_page(page: Any, rest: RestClient, base_url: str) -> None:
    """A probe found a 5,000-character error reason making the anomalies table 44,000 px wide, a
    499-character consumer id pushing the consumers' counters off screen, and a long queue
    description hiding the counts under the sticky actions: each is clipped or wrapped now."""
    queue = new_queue_name("long")
    rest.call("POST", "/queues", {"name": queue, "max_attempts": 1, "description": "D" * 500})
    rest.enqueue(queue, "t", {"n": 1})
    leased = rest.dequeue(queue, consumer="c" * 499)
    rest.call("POST", f"/queue/message/{leased['id']}/nack", {"lock_token": leased["lock_token"],
                                                               "errorReason": "E" * 5000})
    wait_for_history(rest, leased["id"], "move_to_dlq")
    page.set_viewport_size({"width": 1400, "height": 900})

    def fits() -> bool:
        return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))

    open_dashboard(page, base_url, "#/queues")
    expect(page.get_by_test_id(f"queue-row-{queue}")).to_be_visible()
    assert fits(), "queues"
    for tab, row in (("anomalies", '[data-testid^="anomaly-row-"]'), ("consumers", '[data-testid^="consumer-row-"]')):
        open_dashboard(page, base_url, f"#/queue/{queue}/{tab}")
        expect(page.locator(row).first).to_be_visible()
        assert fits(), tab


def test_integers_beyond_2_53_survive_an_edit_and_an_import(page: Any, rest: RestClient, base_url: str,
                                                            tmp_path: Path) -> None:
    """JSON.parse rounded them: an edit saved unchanged stored 12345678901234567890 as
    12345678901234567000, and an import 9007199254740993 as 9007199254740992 (a probe found it).
    Parsed keeping their source (JSON.rawJSON), they are written back exactly."""
    queue = new_queue_name("bigint")
    rest.call("POST", "/queues", {"name": queue})
    mid = rest.enqueue(queue, "t", {"id": 12345678901234567890})
    open_dashboard(page, base_url, f"#/queue/{queue}/main")
    page.get_by_test_id(f"msg-edit-{mid}").click()
    editor = page.get_by_test_id("message-dialog")
    expect(editor.get_by_test_id("field-payload")).to_have_value(re.compile("12345678901234567890"))
    editor.get_by_test_id("dialog-submit").click()
    expect(editor).to_be_hidden()
    file = tmp_path / "big.json"
    file.write_text('[{"type": "imp", "payload": {"n": 9007199254740993}}]')
    page.get_by_test_id("import-input").set_input_files(str(file))
    deadline = time.monotonic() + 5
    while len(listed := rest.call("GET", f"/queue/main/messages?queueName={queue}")["messages"]) < 2:
        assert time.monotonic() < deadline, "the import did not arrive"
        time.sleep(0.1)
    assert sorted(json.dumps(m["payload"]) for m in listed) == ['{"id": 12345678901234567890}',
                                                                '{"n": 9007199254740993}']
