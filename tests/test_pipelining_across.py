"""Pipelining across transactions (RFC 2920, section 4): a connection with a second send waiting
writes that send's MAIL, RCPT and DATA together with the first one's body and end marker.

A real SMTP server on loopback reads raw chunks and records them; the client's writes are counted
on its transport. The server can also cut the connection right after such a merged write without
answering the final dot: both are sent again — the second only lost its commands, and the first was
never confirmed by a server that closed the connection instead (the post-DATA window: it may arrive
twice, it is never lost; a server that reads part of a body and resets must not lose it).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from shared.delivery.scheduler import Deliverer, RetryPolicy
from shared.mail.messenger import ConnectPolicy, ReplyKind, SmtpAccount, SmtpConnection
from tests.test_delivery_scheduler import KEYS, batch_of, make_store

POLICY = ConnectPolicy(allow_private=True, allow_plaintext=True, timeout=5.0)
MERGED = b"\r\n.\r\nMAIL FROM:"  # a body's end and the next transaction's first command, in one read


class RecordingServer:
    """SMTP with PIPELINING, parsing whatever arrives in each read (kept in `reads`); `accepted`
    holds (recipient, body) for every message it answered or cut after. With `cut_after_merged`,
    the first connection is closed without a reply to the first body whose end came with the next
    MAIL FROM (a write of one body alone is answered: the client waits for it)."""

    def __init__(self, *, cut_after_merged: bool = False, slow_final: float = 0.0) -> None:
        self.cut_after_merged = cut_after_merged
        self.slow_final = slow_final  # seconds before each reply to a final dot, then 0.15 s before the rest
        self.reads: list[bytes] = []
        self.accepted: list[tuple[str, bytes]] = []
        self.connections = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        cut = self.cut_after_merged and self.connections == 1
        writer.write(b"220 recording.test ESMTP\r\n")
        buffer, body, rcpt, in_data = b"", bytearray(), "", False
        with contextlib.suppress(ConnectionError):
            while chunk := await reader.read(65536):
                self.reads.append(chunk)
                buffer += chunk
                out = bytearray()
                while b"\r\n" in buffer:
                    line, buffer = buffer.split(b"\r\n", 1)
                    if in_data:
                        if line != b".":
                            body += line + b"\r\n"
                            continue
                        in_data = False
                        self.accepted.append((rcpt, bytes(body)))
                        if cut and buffer.startswith(b"MAIL FROM"):  # came in the body's write
                            writer.close()
                            return
                        out += b"250 2.0.0 queued as %d\r\n" % len(self.accepted)
                        if self.slow_final:
                            await asyncio.sleep(self.slow_final)
                            writer.write(bytes(out))
                            out = bytearray()
                            await writer.drain()
                            await asyncio.sleep(0.15)
                    elif line.upper().startswith((b"EHLO", b"HELO")):
                        out += b"250-recording.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
                    elif line.upper().startswith((b"MAIL", b"RSET")):
                        out += b"250 ok\r\n"
                    elif line.upper().startswith(b"RCPT"):
                        rcpt = line.decode().split("<", 1)[1].rstrip(">")
                        out += b"250 ok\r\n"
                    elif line.upper() == b"DATA":
                        body, in_data = bytearray(), True
                        out += b"354 go on\r\n"
                    elif line.upper() == b"QUIT":
                        writer.write(bytes(out) + b"221 bye\r\n")
                        writer.close()
                        return
                    else:
                        out += b"500 what\r\n"
                if out:
                    writer.write(bytes(out))
                    await writer.drain()
        writer.close()


class CountingTransport:
    """The connection's transport, with every write the client makes kept."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))
        self.inner.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture
async def server() -> AsyncIterator[tuple[RecordingServer, int]]:
    servers: list[asyncio.Server] = []

    async def start(recording: RecordingServer) -> int:
        listening = await asyncio.start_server(recording.handle, "127.0.0.1", 0)
        servers.append(listening)
        return int(listening.sockets[0].getsockname()[1])

    yield start  # type: ignore[misc]
    for listening in servers:
        listening.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(listening.wait_closed(), 5)


async def counted_connection(port: int) -> tuple[SmtpConnection, CountingTransport]:
    conn = SmtpConnection(SmtpAccount("127.0.0.1", port, "none", "", ""), POLICY)
    await conn.open()
    assert conn.pipelined and conn._pipe is not None
    counting = CountingTransport(conn._pipe._transport)
    conn._pipe._transport = counting  # type: ignore[assignment]
    return conn, counting


def message(n: int) -> bytes:
    return b"Subject: %d\r\n\r\nbody of message %d\r\n" % (n, n)


async def test_a_body_and_the_next_transactions_commands_go_out_in_one_write(server) -> None:  # type: ignore[no-untyped-def]
    recording = RecordingServer()
    conn, counting = await counted_connection(await server(recording))
    replies = await asyncio.wait_for(asyncio.gather(
        *(conn.send("a@example.org", f"r{n}@example.com", message(n)) for n in (1, 2, 3))), 30)
    assert [reply.kind for reply in replies] == [ReplyKind.SENT] * 3, replies
    # Replies were matched in order: each message has the reply to its own final dot.
    assert [reply.text for reply in replies] == [f"2.0.0 queued as {n}" for n in (1, 2, 3)]
    # One write per message, plus the first message's commands: not two per message.
    assert len(counting.writes) == 4, counting.writes
    for n, write in zip((1, 2), counting.writes[1:3], strict=True):
        assert write.startswith(message(n)) and write.endswith(
            b"\r\n.\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<r%d@example.com>\r\nDATA\r\n" % (n + 1)), write
    assert any(MERGED in read for read in recording.reads), recording.reads
    assert [rcpt for rcpt, _ in recording.accepted] == ["r1@example.com", "r2@example.com", "r3@example.com"]
    await conn.quit()


async def test_a_cut_after_a_merged_write_sends_both_again(server) -> None:  # type: ignore[no-untyped-def]
    recording = RecordingServer(cut_after_merged=True)
    conn, counting = await counted_connection(await server(recording))
    first, second = await asyncio.wait_for(asyncio.gather(
        conn.send("a@example.org", "r1@example.com", message(1)),
        conn.send("a@example.org", "r2@example.com", message(2))), 30)
    assert len(counting.writes) == 2 and counting.writes[1].endswith(b"RCPT TO:<r2@example.com>\r\nDATA\r\n")
    assert first.kind is ReplyKind.RETRY and "connection" in first.text, first
    assert second.kind is ReplyKind.RETRY and "connection" in second.text, second
    assert [rcpt for rcpt, _ in recording.accepted] == ["r1@example.com"]  # the second's body never went out


async def test_the_scheduler_pipelines_and_a_cut_loses_and_duplicates_nothing(server) -> None:  # type: ignore[no-untyped-def]
    recording = RecordingServer(cut_after_merged=True)
    port = await server(recording)
    store = await make_store(6)
    store.sender_row = dataclasses.replace(store.sender_row, host="127.0.0.1", port=port, security="none",
                                           username="")
    worker = Deliverer(store, KEYS, POLICY, connections_per_sender=1, retry=RetryPolicy(base_seconds=0))
    try:
        await asyncio.wait_for(worker.deliver(batch_of(store)), 60)
        retried = [p for p, row in store.rows.items() if row.status == "pending"]
        assert len(retried) == 2, {p: (r.status, r.reply) for p, r in store.rows.items()}
        assert all("connection" in (store.rows[p].reply or "") for p in retried)
        assert any(MERGED in read for read in recording.reads)
        await asyncio.wait_for(worker.deliver(batch_of(store)), 60)  # the retry, due at once
    finally:
        await worker.close()
    assert store.states() == {"sent": 6}, {p: (r.status, r.reply) for p, r in store.rows.items()}
    assert all(store.rows[p].attempts == 2 for p in retried)
    # Nobody lost; the one copy more is the message whose final dot the server took and then closed
    # the connection without confirming (the post-DATA window), and nobody else's came twice.
    accepted = sorted(rcpt for rcpt, _ in recording.accepted)
    expected = sorted([row.email for row in store.rows.values()] + [store.rows[min(retried)].email])
    assert accepted == expected, accepted
    assert recording.connections >= 2


async def test_a_send_paused_while_its_commands_were_out_is_cut_before_its_body(server) -> None:  # type: ignore[no-untyped-def]
    # Its commands went out with the first body while the account could send; the first came back
    # with a quota reply that paused the account: the second must not go out, and an empty "."
    # would send a message, so the connection is cut before the body (nothing handed over).
    recording = RecordingServer()
    conn, counting = await counted_connection(await server(recording))
    asked: list[bool] = []

    def may_send() -> bool:
        asked.append(not asked)  # yes when its commands are merged, no once its 354 is in
        return asked[-1]

    conn.may_send = may_send
    first, second = await asyncio.wait_for(asyncio.gather(
        conn.send("a@example.org", "r1@example.com", message(1)),
        conn.send("a@example.org", "r2@example.com", message(2))), 30)
    assert first.kind is ReplyKind.SENT and first.code == 250
    assert second.held and second.kind is ReplyKind.RETRY, second
    assert asked == [True, False] and len(counting.writes) == 2 and MERGED in counting.writes[1]
    assert not conn.is_open
    await asyncio.sleep(0.2)  # whatever the client wrote has arrived
    assert [rcpt for rcpt, _ in recording.accepted] == ["r1@example.com"]
    assert b"body of message 2" not in b"".join(recording.reads)


async def test_a_send_paused_before_its_turn_writes_nothing(server) -> None:  # type: ignore[no-untyped-def]
    recording = RecordingServer()
    conn, counting = await counted_connection(await server(recording))
    conn.may_send = lambda: False  # asked only of a send that waited: the first goes out
    first, second = await asyncio.wait_for(asyncio.gather(
        conn.send("a@example.org", "r1@example.com", message(1)),
        conn.send("a@example.org", "r2@example.com", message(2))), 30)
    assert first.kind is ReplyKind.SENT and second.held
    assert len(counting.writes) == 2 and b"r2@example.com" not in b"".join(counting.writes)
    assert conn.is_open  # nothing of the second went out: the connection stays usable
    third = await conn.send("a@example.org", "r3@example.com", message(3))
    assert third.kind is ReplyKind.SENT and third.text == "2.0.0 queued as 2"
    await conn.quit()


async def test_a_slow_final_reply_does_not_eat_the_next_sends_deadline(server) -> None:  # type: ignore[no-untyped-def]
    # The second send's commands are out while the first waits 1 s for its final reply: cutting the
    # connection then would leave the first unconfirmed. The second's deadline counts from its turn.
    recording = RecordingServer(slow_final=1.0)
    conn, counting = await counted_connection(await server(recording))
    first, second = await asyncio.wait_for(asyncio.gather(
        conn.send("a@example.org", "r1@example.com", message(1), deadline=time.monotonic() + 0.6),
        conn.send("a@example.org", "r2@example.com", message(2), deadline=time.monotonic() + 0.6)), 30)
    assert len(counting.writes) == 3
    assert (first.kind, first.code, second.kind, second.code) == (ReplyKind.SENT, 250, ReplyKind.SENT, 250), (first, second)
    assert not second.too_slow
    await conn.quit()
