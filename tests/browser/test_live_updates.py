"""Browser tests of live updates on the queue page: what an event makes the page refetch,
and what survives the refetch."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import RestClient
from .test_dashboard import ROWS, expect, new_queue_name, open_dashboard

pytestmark = pytest.mark.browser


def test_activity_tab_shows_a_new_entry_live(page: Any, rest: RestClient, base_url: str) -> None:
    queue = new_queue_name("act")
    rest.call("POST", "/queues", {"name": queue})
    open_dashboard(page, base_url, f"#/queue/{queue}/activity")
    expect(page.locator('[data-testid^="activity-row-"][data-action="create_queue"]')).to_have_count(1)
    # Let the first load's coalescing window pass, so the event's refetch runs at once (before
    # the server has stored the entry).
    page.wait_for_timeout(700)

    message = rest.enqueue(queue, "ping", {"n": 1})
    row = page.locator('[data-testid^="activity-row-"][data-action="enqueue"]')
    expect(row).to_have_count(1, timeout=5000)
    expect(row).to_contain_text(message)
    expect(page.locator(ROWS)).to_have_count(0)  # still the activity tab


def test_a_missing_queue_says_so(page: Any, rest: RestClient, base_url: str) -> None:
    # A queue that never existed: the message, and no count left waiting ("…").
    ghost = new_queue_name("ghost")
    open_dashboard(page, base_url, f"#/queue/{ghost}/main")
    expect(page.get_by_test_id("page-error")).to_have_text(f'Queue "{ghost}" does not exist.')
    for tab in ["main", "processing", "dead", "acknowledged", "archived"]:
        expect(page.get_by_test_id(f"tab-count-{tab}")).to_have_text("—")

    # A queue deleted while its page is open does not turn into an empty queue.
    queue = new_queue_name("doomed")
    rest.call("POST", "/queues", {"name": queue})
    message = rest.enqueue(queue, "last", {"n": 1})
    page.goto(f"{base_url}/dashboard/#/queue/{queue}/main")
    expect(page.get_by_test_id(f"msg-row-{message}")).to_be_visible()
    expect(page.get_by_test_id("tab-count-main")).to_have_text("1")
    rest.call("DELETE", f"/queues/{queue}?force=true")
    expect(page.get_by_test_id("page-error")).to_have_text(f'Queue "{queue}" does not exist.')
    expect(page.get_by_test_id("tab-count-main")).to_have_text("—")
    expect(page.get_by_test_id("msg-create")).to_have_count(0)
    expect(page.get_by_test_id("queue-settings")).to_have_count(0)
