"""Browser tests of the dashboard's layout at desktop widths: long payloads, type names,
consumer ids and error texts must not push the row actions (or the page) off screen."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import RestClient
from .test_dashboard import ROWS, expect, new_queue_name, open_dashboard

pytestmark = pytest.mark.browser

LONG_TYPE = "longtype-" + "a" * 300
LONG_PAYLOAD = {"customer": "Ana García", "note": "deliver after 18:00, ring twice, leave at the back door"}
LONG_ERROR = "renderer crashed: " + "stacktrace-without-spaces-" * 12 + " and then some words to wrap " * 4
LONG_CONSUMER = "worker-eu-west-1-7f9c2b1d-4e5a-4c3b-9d8e-1a2b3c4d5e6f"
MESSAGE_TABS = ["main", "processing", "dead", "acknowledged", "archived"]


def fill_every_status(rest: RestClient, queue: str) -> None:
    """Two messages in each status, with long payloads, types, errors and consumer ids."""
    assert len(str(LONG_PAYLOAD)) >= 90
    for number in range(10):
        rest.enqueue(queue, LONG_TYPE if number % 2 else "email", {**LONG_PAYLOAD, "n": number})
    taken = [rest.call("GET", f"/queue/message?queue={queue}&consumerId={LONG_CONSUMER}") for _ in range(8)]
    for message in taken[:2]:  # acknowledged, then two of them archived
        rest.call("POST", "/queue/ack", {"id": message["id"], "lock_token": message["lock_token"]})
    for message in taken[2:4]:
        rest.call("POST", "/queue/ack", {"id": message["id"], "lock_token": message["lock_token"]})
    rest.call("POST", "/queue/move", {"messages": [m["id"] for m in taken[2:4]], "fromQueue": "acknowledged",
                                      "toQueue": "archived"})
    rest.call("POST", "/queue/move", {"messages": [m["id"] for m in taken[4:6]], "fromQueue": "processing",
                                      "toQueue": "dead", "errorReason": LONG_ERROR})


def test_row_actions_fit_a_desktop_window(page: Any, rest: RestClient, base_url: str) -> None:
    queue = new_queue_name("wide")
    rest.call("POST", "/queues", {"name": queue})
    fill_every_status(rest, queue)
    page.set_viewport_size({"width": 1280, "height": 800})
    open_dashboard(page, base_url, f"#/queue/{queue}/main")

    for tab in MESSAGE_TABS:
        page.get_by_test_id(f"tab-{tab}").click()
        # This tab's own rows (the last tab's two rows may still be on screen for a moment).
        for message in rest.call("GET", f"/queue/{tab}/messages?queueName={queue}")["messages"]:
            expect(page.get_by_test_id(f"msg-row-{message['id']}")).to_be_visible()
        expect(page.locator(ROWS)).to_have_count(2)
        expect(page.get_by_test_id("filter-type").locator("option")).to_have_count(3)  # all, email, long
        # Measured in one go in the page: a live refresh may replace the rows between two calls.
        boxes = page.evaluate(
            """(selector) => [...document.querySelectorAll(selector)].map((b) => {
                const r = b.getBoundingClientRect();
                return {x: r.x, width: r.width, shown: r.width > 0 && r.height > 0};
            })""", f"{ROWS} td.actions button")
        assert boxes, f"{tab}: no action buttons"
        for box in boxes:
            assert box["shown"] and box["x"] >= 0, f"{tab}: an action button is hidden"
            assert box["x"] + box["width"] <= 1280, f"{tab}: an action button ends at {box['x'] + box['width']}"
        # A live refresh may be replacing the table at this moment: wait until both are there.
        widths = page.wait_for_function(
            """() => {
                const table = document.querySelector('[data-testid="messages-table"]');
                const box = document.querySelector('.table-wrap');
                return table && box && {
                    page: document.documentElement.scrollWidth, window: document.documentElement.clientWidth,
                    table: table.scrollWidth, box: box.clientWidth,
                };
            }"""
        ).json_value()
        assert widths["page"] <= widths["window"], f"{tab}: the page scrolls sideways: {widths}"
        assert widths["table"] <= widths["box"], f"{tab}: the table overflows its box: {widths}"

    # The long type is cut in the table, whole in its tooltip.
    page.get_by_test_id("tab-main").click()
    cell = page.locator(f"{ROWS} .clip", has_text="longtype-").first
    expect(cell).to_have_attribute("title", LONG_TYPE)
