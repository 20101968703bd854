"""Browser tests of the dashboard's filters."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import RestClient
from .test_dashboard import ROWS, expect, new_queue_name, open_dashboard, wait_for_history

pytestmark = pytest.mark.browser

# Unix seconds → the value a datetime-local input shows for that second, in the page's time zone.
LOCAL_INPUT = """(seconds) => {
    const d = new Date(seconds * 1000);
    const p = (n) => String(n).padStart(2, '0');
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}"""


def test_date_filters_include_the_whole_second_shown(page: Any, rest: RestClient, base_url: str) -> None:
    """Times are shown to the second but stored with fractions: From = To = the second shown
    on screen must keep the message (bounds are inclusive)."""
    queue = new_queue_name("dates")
    rest.call("POST", "/queues", {"name": queue})
    message = rest.enqueue(queue, "dated", {"n": 1})
    wait_for_history(rest, message, "enqueue")
    created = rest.call("GET", f"/queue/main/messages?queueName={queue}")["messages"][0]["created_at"]
    logged = rest.call("GET", f"/queue/activity/message/{message}")["history"][0]["timestamp"]
    open_dashboard(page, base_url, f"#/queue/{queue}/main")
    expect(page.locator(ROWS)).to_have_count(1)

    # First a "to" bound one second too early (nothing), then the second shown on screen: the
    # message is back (so the filter really applied, and includes the whole second).
    page.get_by_test_id("filter-start").fill(page.evaluate(LOCAL_INPUT, created))
    page.get_by_test_id("filter-end").fill(page.evaluate(LOCAL_INPUT, created - 1))
    expect(page.get_by_test_id("messages-empty")).to_be_visible()
    page.get_by_test_id("filter-end").fill(page.evaluate(LOCAL_INPUT, created))
    expect(page.get_by_test_id(f"msg-row-{message}")).to_be_visible()
    expect(page.get_by_test_id("page-info")).to_have_text("Page 1 of 1 · 1 total")

    # The activity log's filters likewise.
    page.get_by_test_id("tab-activity").click()
    entry = page.locator('[data-testid^="activity-row-"][data-action="enqueue"]')
    expect(entry).to_have_count(1)
    page.get_by_test_id("filter-action").select_option("enqueue")
    page.get_by_test_id("filter-start_time").fill(page.evaluate(LOCAL_INPUT, logged))
    page.get_by_test_id("filter-end_time").fill(page.evaluate(LOCAL_INPUT, logged - 1))
    expect(entry).to_have_count(0)
    page.get_by_test_id("filter-end_time").fill(page.evaluate(LOCAL_INPUT, logged))
    expect(entry).to_have_count(1)
    expect(page.get_by_test_id("page-info")).to_have_text("Page 1 of 1 · 1 total")
