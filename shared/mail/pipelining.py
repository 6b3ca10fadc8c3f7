"""SMTP transactions with PIPELINING (RFC 2920) on a connection aiosmtplib has set up.

aiosmtplib connects, verifies TLS and logs in; it does not pipeline, so each message would cost
three round trips before its body. Once the session is ready this protocol takes over the same
transport: MAIL FROM, RCPT TO and DATA go out in one write, their three replies are read in
order, and the body follows. A server that does not offer PIPELINING gets the same commands one
at a time. It speaks only what a transaction needs (and RSET, QUIT).

Everything before the server's "354" may be given a deadline: cutting the connection there is
safe, since no message was handed over. From "354" on only the per-reply timeout applies, since
a cut after the final dot could turn an accepted message into a duplicate.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass

MAX_REPLY_BYTES = 64 * 1024


class SessionLost(ConnectionError):
    """The connection closed or stopped answering; nothing more can be sent on it."""


class TooSlow(SessionLost):
    """The server had not reached DATA by the transaction's deadline: the connection was cut
    before the message was handed over."""


@dataclass(frozen=True)
class ServerReply:
    code: int
    text: str


def dot_stuff(message: bytes) -> bytes:
    """The DATA payload: lines starting with "." doubled, CRLF at the end, then the end marker.

    `message` must already use CRLF line endings (compose.py produces it that way).
    """
    stuffed = message.replace(b"\r\n.", b"\r\n..")
    if stuffed.startswith(b"."):
        stuffed = b"." + stuffed
    if not stuffed.endswith(b"\r\n"):
        stuffed += b"\r\n"
    return stuffed + b".\r\n"


class PipelinedSession(asyncio.Protocol):
    def __init__(self, transport: asyncio.Transport, timeout: float, *, pipelining: bool = True) -> None:
        self._transport = transport
        self._timeout = timeout
        self.pipelining = pipelining
        # The longest the server made us wait for one reply in the current transaction: what a
        # person is told when their server is too slow.
        self.waited = 0.0
        self._asked = time.monotonic()  # when the reply now awaited was asked for
        self._buffer = bytearray()
        self._waiting: deque[asyncio.Future[ServerReply]] = deque()
        self._early: deque[ServerReply] = deque()
        self._lost: Exception | None = None
        self._can_write = asyncio.Event()
        self._can_write.set()
        transport.set_protocol(self)

    @property
    def is_open(self) -> bool:
        return self._lost is None and not self._transport.is_closing()

    # asyncio.Protocol

    def data_received(self, data: bytes) -> None:
        self._buffer.extend(data)
        while (reply := self._parse_one()) is not None:
            self._note_wait()
            if self._waiting:
                waiter = self._waiting.popleft()
                if not waiter.done():
                    waiter.set_result(reply)
            else:
                self._early.append(reply)
        if len(self._buffer) > MAX_REPLY_BYTES:
            self._fail(SessionLost("reply too long"))

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(SessionLost(f"connection lost: {exc}" if exc else "connection closed"))
        self._can_write.set()

    def pause_writing(self) -> None:
        self._can_write.clear()

    def resume_writing(self) -> None:
        self._can_write.set()

    # replies

    def _parse_one(self) -> ServerReply | None:
        lines: list[bytes] = []
        offset = 0
        while (end := self._buffer.find(b"\n", offset)) != -1:
            line = bytes(self._buffer[offset : end + 1])
            offset = end + 1
            lines.append(line)
            if line[3:4] != b"-":
                del self._buffer[:offset]
                try:
                    code = int(lines[0][:3])
                except ValueError:
                    self._fail(SessionLost(f"malformed reply {lines[0][:80]!r}"))
                    return None
                text = "\n".join(part[4:].strip().decode("utf-8", "replace") for part in lines)
                return ServerReply(code, text)
        return None

    def _note_wait(self) -> None:
        now = time.monotonic()
        self.waited = max(self.waited, now - self._asked)
        self._asked = now

    def _cut(self, exc: Exception) -> None:
        self._note_wait()  # the reply given up on counts for as long as it was awaited
        self._fail(exc)

    def _fail(self, exc: Exception) -> None:
        if self._lost is None:
            self._lost = exc
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_exception(exc)
        self._transport.close()

    def _expect(self) -> asyncio.Future[ServerReply]:
        future: asyncio.Future[ServerReply] = asyncio.get_running_loop().create_future()
        if self._early:
            future.set_result(self._early.popleft())
        elif self._lost is not None:
            future.set_exception(self._lost)
        else:
            self._waiting.append(future)
        return future

    async def _write(self, data: bytes) -> None:
        if self._lost is not None:
            raise self._lost
        self._asked = time.monotonic()
        self._transport.write(data)
        if not self._can_write.is_set():
            await asyncio.wait_for(self._can_write.wait(), self._timeout)

    async def _replies(self, count: int, deadline: float | None = None) -> list[ServerReply]:
        """The next `count` replies, each within the timeout, all by `deadline` (time.monotonic())."""
        futures = [self._expect() for _ in range(count)]
        delay, lost = self._timeout, SessionLost("the server stopped answering")
        if deadline is not None and deadline - time.monotonic() < delay:
            delay, lost = max(deadline - time.monotonic(), 0.0), TooSlow("the server did not get to DATA in time")
        # One timer for the lot; wait_for would cost a task per reply on the hot path.
        timer = asyncio.get_running_loop().call_later(delay, self._cut, lost)
        try:
            return [await future for future in futures]
        finally:
            timer.cancel()
            for future in futures:
                if future.done() and not future.cancelled():
                    future.exception()  # one failure ends the session; the rest say the same

    # commands

    async def send(
        self, sender: str, recipient: str, message: bytes, *, smtputf8: bool = False, deadline: float | None = None
    ) -> tuple[str, ServerReply]:
        """One message; returns (stage, reply) where stage is "mail", "rcpt" or "data".

        `smtputf8` declares non-ASCII addresses (RFC 6531). A refusal at any stage leaves the
        session clean (RSET) for the next message. Raises TooSlow when the server has not
        answered DATA with 354 by `deadline` (time.monotonic()), SessionLost when it goes away.
        """
        self.waited = 0.0
        option = " SMTPUTF8" if smtputf8 else ""
        commands = [f"MAIL FROM:<{sender}>{option}\r\n", f"RCPT TO:<{recipient}>\r\n", "DATA\r\n"]
        if self.pipelining:
            await self._write("".join(commands).encode())
            mail, rcpt, data = await self._replies(3, deadline)
        else:
            mail, rcpt, data = await self._one_by_one(commands, deadline)
        if data.code == 354 and (mail.code != 250 or rcpt.code not in (250, 251)):
            await self._write(b".\r\n")  # the server opened DATA anyway: close it empty
            await self._replies(1)
        if mail.code != 250:
            await self.reset()
            return "mail", mail
        if rcpt.code not in (250, 251):
            await self.reset()
            return "rcpt", rcpt
        if data.code != 354:
            await self.reset()
            return "data", data
        await self._write(dot_stuff(message))
        (final,) = await self._replies(1)
        return "data", final

    async def _one_by_one(self, commands: list[str], deadline: float | None) -> list[ServerReply]:
        """Each command after the reply to the one before; stops at the first refusal."""
        replies: list[ServerReply] = []
        for command, wanted in zip(commands, ((250,), (250, 251), (354,)), strict=True):
            await self._write(command.encode())
            (reply,) = await self._replies(1, deadline)
            replies.append(reply)
            if reply.code not in wanted:
                break
        not_reached = ServerReply(503, "not sent")  # after a refusal; never what send() returns
        return replies + [not_reached] * (3 - len(replies))

    async def reset(self) -> None:
        await self._write(b"RSET\r\n")
        await self._replies(1)

    async def quit(self) -> None:
        try:
            await self._write(b"QUIT\r\n")
            await self._replies(1)
        except (SessionLost, OSError):
            pass
        finally:
            self._transport.close()

    def close(self) -> None:
        self._transport.close()
