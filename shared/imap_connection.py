"""The connection under IMAPClient, bounded in bytes and in time.

imaplib (under IMAPClient) reads whatever a server sends: a `{1073741824}` literal in answer to
LOGIN made the API allocate gigabytes, and a server that drips a byte every few seconds never
trips a socket timeout, so one call could hold its thread for as long as the server liked. Here
every read of the socket goes through `_BoundedSocketIO`, which will not read past the current
command's byte budget or the connection's deadline, and a literal larger than any answer Sendpy
asks for is refused before a byte of it is read.

A look at a mailbox may also be held to a pace (`Pace`): each answer must begin within a few
seconds and keep coming at a modest rate, so a server that sends a few bytes a second — within
every read timeout — gives its look up in seconds, not at the look's whole deadline; and all the
waiting for answers to begin is summed over the connection, so a server that thinks 19 s before
every answer (each within the pace) is given up on once it has kept the look waiting too long.
"""

from __future__ import annotations

import io
import math
import socket
import ssl
import time
from dataclasses import dataclass, field
from typing import Any

from imapclient import tls as imap_tls

MB = 1024 * 1024
# A bounce's report is in its first part; the original message it returns can be anything, up
# to a 50 MB attachment: only this much of any message is asked for (FETCH BODY.PEEK[]<0.n>).
MAX_READ_BYTES = 2 * MB
# The largest literal Sendpy ever asks for is such a partial body: a larger one is an attack.
MAX_LITERAL_BYTES = MAX_READ_BYTES
# All a server may send in answer to one command (the greeting, LOGIN, SELECT, SEARCH, …); a
# FETCH of message bodies is allowed its bodies on top (`Bounds.allow_bytes`).
MAX_ANSWER_BYTES = 4 * MB
# One line of an answer (a SEARCH answer is one line: about 130,000 UIDs to the megabyte).
MAX_LINE_BYTES = 1 * MB


class AnswerTooLarge(Exception):
    """The server sent more than Sendpy accepts in answer to one command."""

    def __init__(self, limit: int) -> None:
        self.megabytes = f"{limit / MB:g}"
        super().__init__(f"the IMAP server sent an answer larger than {self.megabytes} MB")


class CallTimedOut(TimeoutError):
    """The call took longer than its deadline, however steadily the server kept sending."""


class Stalled(CallTimedOut):
    """The answers of one connection, taken together, took longer than `Pace.wait` to begin."""

    def __init__(self, waited: float, answers: int) -> None:
        self.waited, self.answers = waited, answers
        super().__init__(f"the IMAP server kept its {answers} answers waiting {waited:.0f} s in all")


class TooSlow(CallTimedOut):
    """An answer fell behind its `Pace`: `received` bytes of it in `seconds`."""

    def __init__(self, received: int, seconds: float) -> None:
        self.received, self.seconds = received, seconds
        super().__init__(f"the IMAP server sent {received} bytes in {seconds:.0f} s")


@dataclass(frozen=True)
class Pace:
    """How fast answers must come: the first `stall` seconds are free (a server may think before
    it answers), then `rate` bytes a second on average, counted from the command; and all the
    connection's answers together may take `wait` seconds to begin (the greeting's counted from
    the connect)."""

    stall: float
    rate: float
    wait: float = math.inf

    def seconds_for(self, received: int) -> float:
        """How long an answer of which `received` bytes have come may have taken so far."""
        return self.stall + received / self.rate


@dataclass
class Bounds:
    """What one connection may still read: `deadline` (time.monotonic()) for the current call,
    `budget` bytes for the current command's answer, of which `spent` are read."""

    deadline: float
    read_timeout: float  # the longest wait for one read, as before
    budget: int = MAX_ANSWER_BYTES
    spent: int = 0
    broken: bool = False  # a bound was hit: what the server sends next is not to be trusted
    pace: Pace | None = None
    began: float = field(default_factory=time.monotonic)  # when the current command was sent
    waited: float = 0.0  # seconds the answers so far took to begin, summed
    answers: int = 0  # answers begun
    awaiting: bool = True  # the current answer (at first the greeting) has not begun

    def allow_bytes(self, extra: int) -> None:
        """The next answers may be `extra` bytes larger than an ordinary one."""
        self.budget = MAX_ANSWER_BYTES + extra

    def allow_seconds(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds
        self.began = time.monotonic()

    def heard(self) -> None:
        """The current answer's first bytes came."""
        if self.awaiting:
            self.awaiting = False
            self.waited += time.monotonic() - self.began
            self.answers += 1

    def _stalled(self) -> float:
        """When waiting for the current answer to begin uses up the pace's `wait`; inf if never."""
        if self.pace is None or not self.awaiting:
            return math.inf
        return self.began + self.pace.wait - self.waited

    def _behind(self) -> float:
        """When the current answer falls behind its pace (time.monotonic()); inf without one."""
        return self.began + self.pace.seconds_for(self.spent) if self.pace is not None else float("inf")

    def remaining(self) -> float:
        """Seconds the next read may wait; raises when the deadline or the pace is already past."""
        now = time.monotonic()
        until = min(self.deadline, self._behind(), self._stalled())
        if until <= now:
            self.overrun()
        return until - now

    def overrun(self) -> None:
        """Raise what the nearest of the deadline and the pace calls for (a read waited it out)."""
        self.broken = True
        if self._stalled() <= min(self._behind(), self.deadline):
            self.waited += time.monotonic() - self.began
            self.awaiting = False
            raise Stalled(self.waited, self.answers + 1)
        if self._behind() < self.deadline:
            raise TooSlow(self.spent, time.monotonic() - self.began)
        raise CallTimedOut("the IMAP server took too long to answer")


class _BoundedSocketIO(socket.SocketIO):
    """The raw reader under imaplib's buffered file: each read stops at the budget and waits at
    most until the deadline, so neither a flood nor a drip gets past them."""

    def __init__(self, sock: socket.socket, bounds: Bounds) -> None:
        super().__init__(sock, "rb")
        self._bounds = bounds
        self._tcp = sock

    def readinto(self, buffer: Any) -> int | None:
        bounds = self._bounds
        if bounds.broken:
            raise ConnectionAbortedError("the IMAP connection was given up")
        left = bounds.budget - bounds.spent
        if left <= 0:
            bounds.broken = True
            raise AnswerTooLarge(bounds.budget)
        # 0.0 is IMAPClient's idle_check reading without waiting: nothing to bound in time there.
        wait = None
        if self._tcp.gettimeout() != 0.0:
            wait = bounds.remaining()
            self._tcp.settimeout(min(bounds.read_timeout, wait))
        try:
            with memoryview(buffer) as view:
                read = super().readinto(view[:left])
        except TimeoutError:
            if wait is not None and wait < bounds.read_timeout:  # the deadline or the pace ran out, not the read
                bounds.overrun()
            raise
        if read:
            bounds.spent += read
            if wait is not None:
                bounds.heard()
        return read


class BoundedImap(imap_tls.IMAP4_TLS):  # type: ignore[misc]
    """imaplib over TLS to one checked address, every read bounded by `bounds`."""

    def __init__(self, host: str, port: int, address: str, context: ssl.SSLContext, bounds: Bounds) -> None:
        self.bounds = bounds
        self._address = address
        super().__init__(host, port, context, bounds.read_timeout)

    def _create_socket(self, timeout: float | None = None) -> socket.socket:
        wait = min(self.bounds.read_timeout, self.bounds.remaining())
        sock = socket.create_connection((self._address, self.port), timeout=wait)
        try:
            return self.ssl_context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[no-any-return]
        except BaseException:
            sock.close()
            raise

    def open(self, host: str = "", port: int = 993, timeout: float | None = None) -> None:
        self.host, self.port = host, port
        self.sock = self._create_socket(timeout)
        self.file = io.BufferedReader(_BoundedSocketIO(self.sock, self.bounds))

    def readline(self) -> bytes:
        # imaplib's own limit (1,000,000 bytes a line) read «answered unexpectedly: command:
        # SEARCH => got more than 1000000 bytes»; this one says the answer was too large.
        line: bytes = self.file.readline(MAX_LINE_BYTES + 1)
        if len(line) > MAX_LINE_BYTES:
            self.bounds.broken = True
            raise AnswerTooLarge(MAX_LINE_BYTES)
        return line

    def read(self, size: int) -> bytes:
        if size > MAX_LITERAL_BYTES:  # refused before reading any of it
            self.bounds.broken = True
            raise AnswerTooLarge(MAX_LITERAL_BYTES)
        return super().read(size)  # type: ignore[no-any-return]

    def _new_tag(self) -> bytes:
        # Every command (imaplib's and IMAPClient's own) takes a new tag: its answer gets a budget
        # of its own.
        self.bounds.spent = 0
        self.bounds.began = time.monotonic()
        self.bounds.awaiting = True
        return super()._new_tag()  # type: ignore[no-any-return]
