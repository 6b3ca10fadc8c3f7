"""A slow IMAP server on loopback: it logs in, selects and idles like any other, then takes its
time over the one command a look at the mailbox cannot do without (SEARCH).

`mode` (besides tests/hostile_imap.py's): "drip-search" answers SEARCH one byte every
`drip_seconds`, for as long as the client listens (a server within every bound but the look's
whole deadline); "silent-search" never answers it. `searching` counts the connections waiting
on a SEARCH now, `most_searching` the most there ever were at once.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from contextlib import contextmanager

from sendpy.devstack.tls import LocalCertificates
from tests.hostile_imap import HostileImap, _lines

CAPABILITIES = b"IMAP4rev1 AUTH=PLAIN IDLE"


class SlowImap(HostileImap):
    def __init__(self, certs: LocalCertificates, mode: str, *, drip_seconds: float = 0.5) -> None:
        super().__init__(certs, mode, drip_seconds=drip_seconds)
        self.searching = 0
        self.most_searching = 0

    def _converse(self, conn: ssl.SSLSocket) -> None:
        self._send(conn, b"* OK [CAPABILITY " + CAPABILITIES + b"] slow\r\n")
        idle_tag = b""
        for line in _lines(conn):
            if line.upper() == b"DONE":
                self._send(conn, idle_tag + b" OK IDLE done\r\n")
                continue
            tag, _, rest = line.partition(b" ")
            words = rest.split(b" ", 2)
            verb = words[0].upper()
            if verb == b"UID":
                verb = words[1].upper()
            if verb == b"CAPABILITY":
                self._send(conn, b"* CAPABILITY " + CAPABILITIES + b"\r\n" + tag + b" OK done\r\n")
            elif verb in (b"LOGIN", b"AUTHENTICATE"):
                self._send(conn, tag + b" OK logged in\r\n")
            elif verb in (b"SELECT", b"EXAMINE"):
                self._send(conn, b"* 1 EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n* OK [UIDNEXT 2] ok\r\n"
                           + tag + b" OK [READ-ONLY] done\r\n")
            elif verb == b"IDLE":
                idle_tag = tag
                self._send(conn, b"+ idling\r\n")
            elif verb == b"SEARCH":
                return self._slow_search(conn)
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
        try:
            if self.mode == "silent-search":
                self._stop.wait(3600)
                return
            answer = b"* SEARCH" + b" 1" * 1_000_000
            for index in range(len(answer)):
                if self._stop.wait(self.drip_seconds):
                    return
                self._send(conn, answer[index:index + 1])
        finally:
            with self._lock:
                self.searching -= 1


@contextmanager
def slow_imap(certs: LocalCertificates, mode: str, *, drip_seconds: float = 0.5) -> Iterator[SlowImap]:
    server = SlowImap(certs, mode, drip_seconds=drip_seconds)
    server.start()
    try:
        yield server
    finally:
        server.stop()
