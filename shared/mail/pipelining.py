"""SMTP transactions with PIPELINING (RFC 2920) on a connection aiosmtplib has set up.

aiosmtplib connects, verifies TLS and logs in; it does not pipeline (three round trips before each
body). This protocol then takes over the transport: MAIL FROM, RCPT TO and DATA in one write, their
replies read in order, then the body; without PIPELINING the same commands go one at a time.

Everything before the server's "354" may be given a deadline: cutting the connection there is
safe, since no message was handed over. From "354" on only the per-reply timeout applies, since
a cut after the final dot could turn an accepted message into a duplicate.

Replies are matched to commands in order, and only as many are taken as commands were written: a
reply nobody asked for, or a positive reply other than the one a command needs (250 where DATA
wants 354), ends the session (ProtocolError). A message counts as sent only on a 2xx to its final
dot, read after the body was written.

Per message this is the hot path of a sender worker: one wait per group of replies, one timer per
session (moved only when a wait must end sooner), and one write per message on a busy connection.
Two sends may share a session: the second waits its turn, and its MAIL, RCPT and DATA go out in
the first's body write (RFC 2920, section 4). Replies are taken strictly in order; the second's
deadline counts from its turn, so it never cuts the connection while the first's final reply is
owed. A connection closed after such a write sends both again; silence leaves the first Unconfirmed.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Collection
from typing import NamedTuple

MAX_REPLY_BYTES = 64 * 1024
MAX_REPLY_LINES = 1000  # no reply to MAIL, RCPT, DATA, RSET or QUIT needs more
_NAMES = ("MAIL", "RCPT", "DATA")
_WANTED = ((250,), (250, 251), (354,))  # what MAIL, RCPT and DATA must answer to go on
CROSS_TRANSACTION = True  # sends may share a session (benchmarks/render.py measures older code too)


class SessionLost(ConnectionError):
    """The connection closed or stopped answering; nothing more can be sent on it."""


class ProtocolError(SessionLost):
    """The server answered out of turn, or with a reply that fits no command: what it did with
    the message is unknown, so the connection is cut and nothing counts as sent."""


class Unconfirmed(SessionLost):
    """The whole message went out and the server stayed silent past the timeout: it may well have
    taken it (a slow server got three copies when this was retried), so it is not sent again."""


class Closed(SessionLost):
    """The server closed or reset the connection without answering: what it did not confirm is sent again."""


class Held(Exception):
    """A send that waited for the session may not go out now (its `go` said no): nothing was handed
    over; if its commands were already out, the connection was cut before its body."""


class TooSlow(SessionLost):
    """The server had not reached DATA by the transaction's deadline: the connection was cut
    before the message was handed over."""


class _Turn:
    """A send waiting for the session: its commands, and whether they went out with the body before it."""

    __slots__ = ("commands", "future", "go", "written")

    def __init__(self, commands: bytes | None, future: asyncio.Future[None], go: Callable[[], bool] | None) -> None:
        self.commands = commands  # None: not to be pipelined (the server does not offer it)
        self.future = future  # done when the session is this send's
        self.go = go  # whether it may still go out
        self.written = False


class ServerReply(NamedTuple):  # a tuple: four of them per message, built a third faster than a dataclass
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
        self._busy = False  # a send holds the session
        self._turns: deque[_Turn] = deque()  # sends waiting for it, in order
        transport.set_protocol(self)

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

    # commands

    async def send(
        self, sender: str, recipient: str, message: bytes, *, smtputf8: bool = False, deadline: float | None = None,
        go: Callable[[], bool] | None = None,
    ) -> tuple[str, ServerReply]:
        """One message; returns (stage, reply) where stage is "mail", "rcpt" or "data".

        `smtputf8` declares non-ASCII addresses (RFC 6531). A refusal at any stage leaves the
        session clean (RSET) for the next message. Raises TooSlow when the server has not
        answered DATA with 354 by `deadline` (time.monotonic()), SessionLost when it goes away
        (ProtocolError when it answers out of turn: nothing was sent). A send waiting behind
        another asks `go` before its commands or its body go out (Held when it says no).
        """
        option = " SMTPUTF8" if smtputf8 else ""
        commands = f"MAIL FROM:<{sender}>{option}\r\nRCPT TO:<{recipient}>\r\nDATA\r\n".encode()
        written = False
        if self._busy:
            turn = _Turn(commands if self.pipelining else None, self._loop.create_future(), go)
            self._turns.append(turn)
            left = None if deadline is None else deadline - time.monotonic()
            try:
                await turn.future
            except asyncio.CancelledError:
                handed = turn.future.done() and not turn.future.cancelled()
                if turn.written or handed:  # its commands are out: their replies would be taken for another's
                    self._fail(SessionLost("the transaction was cancelled"))
                if handed:
                    self._hand_over()
                else:
                    self._turns.remove(turn)
                raise
            written = turn.written
            if go is not None and not written and not go():
                self._hand_over()
                raise Held("held back before its commands")
            deadline = None if left is None else time.monotonic() + left  # the wait was not its server's slowness
        else:
            self._busy = True
        try:
            return await self._transaction(commands, message, written, deadline, go)
        finally:
            self._hand_over()

    def _hand_over(self) -> None:  # to the next send waiting, if any
        while self._turns:
            turn = self._turns.popleft()
            if not turn.future.done():
                turn.future.set_result(None)
                return
        self._busy = False

    async def _transaction(self, commands: bytes, message: bytes, written: bool, deadline: float | None,
                           go: Callable[[], bool] | None) -> tuple[str, ServerReply]:
        self.waited = 0.0
        if self.pipelining:
            if not written:
                self._put(commands, 3)
                if self._paused:
                    await self._drained()
            mail, rcpt, data = await self._replies(3, deadline)
            if mail.code != 250 or rcpt.code not in (250, 251) or data.code != 354:
                for name, reply, wanted in zip(_NAMES, (mail, rcpt, data), _WANTED, strict=True):
                    self._check(name, reply, wanted)
        else:
            mail, rcpt, data = await self._one_by_one(commands.split(b"\r\n")[:3], deadline)
        if data.code == 354 and (mail.code != 250 or rcpt.code not in (250, 251)):
            await self._write(b".\r\n", 1)  # the server opened DATA anyway: close it empty
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
        if written and go is not None and not go():
            # Its commands are out but it may not go: cut (safe) where an empty "." would send a message.
            self._fail(SessionLost("a message held back after its DATA"))
            raise Held("held back after its DATA")
        body = dot_stuff(message)
        turn = self._turns[0] if self._turns else None
        if turn is not None and turn.commands is not None and (turn.go is None or turn.go()):
            # The next send's commands ride with this body: one write for the two.
            turn.written = True
            await self._write(body + turn.commands, 4)
        else:
            await self._write(body, 1)
        try:
            (final,) = await self._replies(1)
        except SessionLost as exc:
            if isinstance(exc, (ProtocolError, Closed)):  # a server reading 300 bytes of it, then a reset:
                raise  # it never took the message (the attack on issue 13), so it goes again
            raise Unconfirmed(str(exc)) from None
        self._check("the end of DATA", final, range(200, 300))  # only a 2xx here means "sent"
        return "data", final

    async def _one_by_one(self, commands: list[bytes], deadline: float | None) -> list[ServerReply]:
        """Each command after the reply to the one before; stops at the first refusal."""
        replies: list[ServerReply] = []
        for name, command, wanted in zip(_NAMES, commands, _WANTED, strict=True):
            await self._write(command + b"\r\n", 1)
            (reply,) = await self._replies(1, deadline)
            self._check(name, reply, wanted)
            replies.append(reply)
            if reply.code not in wanted:
                break
        not_reached = ServerReply(503, "not sent")  # after a refusal; never what send() returns
        return replies + [not_reached] * (3 - len(replies))

    def _check(self, command: str, reply: ServerReply, wanted: Collection[int]) -> None:
        """A refusal (4xx, 5xx) is an answer; any other reply than the one wanted is not: a 250
        where DATA wants 354 could be a flood's, and taking it would count a message as sent
        that the server never received."""
        if reply.code in wanted or 400 <= reply.code < 600:
            return
        exc = ProtocolError(f"the server answered {command} with {reply.code} {reply.text[:80]}".strip())
        self._fail(exc)
        raise exc

    async def reset(self) -> None:
        await self._write(b"RSET\r\n", 1)
        await self._replies(1)

    async def quit(self) -> None:
        try:
            await self._write(b"QUIT\r\n", 1)
            await self._replies(1)
        except (SessionLost, OSError):
            pass
        finally:
            self.close()

    def close(self) -> None:
        self._stop_timer()
        self._transport.close()
