"""The pipelined transaction protocol against a scripted server on loopback.

The server reads what the client wrote and answers exactly as scripted, so the tests see the
bytes on the wire: commands batched in one write, multi-line replies, a refused recipient
followed by RSET, a server that opens DATA anyway, a dropped connection and a silent one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import pytest

from shared.mail.pipelining import PipelinedSession, ServerReply, SessionLost, TooSlow, dot_stuff

Script = Callable[[bytes], bytes | None]  # what the server answers to what it has read so far


class ScriptedServer:
    def __init__(self, script: Script) -> None:
        self.script = script
        self.received = bytearray()
        self.server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            self.received.extend(data)
            answer = self.script(bytes(self.received))
            if answer == b"DROP":
                writer.close()
                return
            if answer:
                writer.write(answer)
                await writer.drain()
        writer.close()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Script, float], asyncio.Future[tuple[PipelinedSession, ScriptedServer]]]]:
    servers: list[asyncio.Server] = []
    sessions: list[PipelinedSession] = []

    async def start(script: Script, timeout: float = 2.0) -> tuple[PipelinedSession, ScriptedServer]:
        scripted = ScriptedServer(script)
        server = await asyncio.start_server(scripted.handle, "127.0.0.1", 0)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
        session = PipelinedSession(transport, timeout)  # type: ignore[arg-type]
        sessions.append(session)
        return session, scripted

    yield start  # type: ignore[misc]
    for session in sessions:
        session.close()
    for server in servers:
        server.close()
        await server.wait_closed()


def answers(*steps: tuple[bytes, bytes]) -> Script:
    """Answer the i-th time `marker` has been seen with its reply."""

    def script(seen: bytes) -> bytes | None:
        out = b""
        for marker, reply in steps:
            if seen.count(marker) > script.done.get(marker, 0):  # type: ignore[attr-defined]
                script.done[marker] = seen.count(marker)  # type: ignore[attr-defined]
                out += reply
        return out or None

    script.done = {}  # type: ignore[attr-defined]
    return script


def test_dot_stuffing() -> None:
    assert dot_stuff(b".hidden\r\nline\r\n.also") == b"..hidden\r\nline\r\n..also\r\n.\r\n"
    assert dot_stuff(b"plain\r\n") == b"plain\r\n.\r\n"


async def test_a_transaction_goes_out_in_one_write(serve) -> None:  # type: ignore[no-untyped-def]
    session, server = await serve(answers(
        (b"DATA\r\n", b"250 2.1.0 sender ok\r\n250 2.1.5 recipient ok\r\n354 go ahead\r\n"),
        (b"\r\n.\r\n", b"250-2.0.0 queued\r\n250 as 4F2A\r\n"),
    ), 2.0)
    stage, reply = await session.send("a@example.org", "b@example.com", b"Subject: x\r\n\r\n.dot\r\n")
    assert (stage, reply) == ("data", ServerReply(250, "2.0.0 queued\nas 4F2A"))
    assert bytes(server.received).startswith(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n")
    assert b"\r\n..dot\r\n.\r\n" in server.received


async def test_a_refused_recipient_resets_the_session(serve) -> None:  # type: ignore[no-untyped-def]
    session, server = await serve(answers(
        (b"DATA\r\n", b"250 ok\r\n550 5.1.1 no such user\r\n503 5.5.1 no valid recipients\r\n"),
        (b"RSET\r\n", b"250 reset\r\n"),
    ), 2.0)
    stage, reply = await session.send("a@example.org", "gone@example.com", b"x\r\n")
    assert (stage, reply.code) == ("rcpt", 550)
    assert server.received.endswith(b"RSET\r\n") and session.is_open


async def test_data_opened_anyway_is_closed_empty(serve) -> None:  # type: ignore[no-untyped-def]
    session, server = await serve(answers(
        (b"DATA\r\n", b"250 ok\r\n550 5.7.1 relay denied\r\n354 go ahead\r\n"),
        (b"\r\n.\r\n", b"554 5.5.1 no valid recipients\r\n"),
        (b"RSET\r\n", b"250 reset\r\n"),
    ), 2.0)
    stage, reply = await session.send("a@example.org", "far@example.net", b"secret body\r\n")
    assert (stage, reply.code) == ("rcpt", 550)
    assert b"secret body" not in server.received  # the message never went out


async def test_a_dropped_connection_is_session_lost(serve) -> None:  # type: ignore[no-untyped-def]
    session, _ = await serve(lambda seen: b"DROP", 2.0)
    with pytest.raises(SessionLost):
        await session.send("a@example.org", "b@example.com", b"x\r\n")
    assert not session.is_open


async def test_a_silent_server_times_out(serve) -> None:  # type: ignore[no-untyped-def]
    session, _ = await serve(lambda seen: None, 0.3)
    with pytest.raises(SessionLost, match="stopped answering"):
        await session.send("a@example.org", "b@example.com", b"x\r\n")


async def test_a_malformed_or_endless_reply_ends_the_session(serve) -> None:  # type: ignore[no-untyped-def]
    session, _ = await serve(lambda seen: b"hello there\r\n", 2.0)
    with pytest.raises(SessionLost, match="malformed"):
        await session.send("a@example.org", "b@example.com", b"x\r\n")
    endless, _ = await serve(lambda seen: b"250-" + b"x" * 70_000, 2.0)
    with pytest.raises(SessionLost, match="too long"):
        await endless.send("a@example.org", "b@example.com", b"x\r\n")


class PacedServer:
    """Answers each transaction's MAIL, RCPT and DATA after its delay in `delays` (None: never)."""

    def __init__(self, delays: list[float | None]) -> None:
        self.delays = delays
        self.transactions = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        in_data = False
        while line := await reader.readline():
            if in_data:
                if line == b".\r\n":
                    in_data = False
                    writer.write(b"250 queued\r\n")
            elif line == b"DATA\r\n":
                delay = self.delays[min(self.transactions, len(self.delays) - 1)]
                self.transactions += 1
                if delay is None:
                    continue
                await asyncio.sleep(delay)
                writer.write(b"250 ok\r\n250 ok\r\n354 go on\r\n")
                in_data = True
            elif line == b"RSET\r\n" or line == b"QUIT\r\n":
                writer.write(b"250 ok\r\n")
            await writer.drain()
        writer.close()


@pytest.fixture
async def paced() -> AsyncIterator[Callable[[list[float | None], float], asyncio.Future[PipelinedSession]]]:
    servers: list[asyncio.Server] = []
    sessions: list[PipelinedSession] = []

    async def start(delays: list[float | None], timeout: float) -> PipelinedSession:
        server = await asyncio.start_server(PacedServer(delays).handle, "127.0.0.1", 0)
        servers.append(server)
        transport, _ = await asyncio.get_running_loop().create_connection(
            asyncio.Protocol, "127.0.0.1", server.sockets[0].getsockname()[1])
        sessions.append(PipelinedSession(transport, timeout))  # type: ignore[arg-type]
        return sessions[-1]

    yield start  # type: ignore[misc]
    for session in sessions:
        session.close()
    for server in servers:
        server.close()


# One timer per session, moved only when a wait must end sooner: each of these would pass with a
# fresh timer per wait, and fails if the shared one is left where an earlier wait put it.

async def test_a_server_that_goes_silent_later_is_still_cut_off(paced) -> None:  # type: ignore[no-untyped-def]
    session = await paced([0.0, None], 0.5)
    assert (await session.send("a@example.org", "b@example.com", b"x\r\n"))[1].code == 250
    with pytest.raises(SessionLost, match="stopped answering"):
        await asyncio.wait_for(session.send("a@example.org", "b@example.com", b"x\r\n"), 20)


async def test_a_deadline_sooner_than_the_timer_cuts_at_the_deadline(paced) -> None:  # type: ignore[no-untyped-def]
    session = await paced([0.0, None], 60)  # the first wait leaves the timer a minute ahead
    assert (await session.send("a@example.org", "b@example.com", b"x\r\n"))[1].code == 250
    began = time.monotonic()
    with pytest.raises(TooSlow):
        await asyncio.wait_for(session.send("a@example.org", "b@example.com", b"x\r\n",
                                            deadline=time.monotonic() + 0.2), 50)
    assert time.monotonic() - began < 30  # generous: 0.2 s is due, the stale timer would wait 60


async def test_the_timer_counts_from_each_wait_not_the_first(paced) -> None:  # type: ignore[no-untyped-def]
    # The first wait sets the timer for 2 s; the second begins 1.2 s later and is answered 1.2 s
    # after that: past the first wait's due time, well within its own.
    session = await paced([0.0, 1.2], 2.0)
    assert (await session.send("a@example.org", "b@example.com", b"x\r\n"))[1].code == 250
    await asyncio.sleep(1.2)
    stage, reply = await asyncio.wait_for(session.send("a@example.org", "b@example.com", b"x\r\n"), 20)
    assert (stage, reply.code) == ("data", 250) and session.is_open


async def test_an_idle_session_is_not_cut_when_the_timer_fires(paced) -> None:  # type: ignore[no-untyped-def]
    session = await paced([0.0], 0.3)
    assert (await session.send("a@example.org", "b@example.com", b"x\r\n"))[1].code == 250
    await asyncio.sleep(0.8)  # the timer fires with nothing awaited
    assert session.is_open
    assert (await session.send("a@example.org", "b@example.com", b"x\r\n"))[1].code == 250


async def test_replies_split_anywhere_across_reads_are_read_alike(serve) -> None:  # type: ignore[no-untyped-def]
    replies = b"250 ok\r\n250-first\r\n250 second\r\n354 go ahead\r\n"
    for cut in range(1, len(replies)):
        session, _ = await serve(lambda seen: None, 2.0)
        session._owed = 3  # as if MAIL, RCPT and DATA had been written
        session.data_received(replies[:cut])
        session.data_received(replies[cut:])
        assert await session._replies(3) == [ServerReply(250, "ok"), ServerReply(250, "first\nsecond"),
                                             ServerReply(354, "go ahead")], cut


async def test_a_cancelled_transaction_ends_the_session(paced) -> None:  # type: ignore[no-untyped-def]
    # Its replies may still come, and would be read as the next transaction's.
    session = await paced([0.5, 0.0], 10)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(session.send("a@example.org", "b@example.com", b"x\r\n"), 0.1)
    assert not session.is_open
    with pytest.raises(SessionLost):
        await session.send("a@example.org", "b@example.com", b"x\r\n")
