"""Slow clients against the self-hosted server: a request head that trickles in is cut off, and
others are served meanwhile; a body that trickles in gets a 408; one address cannot hold more
than its share of connections."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from functions import parsing, serve


async def hello(request: Any) -> PlainTextResponse:
    return PlainTextResponse("hello")


class QuickDeadline(serve.HeadDeadlineProtocol):
    head_seconds = 1.0


PER_CLIENT = 30


@pytest.fixture
async def server(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[int]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = serve.config("127.0.0.1", port, app=Starlette(routes=[Route("/", hello)]), log_level="warning",
                          per_client=PER_CLIENT)
    config.http = QuickDeadline
    running = uvicorn.Server(config)
    task = asyncio.create_task(running.serve())
    for _ in range(500):  # uvicorn says it has started only through this flag
        if running.started:
            break
        await asyncio.sleep(0.02)
    yield port
    running.should_exit = True
    await task


async def drip(port: int, first: bytes = b"") -> float:
    """Open a connection, send `first`, then a header byte every 0.2 s; seconds until the server hangs up."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    began = time.monotonic()
    writer.write(first + b"GET / HTTP/1.1\r\nHost: x\r\n")
    if first:
        await reader.readuntil(b"hello")  # the first request's answer
        began = time.monotonic()
    try:
        for _ in range(100):  # 20 s of trickle, far past the deadline
            writer.write(b"X-A: b\r\n")
            await writer.drain()
            if await _closed(reader):
                return time.monotonic() - began
    except ConnectionError:
        return time.monotonic() - began
    finally:
        writer.close()
    return float("inf")


async def _closed(reader: asyncio.StreamReader) -> bool:
    try:
        return await asyncio.wait_for(reader.read(1), 0.2) == b""
    except TimeoutError:
        return False


async def test_a_trickling_request_head_is_cut_off_and_others_are_served(server: int) -> None:
    dripping = [asyncio.create_task(drip(server)) for _ in range(20)]
    await asyncio.sleep(0.3)
    async with httpx.AsyncClient() as client:
        answer = await client.get(f"http://127.0.0.1:{server}/")
    assert answer.text == "hello"
    held = await asyncio.gather(*dripping)
    assert max(held) < 5, held  # the deadline is 1 s; without it every one runs the 20 s out


async def test_a_kept_alive_connection_gets_the_same_deadline_for_its_next_request(server: int) -> None:
    held = await drip(server, first=b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert held < 5, held


async def test_a_head_sent_in_pieces_within_the_deadline_is_served(server: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server)
    for piece in (b"GET / HTTP/1.1\r\n", b"Host: x\r\n", b"\r\n"):
        writer.write(piece)
        await asyncio.sleep(0.2)
    assert b"hello" in await asyncio.wait_for(reader.readuntil(b"hello"), 5)
    writer.close()


async def test_a_trickling_body_is_answered_408(api: httpx.AsyncClient, api_key: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parsing, "BODY_SECONDS", 0.5)

    async def trickle() -> AsyncIterator[bytes]:
        yield b'{"name": "'
        for _ in range(50):
            await asyncio.sleep(0.1)
            yield b"x"
        yield b'"}'

    answer = await api.post("/v1/campaigns", headers={"Authorization": f"Bearer {api_key}",
                                                      "Accept-Language": "ru"}, content=trickle())
    assert answer.status_code == 408, answer.text
    assert answer.json()["error"]["code"] == "body_too_slow"
    assert "не пришло" in answer.json()["error"]["message"]


async def test_one_address_holds_no_more_than_its_share_of_connections(server: int) -> None:
    # The attacker connects from another loopback address, so the cap that stops it leaves
    # 127.0.0.1 alone.
    held = [await asyncio.open_connection("127.0.0.1", server, local_addr=("127.0.0.2", 0))
            for _ in range(PER_CLIENT + 20)]
    # Checked at once: the 1-s head deadline closes the others soon after.
    refused = await asyncio.gather(*(_closed(reader) for reader, _ in held))
    assert refused.count(True) == 20, refused
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"http://127.0.0.1:{server}/")).text == "hello"
    for _, writer in held:
        writer.close()
    await asyncio.sleep(0.3)  # the server notices the closed connections
    reader, writer = await asyncio.open_connection("127.0.0.1", server, local_addr=("127.0.0.2", 0))
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert b"hello" in await asyncio.wait_for(reader.readuntil(b"hello"), 5)  # its share came back
    writer.close()
