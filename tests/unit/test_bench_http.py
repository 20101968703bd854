"""The load generator's HTTP client parses answers however the bytes arrive."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from relayq.bench.http import HttpError, RawHttp, _Connection


class _Transport:
    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)


async def _exchange(connection: _Connection, chunks: list[bytes]) -> Any:
    task = asyncio.ensure_future(connection.exchange(b"GET / HTTP/1.1\r\n\r\n"))
    await asyncio.sleep(0)
    for chunk in chunks:
        connection.data_received(chunk)
    return await task


def test_answers_split_anywhere_and_back_to_back() -> None:
    async def scenario() -> None:
        connection = _Connection()
        connection.connection_made(_Transport())  # type: ignore[arg-type]
        answer = b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n{\"a\":1}"
        for cut in range(1, len(answer)):
            assert await _exchange(connection, [answer[:cut], answer[cut:]]) == (201, b'{"a":1}')
        second = b"HTTP/1.1 404 Not Found\r\ncontent-length: 2\r\n\r\n{}"
        connection.buffer += second  # arrived early, with the previous answer
        assert await _exchange(connection, []) == (404, b"{}")

    asyncio.run(scenario())


def test_no_content_length_and_closed_connections_fail() -> None:
    async def scenario() -> None:
        connection = _Connection()
        connection.connection_made(_Transport())  # type: ignore[arg-type]
        with pytest.raises(HttpError):
            await _exchange(connection, [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"])
        lost = _Connection()
        lost.connection_made(_Transport())  # type: ignore[arg-type]
        task = asyncio.ensure_future(lost.exchange(b"x"))
        await asyncio.sleep(0)
        lost.connection_lost(None)
        with pytest.raises(HttpError):
            await task

    asyncio.run(scenario())


def test_requests_are_built_once_with_length() -> None:
    http = RawHttp("http://127.0.0.1:9/api", {"Content-Type": "application/json"})
    request = http.build("POST", "/queue/batch", b"[1]")
    assert request.startswith(b"POST /api/queue/batch HTTP/1.1\r\nHost: 127.0.0.1:9\r\n")
    assert request.endswith(b"Content-Length: 3\r\n\r\n[1]")
