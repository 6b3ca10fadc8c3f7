"""A hostile IMAP server on loopback, for the tests of Sendpy's bounds on what a server may do.

Implicit TLS with the local CA's certificate (as Dovecot's), one thread per connection. `mode`:

- "drip": the greeting is sent one byte every `drip_seconds`, for as long as the client listens;
- "literal": a proper greeting and CAPABILITY, then LOGIN is answered with a `literal_size`
  literal sent as fast as the client reads it;
- "fetch": log-in, SELECT and SEARCH answered properly (one message), then the FETCH of its body
  is a `literal_size` literal;
- "drip-search": log-in, SELECT and IDLE like any server, then SEARCH — the one command a look at
  the mailbox cannot do without — answered one byte every `drip_seconds` for as long as the
  client listens (within every bound but the look's whole deadline);
- "silent-search": the same, but SEARCH is never answered;
- "drip-fetch": SEARCH answered at once (one message), then the FETCH of its body dripped one byte
  every `drip_seconds` (a server that sends a few bytes a second, always inside the read timeout);
- "huge-search": SEARCH answered at once with one line of `literal_size` bytes;
- "mail": an ordinary server with one ordinary message (UID 1), its FETCH answered in full.

`delay` (any conversing mode): the server thinks that long before every answer, the greeting
included, then answers at once (issue 11: 19 s each, always inside the pace); `idle=False` leaves
IDLE out of its capabilities, so its mailboxes are polled.

`sent` counts the bytes sent (TLS payload), `open_connections` the connections the client has not
closed yet, `searching` the connections waiting on a SEARCH now, `most_searching` the most there
ever were at once; `fetching` and `most_fetching` the same for a dripped FETCH, `dripping` and
`most_dripping` for either, `slow_answers` how many slow answers were begun in all; `thinking`
the connections waiting out a `delay` now, `most_thinking` the most at once, `selects` when each
SELECT/EXAMINE came (time.monotonic()).
"""

from __future__ import annotations

import select
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sendpy.devstack.tls import LocalCertificates

CHUNK = b"x" * 65536


class HostileImap:
    def __init__(self, certs: LocalCertificates, mode: str, *, drip_seconds: float = 0.5,
                 literal_size: int = 64 * 1024 * 1024, delay: float = 0.0, idle: bool = True) -> None:
        self.context = certs.server_context()
        self.mode = mode
        self.delay = delay
        self.capabilities = b"IMAP4rev1 AUTH=PLAIN" + (b" IDLE" if idle else b"")
        self.thinking = 0
        self.most_thinking = 0
        self.selects: list[float] = []
        self.drip_seconds = drip_seconds
        self.literal_size = literal_size
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.port: int = self.listener.getsockname()[1]
        self.sent = 0
        self.accepted = 0
        self.open_connections = 0
        self.logins: list[bytes] = []  # every LOGIN command line received, password included
        self.searching = 0
        self.most_searching = 0
        self.fetching = 0
        self.most_fetching = 0
        self.dripping = 0
        self.most_dripping = 0
        self.slow_answers = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                raw, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _send(self, conn: ssl.SSLSocket, data: bytes) -> None:
        if self.delay and not self._think(conn):
            raise ConnectionAbortedError("the client gave up")
        conn.sendall(data)
        with self._lock:
            self.sent += len(data)

    def _serve(self, raw: socket.socket) -> None:
        with self._lock:
            self.accepted += 1
            self.open_connections += 1
        try:
            raw.settimeout(30)
            with self.context.wrap_socket(raw, server_side=True) as conn:
                if self.mode == "drip":
                    self._drip(conn)
                else:
                    self._converse(conn)
        except OSError:
            pass  # the client gave up: what these tests want
        finally:
            with self._lock:
                self.open_connections -= 1

    def _think(self, conn: ssl.SSLSocket) -> bool:
        """Wait `delay` before an answer; False when the client closed or spoke meanwhile."""
        with self._lock:
            self.thinking += 1
            self.most_thinking = max(self.most_thinking, self.thinking)
        try:
            readable, _, _ = select.select([conn], [], [], self.delay)
            return not readable and not self._stop.is_set()
        finally:
            with self._lock:
                self.thinking -= 1

    def _drip(self, conn: ssl.SSLSocket) -> None:
        greeting = b"* OK " + b"still coming " * 100_000
        for index in range(len(greeting)):
            if self._stop.wait(self.drip_seconds):
                return
            self._send(conn, greeting[index:index + 1])

    def _flood(self, conn: ssl.SSLSocket, head: bytes) -> None:
        self._send(conn, head + b" {%d}\r\n" % self.literal_size)
        left = self.literal_size
        while left > 0 and not self._stop.is_set():
            piece = CHUNK[:left]
            self._send(conn, piece)
            left -= len(piece)
        self._stop.wait(60)  # then silence: the rest of the answer never comes

    def _converse(self, conn: ssl.SSLSocket) -> None:
        self._send(conn, b"* OK [CAPABILITY " + self.capabilities + b"] hostile\r\n")
        idle_tag = b""
        for line in _lines(conn):
            if line.upper() == b"DONE":
                self._send(conn, idle_tag + b" OK IDLE done\r\n")
                continue
            tag, _, rest = line.partition(b" ")
            command = rest.split(b" ", 2)
            verb = command[0].upper()
            if verb == b"UID":
                verb = b"UID " + command[1].upper()
            if verb == b"LOGIN":
                self.logins.append(line)
            if verb == b"CAPABILITY":
                self._send(conn, b"* CAPABILITY " + self.capabilities + b"\r\n" + tag + b" OK done\r\n")
            elif verb == b"LOGIN" and self.mode == "literal":
                return self._flood(conn, b"* OK [ALERT]")
            elif verb in (b"LOGIN", b"AUTHENTICATE"):
                self._send(conn, tag + b" OK logged in\r\n")
            elif verb in (b"SELECT", b"EXAMINE"):
                with self._lock:
                    self.selects.append(time.monotonic())
                self._send(conn, b"* 1 EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n* OK [UIDNEXT 2] ok\r\n"
                           + tag + b" OK [READ-ONLY] done\r\n")
            elif verb == b"IDLE":
                idle_tag = tag
                self._send(conn, b"+ idling\r\n")
            elif verb in (b"SEARCH", b"UID SEARCH") and self.mode in ("drip-search", "silent-search"):
                return self._slow_search(conn)
            elif verb in (b"SEARCH", b"UID SEARCH") and self.mode == "huge-search":
                self._send(conn, b"* SEARCH" + b" 1" * (self.literal_size // 2) + b"\r\n" + tag + b" OK done\r\n")
            elif verb in (b"SEARCH", b"UID SEARCH"):
                self._send(conn, b"* SEARCH 1\r\n" + tag + b" OK done\r\n")
            elif verb == b"UID FETCH" and self.mode == "mail":
                body = b"From: someone@example.com\r\nSubject: hello\r\n\r\nHello\r\n"
                self._send(conn, b"* 1 FETCH (UID 1 BODY[]<0> {%d}\r\n" % len(body) + body + b")\r\n"
                           + tag + b" OK done\r\n")
            elif verb == b"UID FETCH" and self.mode == "drip-fetch":
                return self._slow_fetch(conn)
            elif verb == b"UID FETCH":
                return self._flood(conn, b"* 1 FETCH (UID 1 BODY[]<0>")
            elif verb == b"LOGOUT":
                self._send(conn, b"* BYE bye\r\n" + tag + b" OK done\r\n")
                return None
            else:
                self._send(conn, tag + b" BAD unknown\r\n")
        return None

    def _slow_search(self, conn: ssl.SSLSocket) -> None:
        with self._lock:
            self.searching += 1
            self.most_searching = max(self.most_searching, self.searching)
            self._begin_slow()
        try:
            if self.mode == "silent-search":
                self._stop.wait(3600)
                return
            self._drip_answer(conn, b"* SEARCH" + b" 1" * 1_000_000)
        finally:
            with self._lock:
                self.searching -= 1
                self.dripping -= 1

    def _slow_fetch(self, conn: ssl.SSLSocket) -> None:
        with self._lock:
            self.fetching += 1
            self.most_fetching = max(self.most_fetching, self.fetching)
            self._begin_slow()
        try:
            body = b"Subject: slow\r\n\r\n" + b"x" * 100_000
            self._drip_answer(conn, b"* 1 FETCH (UID 1 BODY[]<0> {%d}\r\n" % len(body) + body)
        finally:
            with self._lock:
                self.fetching -= 1
                self.dripping -= 1

    def _drip_answer(self, conn: ssl.SSLSocket, answer: bytes) -> None:
        """One byte every drip_seconds, until the client gives up: anything it sends (LOGOUT) or
        its close ends the drip at once, so `dripping` counts only the looks still waiting."""
        for index in range(len(answer)):
            readable, _, _ = select.select([conn], [], [], self.drip_seconds)
            if readable or self._stop.is_set():
                return
            self._send(conn, answer[index:index + 1])

    def _begin_slow(self) -> None:  # under the lock
        self.slow_answers += 1
        self.dripping += 1
        self.most_dripping = max(self.most_dripping, self.dripping)


def _lines(conn: ssl.SSLSocket) -> Iterator[bytes]:
    buffered = b""
    while True:
        data = conn.recv(65536)
        if not data:
            return
        buffered += data
        while b"\r\n" in buffered:
            line, buffered = buffered.split(b"\r\n", 1)
            yield line


@contextmanager
def hostile_imap(certs: LocalCertificates, mode: str, *, drip_seconds: float = 0.5,
                 literal_size: int = 64 * 1024 * 1024, delay: float = 0.0, idle: bool = True) -> Iterator[HostileImap]:
    server = HostileImap(certs, mode, drip_seconds=drip_seconds, literal_size=literal_size, delay=delay, idle=idle)
    server.start()
    try:
        yield server
    finally:
        server.stop()
