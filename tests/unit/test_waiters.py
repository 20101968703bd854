"""Long-poll wake-ups go to requests that can take what arrived."""

from __future__ import annotations

from typing import cast

import pytest

from relayq.db.database import Database
from relayq.services.changes import Change
from relayq.services.events import CHANNEL, DUE_EVENT, EventStream, _types
from relayq.services.waiters import Waiters


async def test_a_wake_skips_requests_for_other_types() -> None:
    """A parked request for type B, older than one for type A, used up the wake of an A message:
    the A request then waited for its next recheck (up to a second) with the message there."""
    waiters = Waiters()
    for_b = waiters.arm("q", "B")
    for_a = waiters.arm("q", "A")
    for_any = waiters.arm("q")
    waiters.on_change(Change("enqueue", "q", rows=[{"id": "s1", "queue_name": "q", "type": "A"}]))
    assert (for_b.is_set(), for_a.is_set(), for_any.is_set()) == (False, True, False)  # one message, one wake
    waiters.wake("q", 5, {"A"})
    assert (for_b.is_set(), for_any.is_set()) == (False, True)
    waiters.wake("q", 1)  # types unknown (a promotion, another node's event without its messages): any request
    assert for_b.is_set()


async def test_disarm_removes_only_that_request() -> None:
    waiters = Waiters()
    first, second = waiters.arm("q", "A"), waiters.arm("q", "A")
    waiters.disarm("q", first)
    waiters.wake("q", 1, {"A"})
    assert (first.is_set(), second.is_set()) == (False, True)
    waiters.disarm("q", second)
    assert waiters.queues() == []


def test_another_nodes_event_names_its_types_only_when_it_lists_every_message() -> None:
    assert _types({"count": 2, "messages": [{"type": "A"}, {"type": "B"}]}) == {"A", "B"}
    assert _types({"count": 3, "messages": [{"type": "A"}]}) is None  # cut short for NOTIFY's size limit
    assert _types({"count": 1}) is None


async def test_delayed_messages_made_due_elsewhere_wake_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """The process whose promotion loop made a queue's delayed messages due wakes its own polls;
    the others' woke at their one-second recheck. A NOTIFY wake-up now reaches them, and stays a
    wake-up: dashboards get no event for it."""
    sent: list[str] = []

    async def nothing() -> None:
        return None

    here = EventStream(cast(Database, None), Waiters(), window_ms=0)
    monkeypatch.setattr(here, "_send", nothing)
    here.wake_elsewhere("q", 2, {"a"})
    here.flush()
    sent.extend(here.outbox)
    assert len(sent) == 1 and DUE_EVENT in sent[0]

    there = EventStream(cast(Database, None), Waiters(), window_ms=0)
    dashboard = there.subscribe(full=True)
    for_b = there.waiters.arm("q", "b")  # older, but for a type that did not become due
    first, second, third = (there.waiters.arm("q") for _ in range(3))
    there._on_notify(None, 0, CHANNEL, sent[0])
    assert (for_b.is_set(), first.is_set(), second.is_set(), third.is_set()) == (False, True, True, False)
    assert dashboard.queue.empty()
