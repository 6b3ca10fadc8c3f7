"""SMTP transactions with PIPELINING (RFC 2920) on a connection aiosmtplib has set up.

aiosmtplib connects, verifies TLS and logs in; it does not pipeline (three round trips before each
body). This protocol then takes over the transport: MAIL FROM, RCPT TO and DATA in one write, their
replies read in order (smtp_replies.py), then the body; without PIPELINING the same commands go one
at a time.

Everything before the server's "354" may be given a deadline: cutting the connection there is
safe, since no message was handed over. From "354" on only the per-reply timeout applies, since
a cut after the final dot could turn an accepted message into a duplicate.

A positive reply other than the one a command needs (250 where DATA wants 354) ends the session
(ProtocolError). A message counts as sent only on a 2xx to its final dot, read after the body was
written. Once the body is out, only a closed connection sends it again: silence, or an answer that
is none (354 again, garbage), leaves it Unconfirmed — the server got all of it and may have taken it.

Two sends may share a session: the second waits its turn, and its MAIL, RCPT and DATA go out in
the first's body write (RFC 2920, section 4): one write per message on a busy connection. Replies
are taken strictly in order; the second's deadline counts from its turn, so it never cuts the
connection while the first's final reply is owed. A connection closed after such a write sends
both again; silence leaves the first Unconfirmed.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Collection

from shared.mail.smtp_replies import Closed, ProtocolError, ReplyReader, ServerReply, SessionLost, TooSlow

__all__ = ["Closed", "Held", "PipelinedSession", "ProtocolError", "ServerReply", "SessionLost", "TooSlow",
           "Unconfirmed", "dot_stuff"]

_NAMES = ("MAIL", "RCPT", "DATA")
_WANTED = ((250,), (250, 251), (354,))  # what MAIL, RCPT and DATA must answer to go on
CROSS_TRANSACTION = True  # sends may share a session (benchmarks/render.py measures older code too)


class Unconfirmed(SessionLost):
    """The whole message went out and the server stayed silent past the timeout, or answered its
    final dot with something that is no answer: it may well have taken it (a slow server got three
    copies when this was retried), so it is not sent again."""


class Held(Exception):
    """A send that waited for the session may not go out now (its `go` said no): nothing was handed
    over; if its commands were already out, the connection was cut before its body."""


class _Turn:
    """A send waiting for the session: its commands, and whether they went out with the body before it."""

    __slots__ = ("commands", "future", "go", "written")

    def __init__(self, commands: bytes | None, future: asyncio.Future[None], go: Callable[[], bool] | None) -> None:
        self.commands = commands  # None: not to be pipelined (the server does not offer it)
        self.future = future  # done when the session is this send's
        self.go = go  # whether it may still go out
        self.written = False


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


class PipelinedSession(ReplyReader):
    def __init__(self, transport: asyncio.Transport, timeout: float, *, pipelining: bool = True) -> None:
        super().__init__(transport, timeout)
        self.pipelining = pipelining
        self._busy = False  # a send holds the session
        self._turns: deque[_Turn] = deque()  # sends waiting for it, in order
        transport.set_protocol(self)

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
            self._check("the end of DATA", final, range(200, 300))  # only a 2xx here means "sent"
        except SessionLost as exc:
            if isinstance(exc, Closed):  # a server reading 300 bytes of it, then a reset: it never
                raise  # took the message (the attack on issue 13), so it goes again
            # Silence, or an answer that is none (354 again, garbage): the body went out whole and
            # may have been taken; sending it again gave three copies.
            raise Unconfirmed(str(exc)) from None
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
