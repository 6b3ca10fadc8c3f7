"""An SMTP server that keeps what it receives, for development and tests (aiosmtpd).

It offers STARTTLS (and optionally implicit TLS on a second port) with the local CA's
certificate, accepts AUTH, and can be told to misbehave: answer 4xx/5xx to some messages or
recipients, answer slowly, or refuse passwords. In memory (tests) it also keeps every RCPT and
DATA it answered, accepted or not, and numbers the connections that carried them.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import mailbox
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from weakref import WeakKeyDictionary

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from sendpy.devstack.bounce_mail import BounceMailboxes
from sendpy.devstack.imap import DovecotServer
from sendpy.devstack.ports import free_port
from sendpy.devstack.tls import LocalCertificates, ensure_certificates


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    at: float
    username: str | None
    connection: int = 0  # which connection carried it: 1, 2, … in the order of their first RCPT

    def parsed(self) -> EmailMessage:
        message = message_from_bytes(self.data, policy=policy.default)
        assert isinstance(message, EmailMessage)
        return message


@dataclass(frozen=True)
class Attempt:
    """One RCPT or DATA the sink answered, whatever the answer (kept in memory, for tests)."""

    at: float
    stage: str  # "rcpt" or "data"
    mail_from: str
    rcpt_tos: tuple[str, ...]  # the recipient of a RCPT; the accepted recipients of a DATA
    reply: str
    connection: int

    @property
    def accepted(self) -> bool:
        return self.reply.startswith("250")


@dataclass
class Faults:
    """How the sink misbehaves; change the fields at any time, they apply to the next command."""

    mail_reply: Callable[[str], str | None] | None = None  # e.g. "553 5.7.1 sender not owned"
    data_reply: Callable[[Envelope], str | None] | None = None  # e.g. "451 4.3.0 try later"
    rcpt_reply: Callable[[str], str | None] | None = None  # e.g. "550 5.1.1 no such user"
    rejected_passwords: set[str] = field(default_factory=set)
    random_451_rate: float = 0.0
    rng: random.Random | None = None  # draws random_451_rate (default: the `random` module); seed it to replay
    data_delay: Callable[[Envelope], float] | None = None  # seconds to wait before answering DATA


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_EHLO(self, server: SMTP, session: Session, envelope: Envelope, hostname: str,
                          responses: list[str]) -> list[str]:
        # aiosmtpd reads commands one line at a time, so pipelined clients work; say so, as
        # Gmail, Yandex and Postfix do.
        session.host_name = hostname
        if self.sink.pipelining:
            responses.insert(-1, "250-PIPELINING")
        if not self.sink.smtputf8:
            responses = [r for r in responses if "SMTPUTF8" not in r]
            responses[-1] = responses[-1].replace("250-", "250 ", 1)
        return responses

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          mail_options: list[str]) -> str:
        rule = self.sink.faults.mail_reply
        answer = rule(address) if rule else None
        if answer:
            return answer
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        rule = self.sink.faults.rcpt_reply
        answer = rule(address) if rule else None
        if not answer:
            envelope.rcpt_tos.append(address)
        self.sink.note(Attempt(time.time(), "rcpt", str(envelope.mail_from), (address,), answer or "250 OK",
                               self.sink.connection_of(session)))
        return answer or "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        faults = self.sink.faults
        delay = faults.data_delay(envelope) if faults.data_delay else 0.0
        if delay > 0:
            await asyncio.sleep(delay)  # this connection only: the others keep being served
        connection = self.sink.connection_of(session)
        answer = faults.data_reply(envelope) if faults.data_reply else None
        if not answer and faults.random_451_rate and (faults.rng or random).random() < faults.random_451_rate:
            answer = "451 4.3.0 Temporary failure, try again"
        if answer:
            self.sink.note(Attempt(time.time(), "data", str(envelope.mail_from), tuple(envelope.rcpt_tos), answer,
                                   connection))
            return answer
        content = envelope.original_content or b""
        if isinstance(content, str):
            content = content.encode()
        login = session.auth_data.login if isinstance(session.auth_data, LoginPassword) else None
        received = Received(
            str(envelope.mail_from), tuple(envelope.rcpt_tos), content, time.time(),
            login.decode() if isinstance(login, bytes) else login, connection,
        )
        self.sink.store(received)
        bounces = self.sink.bounces
        if bounces is not None and isinstance(session.auth_data, LoginPassword) and received.username:
            password = session.auth_data.password.decode(errors="replace")
            try:
                await asyncio.to_thread(bounces.deliver, received.username, password, received.mail_from,
                                        received.rcpt_tos, content)
            except Exception:  # the sink's own mail must not fail because the local IMAP server did
                logging.getLogger("sendpy.sink").warning("could not deliver a bounce", exc_info=True)
        reply = "250 2.0.0 Ok: queued"
        self.sink.note(Attempt(received.at, "data", received.mail_from, received.rcpt_tos, reply, connection))
        return reply


class SmtpSink:
    """Listens on 127.0.0.1: `port` (plain + STARTTLS) and, with certificates, `tls_port`.

    Mail goes to `maildir` when given (the dev stack), else to the in-memory `messages` (tests),
    and then every RCPT and DATA answered is also logged in `attempts`.
    """

    def __init__(self, certs: LocalCertificates | None = None, *, maildir: Path | None = None,
                 port: int | None = None, tls_port: int | None = None, require_auth: bool = False) -> None:
        self.certs = certs
        self.port = port or free_port()
        self.tls_port = (tls_port or free_port()) if certs else None
        self.faults = Faults()
        self.pipelining = True
        self.smtputf8 = True
        self.messages: list[Received] = []
        self.attempts: list[Attempt] = []
        self._lock = threading.Lock()
        # A session lives as long as its connection (STARTTLS starts a new one before any mail).
        self._connections: WeakKeyDictionary[Session, int] = WeakKeyDictionary()
        self._connection_count = 0
        self._maildir = mailbox.Maildir(str(maildir), create=True) if maildir else None
        self._require_auth = require_auth
        self.bounces: BounceMailboxes | None = None  # mail to @bounce.example.net bounces into Dovecot
        self._controllers: list[Controller] = []

    def _authenticate(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                      auth_data: Any) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            password = auth_data.password.decode(errors="replace")
            if password in self.faults.rejected_passwords:
                return AuthResult(success=False, handled=False)
            return AuthResult(success=True, auth_data=auth_data)
        return AuthResult(success=False, handled=False)

    def store(self, received: Received) -> None:
        with self._lock:
            if self._maildir is not None:
                self._maildir.add(received.data)
            else:
                self.messages.append(received)

    def note(self, attempt: Attempt) -> None:
        if self._maildir is None:  # the dev stack runs for days: keep no log there
            with self._lock:
                self.attempts.append(attempt)

    def connection_of(self, session: Session) -> int:
        """The number of the connection `session` belongs to, given at its first use."""
        with self._lock:
            number = self._connections.get(session)
            if number is None:
                self._connection_count += 1
                number = self._connections[session] = self._connection_count
            return number

    def clear(self) -> None:
        with self._lock:
            self.messages.clear()
            self.attempts.clear()

    def start(self) -> None:
        handler = _Handler(self)
        common: dict[str, Any] = {
            "hostname": "127.0.0.1",
            "authenticator": self._authenticate,
            "auth_required": self._require_auth,
            "auth_require_tls": True,
            "data_size_limit": 50 * 1024 * 1024,
            "ready_timeout": 10,
        }
        plain = Controller(handler, port=self.port,
                           tls_context=self.certs.server_context() if self.certs else None, **common)
        self._controllers = [plain]
        if self.certs and self.tls_port:
            # aiosmtpd only knows about STARTTLS when deciding whether AUTH is safe; this port is
            # TLS from the first byte.
            implicit = {**common, "auth_require_tls": False}
            self._controllers.append(
                Controller(handler, port=self.tls_port, ssl_context=self.certs.server_context(), **implicit)
            )
        for controller in self._controllers:
            controller.start()

    def stop(self) -> None:
        for controller in self._controllers:
            controller.stop()
        self._controllers = []


def main() -> None:
    parser = argparse.ArgumentParser(description="Sendpy's local SMTP sink")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--tls-port", type=int, default=0)
    parser.add_argument("--certs", type=Path, required=True)
    parser.add_argument("--maildir", type=Path, required=True)
    parser.add_argument("--dovecot-dir", type=Path, help="the local Dovecot's data folder, for bounces")
    parser.add_argument("--dovecot-port", type=int, default=0)
    args = parser.parse_args()
    certs = ensure_certificates(args.certs)
    sink = SmtpSink(certs, maildir=args.maildir, port=args.port or None, tls_port=args.tls_port or None)
    if args.dovecot_dir:
        sink.bounces = BounceMailboxes(DovecotServer(args.dovecot_dir, certs, port=args.dovecot_port))
    sink.start()
    print(f"SMTP sink on 127.0.0.1:{sink.port} (STARTTLS) and :{sink.tls_port} (TLS); mail in {args.maildir}",
          flush=True)
    stop = threading.Event()
    import signal

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    sink.stop()


if __name__ == "__main__":
    main()
