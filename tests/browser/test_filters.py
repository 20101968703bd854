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


def test_dates_read_like_the_browsers_date_inputs(browser: Any, rest: RestClient, base_url: str) -> None:
    """An en-US browser shows the filters' date inputs month first; the tables showed en-GB dates
    (day first), so 05/12 in a row read as 12 May. They follow the browser's English now."""
    queue = new_queue_name("locale")
    rest.call("POST", "/queues", {"name": queue})
    message = rest.enqueue(queue, "dated", {"n": 1})
    created = rest.call("GET", f"/queue/main/messages?queueName={queue}")["messages"][0]["created_at"]
    for locale in ("en-US", "en-GB"):
        context = browser.new_context(viewport={"width": 1280, "height": 800}, locale=locale)
        try:
            page = context.new_page()
            open_dashboard(page, base_url, f"#/queue/{queue}/main")
            shown = page.get_by_test_id(f"msg-row-{message}").locator("time").first
            wanted = page.evaluate(
                "([s, l]) => new Date(s * 1000).toLocaleString(l, { hour12: false })", [created, locale])
            expect(shown).to_have_text(wanted)
        finally:
            context.close()


def test_consumer_counts_line_up_with_their_headers(page: Any, rest: RestClient, base_url: str) -> None:
    queue = new_queue_name("consumers")
    rest.call("POST", "/queues", {"name": queue})
    open_dashboard(page, base_url, f"#/queue/{queue}/main")
    page.get_by_test_id("tab-consumers").click()
    headers = page.get_by_test_id("consumers-table").locator("thead th")
    expect(headers.nth(1)).to_have_class("num")
    expect(headers.nth(3)).to_have_class("num")
    expect(headers.nth(4)).not_to_have_class("num")


def test_the_main_list_says_when_a_delayed_message_becomes_available(page: Any, rest: RestClient,
                                                                      base_url: str) -> None:
    """A queued message that waits (delaySeconds, retry backoff) looked like any other, not being
    dequeued for no visible reason: the main list and the details now show when it may be."""
    queue = new_queue_name("delayed")
    rest.call("POST", "/queues", {"name": queue})
    later = rest.enqueue(queue, "later", {"n": 1}, delaySeconds=3600)
    now = rest.enqueue(queue, "now", {"n": 2})
    open_dashboard(page, base_url, f"#/queue/{queue}/main")
    expect(page.get_by_test_id(f"available-{now}")).to_have_text("now")
    expect(page.get_by_test_id(f"available-{later}").locator("time")).to_have_count(1)
    page.get_by_test_id("sort-available_at").click()  # a sort the server accepts
    expect(page.locator(ROWS)).to_have_count(2)
    page.get_by_test_id(f"msg-id-{later}").click()
    expect(page.get_by_test_id("message-details")).to_contain_text("Available")


def test_a_bounded_count_reads_as_more_than(page: Any, rest: RestClient, base_url: str) -> None:
    """The dashboard asks a filtered listing, and the activity log, to count at most 10,000
    matches: the pager says "more than" and keeps Next enabled, where it would otherwise claim
    an exact last page."""
    queue = new_queue_name("bounded")
    rest.call("POST", "/queues", {"name": queue})
    for start in range(0, 10_050, 1000):
        rest.call("POST", "/queue/batch", [{"queue": queue, "type": "bulk", "payload": {"n": n}}
                                           for n in range(start, min(start + 1000, 10_050))])
    open_dashboard(page, base_url, f"#/queue/{queue}/main")
    expect(page.get_by_test_id("page-info")).to_have_text("Page 1 of 201 · 10050 total")
    page.get_by_test_id("filter-type").select_option("bulk")
    expect(page.get_by_test_id("page-info")).to_have_text("Page 1 of 200+ · more than 10000")
    expect(page.get_by_test_id("page-next")).to_be_enabled()

    # The activity tab: by queue only, exact counts from the counters; with a filter, the newest
    # 10,000 entries are counted, and it says so.
    page.get_by_test_id("tab-activity").click()
    expect(page.get_by_test_id("activity-summary-scope")).to_have_text("All matching:")
    expect(page.get_by_test_id("page-info")).to_contain_text("Page 1 of 202 · ")
    page.get_by_test_id("filter-start_time").fill("2000-01-01T00:00:00")
    expect(page.get_by_test_id("activity-summary-scope")).to_have_text("Newest 10000 matching:")
    expect(page.get_by_test_id("page-info")).to_have_text("Page 1 of 200+ · more than 10000")
    expect(page.get_by_test_id("page-next")).to_be_enabled()
