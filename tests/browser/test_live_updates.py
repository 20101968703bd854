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


def test_selection_survives_live_updates(page: Any, rest: RestClient, base_url: str) -> None:
    queue = new_queue_name("picks")
    rest.call("POST", "/queues", {"name": queue})
    rest.call("POST", "/queue/batch", [{"queue": queue, "type": "bulk", "payload": {"n": n}, "priority": 5}
                                       for n in range(24)])
    target = rest.enqueue(queue, "low", {"n": "last"}, priority=0)
    open_dashboard(page, base_url, f"#/queue/{queue}/main")
    page.get_by_test_id("page-size").select_option("25")
    expect(page.get_by_test_id("page-info")).to_have_text("Page 1 of 1 · 25 total")
    page.get_by_test_id(f"msg-select-{target}").check()
    expect(page.get_by_test_id("selection-info")).to_have_text("1 selected")

    # A more urgent message pushes the selected one to page 2: it stays selected.
    urgent = rest.enqueue(queue, "urgent", {"n": "first"}, priority=9)
    expect(page.get_by_test_id("page-info")).to_have_text("Page 1 of 2 · 26 total")
    expect(page.get_by_test_id(f"msg-row-{target}")).to_have_count(0)
    expect(page.get_by_test_id("selection-info")).to_have_text("1 selected (1 on other pages)")

    # A selected message that a worker takes leaves the selection (it left this tab).
    page.get_by_test_id(f"msg-select-{urgent}").check()
    expect(page.get_by_test_id("selection-info")).to_have_text("2 selected (1 on other pages)")
    assert rest.dequeue(queue)["id"] == urgent
    expect(page.get_by_test_id("page-info")).to_have_text("Page 1 of 1 · 25 total")
    expect(page.get_by_test_id("selection-info")).to_have_text("1 selected")

    # "Move selected" acts on the whole selection.
    page.get_by_test_id("bulk-move-target").select_option("dead")
    page.get_by_test_id("bulk-move").click()
    page.get_by_test_id("move-dialog").get_by_test_id("dialog-submit").click()
    expect(page.get_by_test_id("tab-count-dead")).to_have_text("1")
    expect(page.get_by_test_id("selection-info")).to_have_text("0 selected")
    dead = rest.call("GET", f"/queue/dead/messages?queueName={queue}")["messages"]
    assert [message["id"] for message in dead] == [target]

    # A filter change drops the selection (it would act on rows out of view).
    page.locator(f"{ROWS} input[type=checkbox]").first.check()
    expect(page.get_by_test_id("selection-info")).to_have_text("1 selected")
    page.get_by_test_id("filter-priority").select_option("5")
    expect(page.get_by_test_id("selection-info")).to_have_text("0 selected")


def test_a_request_that_never_answers_does_not_stop_the_refreshes(page: Any, rest: RestClient, base_url: str) -> None:
    # A view refreshes one request at a time: the first GET /queues hangs (a stalled proxy), and
    # without a timeout on it the queues page never refreshed again.
    page.add_init_script("localStorage.setItem('relay.getTimeoutMs', '1000')")
    hung: list[Any] = []

    def hang_first(route: Any) -> None:
        if not hung and route.request.method == "GET":
            hung.append(route)  # never answered
        else:
            route.continue_()

    page.route("**/api/queues", hang_first)
    page.goto(f"{base_url}/dashboard/")
    expect(page.get_by_test_id("queues-error")).to_contain_text("did not answer in time")

    queue = new_queue_name("stall")
    rest.call("POST", "/queues", {"name": queue})  # its event refreshes the page
    expect(page.get_by_test_id(f"queue-row-{queue}")).to_be_visible()
    assert len(hung) == 1


def test_a_queue_page_whose_first_load_timed_out_loads_at_the_next_event(
        page: Any, rest: RestClient, base_url: str) -> None:
    queue = new_queue_name("stall")
    rest.call("POST", "/queues", {"name": queue})
    page.add_init_script("localStorage.setItem('relay.getTimeoutMs', '1000')")
    hung: list[Any] = []

    def hang_first(route: Any) -> None:
        if not hung:
            hung.append(route)  # never answered
        else:
            route.continue_()

    page.route(f"**/api/queues/{queue}", hang_first)
    open_dashboard(page, base_url, f"#/queue/{queue}/main")
    expect(page.get_by_test_id("page-error")).to_contain_text("did not answer in time")

    rest.enqueue(queue, "ping", {"n": 1})  # its event starts the page again
    expect(page.locator(ROWS)).to_have_count(1)
    assert len(hung) == 1
