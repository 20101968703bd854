"""One write per response: the transport proxy of api/protocol.py."""

from __future__ import annotations

import asyncio

from relayq.api.protocol import _HeadWithBody


class _Transport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str) -> str:
        return f"info:{name}"


def test_head_and_body_leave_in_one_write_and_a_lone_head_still_leaves() -> None:
    async def scenario() -> None:
        transport = _Transport()
        proxy = _HeadWithBody(transport, asyncio.get_running_loop())  # type: ignore[arg-type]
        head = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"
        proxy.write(head)
        proxy.write(b"{}")
        assert transport.writes == [head + b"{}"]
        proxy.write(head)  # HEAD request, or a stream whose first chunk comes later
        assert transport.writes == [head + b"{}"]
        await asyncio.sleep(0)
        assert transport.writes == [head + b"{}", head]
        proxy.write(b"0\r\n\r\n")  # not a head: straight through
        proxy.write(head)
        proxy.close()  # closing flushes first
        assert transport.writes[-2:] == [b"0\r\n\r\n", head] and transport.closed
        assert proxy.get_extra_info("peername") == "info:peername"

    asyncio.run(scenario())
