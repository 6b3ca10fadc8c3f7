"""Reading SMTP replies on a transport taken over from aiosmtplib (pipelining.py sends on it).

Replies are matched to commands in order, and only as many are taken as commands were written: a
reply nobody asked for ends the session (ProtocolError), and so does a line that is no reply or a
reply past the size caps (SessionLost). Per message this is the hot path of a sender worker: one
wait per group of replies and one timer per session, moved only when a wait must end sooner.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import NamedTuple

MAX_REPLY_BYTES = 64 * 1024
MAX_REPLY_LINES = 1000  # no reply to MAIL, RCPT, DATA, RSET or QUIT needs more


class SessionLost(ConnectionError):
    """The connection closed or stopped answering; nothing more can be sent on it."""


class ProtocolError(SessionLost):
    """The server answered out of turn, or with a reply that fits no command: the connection is cut."""


class Closed(SessionLost):
    """The server closed or reset the connection without answering: what it did not confirm is sent again."""


class TooSlow(SessionLost):
    """The server had not reached DATA by the transaction's deadline: the connection was cut
    before the message was handed over."""


class ServerReply(NamedTuple):  # a tuple: four of them per message, built a third faster than a dataclass
    code: int
    text: str


class ReplyReader(asyncio.Protocol):
    """The replies to commands written on a transport, taken in order, each group within a deadline."""

    def __init__(self, transport: asyncio.Transport, timeout: float) -> None:
        self._transport = transport
        self._timeout = timeout
        # The longest the server made us wait for one reply in the current transaction: what a
        # person is told when their server is too slow.
        self.waited = 0.0
        self._asked = time.monotonic()  # when the reply now awaited was asked for
        self._buffer = bytearray()  # the line not yet complete
        self._lines: list[bytes] = []  # the reply being read, line by line
        self._reply_bytes = 0
        # Replies owed for the commands written: one more is a reply nobody asked for, and holding
        # it (a flood of them) would cost memory and be mistaken for the next command's answer.
        self._owed = 0
        self._early: deque[ServerReply] = deque()  # replies in, not yet taken: at most those owed
        self._waiting: deque[asyncio.Future[ServerReply]] = deque()  # _expect's, one reply each
        self._group: asyncio.Future[None] | None = None  # _replies' wait, done once `_wanted` are in
        self._wanted = 0
        self._lost: Exception | None = None
        self._loop = asyncio.get_running_loop()
        # The one timer: `_due` is the loop time by which the awaited replies must be in (0: none
        # awaited), and the timer, when it fires, cuts the session or moves on to the current `_due`.
        self._due = 0.0
        self._overdue: SessionLost = SessionLost("the server stopped answering")
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._paused = False
        self._can_write = asyncio.Event()
        self._can_write.set()

    @property
    def is_open(self) -> bool:
        return self._lost is None and not self._transport.is_closing()

    # asyncio.Protocol

    def data_received(self, data: bytes) -> None:
        if self._lost is not None:
            return
        if not self._buffer:  # as replies usually come: whole lines, read straight from `data`
            start = 0
            while (end := data.find(b"\n", start)) != -1:
                if not self._take_line(data[start : end + 1]):
                    return
                start = end + 1
            data = data[start:]
            if not data:
                return
        # Only the new bytes are searched: the buffer before them holds no line end, so a reply
        # dripped a byte or a line at a time costs no more than one sent whole.
        start, search = 0, len(self._buffer)
        self._buffer.extend(data)
        while (end := self._buffer.find(b"\n", search)) != -1:
            line = bytes(self._buffer[start : end + 1])
            start = search = end + 1
            if not self._take_line(line):
                return
        del self._buffer[:start]
        if self._reply_bytes + len(self._buffer) > MAX_REPLY_BYTES:
            self._fail(SessionLost("reply too long"))

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(Closed(f"connection lost: {exc}" if exc else "connection closed"))
        self._can_write.set()

    def pause_writing(self) -> None:
        self._paused = True
        self._can_write.clear()

    def resume_writing(self) -> None:
        self._paused = False
        self._can_write.set()

    # replies

    def _take_line(self, line: bytes) -> bool:
        """Adds one line to the reply being read; False when the session ended over it."""
        if not self._lines and line[3:4] != b"-" and len(line) <= MAX_REPLY_BYTES:  # a one-line reply: most
            if not line[:3].isdigit():
                self._fail(SessionLost(f"malformed reply {line[:80]!r}"))
                return False
            return self._took(ServerReply(int(line[:3]), line[4:].strip().decode("utf-8", "replace")))
        self._lines.append(line)
        self._reply_bytes += len(line)
        if len(self._lines) > MAX_REPLY_LINES or self._reply_bytes > MAX_REPLY_BYTES:
            self._fail(SessionLost("reply too long"))
            return False
        if line[3:4] == b"-":
            return True
        lines, self._lines, self._reply_bytes = self._lines, [], 0
        first = lines[0]
        if not first[:3].isdigit():
            self._fail(SessionLost(f"malformed reply {first[:80]!r}"))
            return False
        text = "\n".join(part[4:].strip().decode("utf-8", "replace") for part in lines)
        return self._took(ServerReply(int(first[:3]), text))

    def _took(self, reply: ServerReply) -> bool:
        """Hands a whole reply to whoever waits for it; False when nobody asked for it."""
        if self._owed == 0:
            self._fail(ProtocolError(f"the server sent a reply nobody asked for: {reply.code} {reply.text[:80]}"))
            return False
        self._owed -= 1
        now = time.monotonic()
        self.waited = max(self.waited, now - self._asked)
        self._asked = now
        if self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(reply)
            return True
        self._early.append(reply)  # at most the replies owed: a few
        group = self._group
        if group is not None and len(self._early) >= self._wanted and not group.done():
            group.set_result(None)
        return True

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
        self._buffer.clear()
        self._lines.clear()
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_exception(exc)
        if self._group is not None and not self._group.done():
            self._group.set_exception(exc)
        self._stop_timer()
        self._transport.close()

    # the timer

    def _arm(self, delay: float, overdue: SessionLost) -> None:
        """The replies now awaited are due within `delay` seconds; past that, `overdue` ends the session."""
        self._due = due = self._loop.time() + delay
        self._overdue = overdue
        if self._timer is None or self._timer_at > due:  # the running timer would fire too late
            self._stop_timer()
            self._timer, self._timer_at = self._loop.call_at(due, self._on_timer), due

    def _on_timer(self) -> None:
        self._timer = None
        if not self._due:
            return  # nothing awaited: the next wait sets a timer again
        if self._loop.time() < self._due:
            self._timer, self._timer_at = self._loop.call_at(self._due, self._on_timer), self._due
            return
        self._cut(self._overdue)

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expect(self) -> asyncio.Future[ServerReply]:
        future: asyncio.Future[ServerReply] = asyncio.get_running_loop().create_future()
        if self._early:
            future.set_result(self._early.popleft())
        elif self._lost is not None:
            future.set_exception(self._lost)
        else:
            self._waiting.append(future)
        return future

    def _put(self, data: bytes, replies: int) -> None:
        """Writes commands that `replies` replies will answer (the caller waits out a full buffer)."""
        if self._lost is not None:
            raise self._lost
        self._owed += replies
        self._asked = time.monotonic()
        self._transport.write(data)

    async def _write(self, data: bytes, replies: int) -> None:
        self._put(data, replies)
        if self._paused:
            await self._drained()

    async def _drained(self) -> None:
        await asyncio.wait_for(self._can_write.wait(), self._timeout)

    async def _replies(self, count: int, deadline: float | None = None) -> list[ServerReply]:
        """The next `count` replies, within the timeout for the lot, and by `deadline` (time.monotonic())."""
        early = self._early
        if len(early) < count:
            if self._lost is not None:
                raise self._lost
            delay = self._timeout
            if deadline is not None and deadline - time.monotonic() < delay:
                self._arm(max(deadline - time.monotonic(), 0.0), TooSlow("the server did not get to DATA in time"))
            else:
                self._arm(delay, SessionLost("the server stopped answering"))
            self._group, self._wanted = self._loop.create_future(), count
            try:
                await self._group
            except asyncio.CancelledError:
                # Replies still on their way would be taken for the next transaction's.
                self._fail(SessionLost("the transaction was cancelled"))
                raise
            finally:
                self._group, self._due = None, 0.0
        return [early.popleft() for _ in range(count)]

    def close(self) -> None:
        self._stop_timer()
        self._transport.close()
