"""The connection under IMAPClient, bounded in bytes and in time.

imaplib (under IMAPClient) reads whatever a server sends: a `{1073741824}` literal in answer to
LOGIN made the API allocate gigabytes, and a server that drips a byte every few seconds never
trips a socket timeout, so one call could hold its thread for as long as the server liked. Here
every read of the socket goes through `_BoundedSocketIO`, which will not read past the current
command's byte budget or the connection's deadline, and a literal larger than any answer Sendpy
asks for is refused before a byte of it is read.
"""

from __future__ import annotations

import io
import socket
import ssl
import time
from dataclasses import dataclass
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


@dataclass
class Bounds:
    """What one connection may still read: `deadline` (time.monotonic()) for the current call,
    `budget` bytes for the current command's answer, of which `spent` are read."""

    deadline: float
    read_timeout: float  # the longest wait for one read, as before
    budget: int = MAX_ANSWER_BYTES
    spent: int = 0
    broken: bool = False  # a bound was hit: what the server sends next is not to be trusted

    def allow_bytes(self, extra: int) -> None:
        """The next answers may be `extra` bytes larger than an ordinary one."""
        self.budget = MAX_ANSWER_BYTES + extra

    def allow_seconds(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds

    def remaining(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            self.broken = True
            raise CallTimedOut("the IMAP server took too long to answer")
        return left


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
        if self._tcp.gettimeout() != 0.0:
            self._tcp.settimeout(min(bounds.read_timeout, bounds.remaining()))
        with memoryview(buffer) as view:
            read = super().readinto(view[:left])
        if read:
            bounds.spent += read
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
        return super()._new_tag()  # type: ignore[no-any-return]
