"""Which enqueue bodies the one-pass decoder takes, and which it leaves to the field checks."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import msgspec

from relayq.api.routes.messages import _fast_messages
from relayq.config import Settings

RELAY: Any = SimpleNamespace(settings=Settings(max_payload_bytes=40, max_batch_size=3))


def fast(body: object, *, many: bool = True) -> Any:
    return _fast_messages(RELAY, msgspec.json.encode(body), many=many)


def test_documented_spellings_take_the_fast_path() -> None:
    items = fast([{"type": "t", "payload": {"a": 1}, "queue": "q", "ackTimeout": 5, "idempotencyKey": "k"}])
    assert items is not None and len(items) == 1
    assert (items[0].queue, items[0].ack_timeout, items[0].idempotency_key) == ("q", 5, "k")
    assert bytes(items[0].payload) == b'{"a":1}'
    assert fast({"messages": [{"type": "t", "payload": 1}]})[0].queue == "default"
    assert fast({"type": "t", "payload": None}, many=False)[0].payload == msgspec.Raw(b"null")


def test_everything_else_takes_the_slow_path() -> None:
    assert fast([{"type": "t", "payload": 1, "queue_name": "q"}]) is None  # an alias
    assert fast([{"type": "t", "payload": {"note": "ack_timeout later"}}]) is not None
    assert fast([{"type": "t", "payload": {"ack_timeout": 1}}]) is not None  # payloads are opaque
    assert fast([{"type": "t", "payload": 1, "extra": True}]) is None  # any other key: the field checks decide
    assert fast({"messages": [{"type": "t", "payload": 1}], "queue_name": "q"}) is None
    assert fast([{"type": "t\u0000", "payload": 1}]) is None
    assert fast([{"type": "t", "payload": "x" * 50}]) is None  # over the payload limit
    assert fast([{"type": "t", "payload": 1}] * 4) is None  # over the batch limit
    assert fast([{"type": "t", "payload": 1, "priority": 2.0}]) is None
    assert fast([{"payload": 1}]) is None
    assert fast({"nope": []}) is None
    assert _fast_messages(RELAY, b"[{", many=True) is None
    for bad in (b'{"type":"a","payload":1e400}', b'{"type":"a","payload":"\xff"}',  # left to INVALID_JSON
                b'{"type":"a","payload":[1.5E+308]}', b'{"type":"a","payload":' + b"9" * 300 + b'.5}',
                b'{"type":"a","payload":1e-16384}'):  # beyond jsonb: parsed (to 0.0) the slow way
        assert _fast_messages(RELAY, bad, many=False) is None


def test_finite_numbers_and_compact_bodies_stay_on_the_fast_path() -> None:
    items = _fast_messages(RELAY, b'{"type":"a","payload":[1e99,-2.5e-300,123,1e-9999]}', many=False)
    assert items is not None and bytes(items[0].payload) == b"[1e99,-2.5e-300,123,1e-9999]"
    spaced = _fast_messages(RELAY, b'{"type": "a", "payload": {"k": [1, 2]}}', many=False)
    assert spaced is not None and bytes(spaced[0].payload) == b'{"k":[1,2]}'  # stored compact


def test_batch_acks_decode_in_one_pass_only_when_unambiguous() -> None:
    from relayq.api.routes.messages import _ACKS, _fast_decode

    def fast_acks(body: object) -> Any:
        return _fast_decode(msgspec.json.encode(body), _ACKS.decode)

    body = fast_acks({"acks": [{"id": "s1", "lock_token": "t1"}, {"id": "s2", "lock_token": "t2"}]})
    assert [(a.id, a.lock_token) for a in body.acks] == [("s1", "t1"), ("s2", "t2")]
    assert fast_acks({"acks": [{"id": "s1", "lock_token": "t1", "extra": 1}]}) is None
    assert fast_acks({"acks": [{"id": "s1", "lockToken": "t1"}]}) is None  # the other spelling
    assert fast_acks({"acks": []}) is None and fast_acks({"acks": [{"id": "s1"}]}) is None
    assert fast_acks({"acks": [{"id": "s1", "lock_token": "t"}] * 1001}) is None
