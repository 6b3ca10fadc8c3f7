"""The messenger: talks SMTP and nothing else.

Opens verified TLS connections to vetted addresses, logs in, sends message bytes, and tells the
caller what a reply means (sent, retry later, failed for good, or stop: the account or the
campaign needs attention). Which mail goes out, and when, is the scheduler's business.
"""

from __future__ import annotations

import asyncio
import enum
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal, cast

import aiosmtplib
from aiosmtplib.typing import Default

from shared.mail.pipelining import Held, PipelinedSession, SessionLost, TooSlow, Unconfirmed
from shared.netguard import HostRefused, open_socket, vet_host
from shared.settings import Settings


class ReplyKind(enum.StrEnum):
    SENT = "sent"
    RETRY = "retry"  # transient: 4xx, network trouble; try again later
    FAILED = "failed"  # permanent for this recipient: 5xx on RCPT or DATA
    PAUSE_SENDER = "pause_sender"  # the account hit a quota or is locked: wait, lose nothing
    PAUSE_CAMPAIGN = "pause_campaign"  # login or sender address refused: a person must act


@dataclass(frozen=True)
class SmtpAccount:
    host: str
    port: int
    security: str  # "tls", "starttls", "starttls_optional" (plaintext if not offered) or "none"
    username: str
    password: str

    def __repr__(self) -> str:  # never let the password reach a log through a repr
        return f"SmtpAccount({self.username!r} at {self.host}:{self.port}, {self.security})"


@dataclass(frozen=True)
class Reply:
    kind: ReplyKind
    code: int | None
    text: str
    # The longest the server made us wait for one reply in this transaction (seconds), and
    # whether the transaction was cut before DATA for overrunning its deadline (nothing was sent).
    waited: float = 0.0
    too_slow: bool = False
    held: bool = False  # not sent: `may_send` said no when its turn on a shared connection came

    def describe(self) -> str:
        # A hostile or broken server may answer with control characters (NUL cannot even be stored).
        text = self.text.translate(_CONTROL_CHARACTERS)
        # aiosmtplib's own failures (a reply too long, unreadable) carry code -1: not the server's word.
        return f"{self.code} {text}".strip() if self.code and self.code > 0 else text


_CONTROL_CHARACTERS = {c: " " for c in range(32) if c != 9} | {127: " "}

_QUOTA_WORDS = (
    "quota",
    "limit exceeded",
    "rate limit",
    "ratelimit",
    "too many messages",
    "sending limit",
    "daily user sending",
    "temporarily locked",
    "account is locked",
    "try again later",
)


def classify(code: int, text: str, *, stage: str = "rcpt") -> ReplyKind:
    """What an SMTP reply means for the recipient it was about.

    `stage` is where the reply came: "auth", "mail" (MAIL FROM), "rcpt" or "data".
    """
    if 200 <= code < 300:
        return ReplyKind.SENT
    lowered = text.lower()
    if code in (530, 534, 535) or stage == "auth":
        return ReplyKind.PAUSE_CAMPAIGN if code >= 500 else ReplyKind.RETRY
    if any(word in lowered for word in _QUOTA_WORDS) or " 5.4.5" in f" {lowered}":
        return ReplyKind.PAUSE_SENDER
    if 400 <= code < 500:
        return ReplyKind.RETRY
    if stage == "mail":
        # The server refuses our sender address: every recipient would fail the same way.
        return ReplyKind.PAUSE_CAMPAIGN
    return ReplyKind.FAILED


def _unconfirmed(why: str, waited: float) -> Reply:
    """A message that went out whole without a 2xx to its final dot: recorded sent, never sent again."""
    return Reply(ReplyKind.SENT, None, "письмо передано, но сервер не подтвердил приём; повторно не"
                 f" отправляется / sent, but the server never confirmed it ({why}); not sent again", waited)


def _connection_lost(why: str, waited: float = 0.0) -> Reply:
    """Nothing was handed over: tried again. Shown in the recipient list, so in both languages."""
    return Reply(ReplyKind.RETRY, None, "соединение с сервером прервалось, письмо будет отправлено снова"
                 f" / connection lost, the message will be sent again ({why})", waited)


class ConnectError(Exception):
    """Could not reach or log in to the server; `kind` says where it stopped."""

    def __init__(self, kind: str, message: str, code: int | None = None, waited: float = 0.0) -> None:
        super().__init__(message)
        self.kind = kind  # dns, private, refused, timeout, slow, tls, auth, protocol, plaintext
        self.code = code if code and code > 0 else None  # aiosmtplib's -1 is no SMTP reply code
        self.waited = waited  # for "slow": the longest wait for one reply, in seconds


def tls_context(extra_ca_file: str | None = None) -> ssl.SSLContext:
    """Certificates verified against the system's trust store (plus one extra CA), TLS 1.2+."""
    context = ssl.create_default_context()
    if extra_ca_file:
        context.load_verify_locations(cafile=extra_ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


@dataclass(frozen=True)
class ConnectPolicy:
    allow_private: bool
    allow_plaintext: bool
    timeout: float
    tls: ssl.SSLContext | None = None

    @classmethod
    def from_settings(cls, settings: Settings, *, max_timeout: float | None = None) -> ConnectPolicy:
        """`max_timeout` caps waits for requests a person is waiting on (API Gateway gives 30 s)."""
        timeout = settings.smtp_timeout if max_timeout is None else min(settings.smtp_timeout, max_timeout)
        return cls(
            allow_private=settings.smtp_allow_private,
            allow_plaintext=settings.smtp_allow_plaintext,
            timeout=timeout,
            tls=tls_context(settings.smtp_ca_file),
        )


async def _should_log_in(smtp: aiosmtplib.SMTP, account: SmtpAccount) -> bool:
    """A relay reached without TLS that offers no AUTH relays by network address: send without
    logging in. Everywhere else a missing AUTH is the server's error to report."""
    if account.security not in ("none", "starttls_optional"):
        return True
    if smtp.last_ehlo_response is None:
        await smtp.ehlo()
    return smtp.supports_extension("auth")


class _TimedSMTP(aiosmtplib.SMTP):
    """aiosmtplib's client, noting the longest the server took to answer one command, and whether
    the message of the DATA under way has been written (what fails after that is its final reply)."""

    waited = 0.0
    asked = 0.0  # when the answer now awaited was asked for (set before connecting)
    body_out = False

    async def execute_command(
        self, *args: bytes, timeout: float | Literal[Default.token] | None = Default.token
    ) -> aiosmtplib.SMTPResponse:
        self.asked = time.monotonic()
        try:
            return await super().execute_command(*args, timeout=timeout)
        finally:
            self.waited = max(self.waited, time.monotonic() - self.asked)
            self.asked = time.monotonic()

    async def data(self, message: str | bytes, /, *,
                   timeout: float | Literal[Default.token] | None = Default.token) -> aiosmtplib.SMTPResponse:
        # aiosmtplib writes "DATA", reads the 354, then writes the message: its second write.
        self.body_out = False
        protocol = self.protocol
        if protocol is None:
            return await super().data(message, timeout=timeout)
        write = protocol.write
        writes = 0

        def noting(data: bytes) -> None:
            nonlocal writes
            write(data)
            writes += 1
            self.body_out = writes > 1

        setattr(protocol, "write", noting)  # noqa: B010  # the instance's, for this one DATA
        try:
            return await super().data(message, timeout=timeout)
        finally:
            delattr(protocol, "write")


class SmtpConnection:
    """One logged-in SMTP session; `sent` counts messages sent through it.

    With `pipelining`, transactions run on PipelinedSession after aiosmtplib has connected,
    verified TLS and logged in: pipelined where the server offers it, one command at a time
    where not, and in both cases with a deadline for everything before DATA.
    """

    def __init__(self, account: SmtpAccount, policy: ConnectPolicy, *, pipelining: bool = True) -> None:
        self.account = account
        self.policy = policy
        self.sent = 0
        # Sends using the connection now (the scheduler's pool, connections.py): a pipelined one
        # takes a second while the first is out, and writes its commands with the first's body.
        self.users = 0
        # Asked before a send that waited behind another goes out (the account may have been paused meanwhile).
        self.may_send: Callable[[], bool] | None = None
        self._pipelining = pipelining
        self._smtp: _TimedSMTP | None = None
        self._pipe: PipelinedSession | None = None
        self._opening: _TimedSMTP | None = None  # the client while it connects and logs in
        self._smtputf8 = False

    @property
    def smtp(self) -> aiosmtplib.SMTP | None:
        """The logged-in session, for callers that need a command the messenger does not wrap."""
        return self._smtp

    @property
    def pipelined(self) -> bool:
        return self._pipe is not None and self._pipe.pipelining

    @property
    def is_open(self) -> bool:
        if self._pipe is not None:
            return self._pipe.is_open
        return self._smtp is not None and self._smtp.is_connected

    async def open(self, deadline: float | None = None) -> None:
        """Connect, verify TLS and log in; by `deadline` (time.monotonic()) when given, else
        ConnectError("slow"): each command may take the timeout, but not all of them together."""
        began = time.monotonic()
        limit = asyncio.timeout(None if deadline is None else max(deadline - began, 0.0))
        try:
            async with limit:
                await self._open()
        except BaseException as exc:
            smtp, self._opening = self._opening, None
            if smtp is not None:  # cut off, cancelled, or a failure the steps below did not close for
                smtp.close()
            if isinstance(exc, TimeoutError) and limit.expired():
                now = time.monotonic()
                waited = max(smtp.waited, now - (smtp.asked or began)) if smtp is not None else now - began
                raise ConnectError("slow", f"{self.account.host}:{self.account.port} was not ready to send"
                                   f" within {now - began:.0f} s", waited=waited) from None
            raise
        self._opening = None

    async def _open(self) -> None:
        account, policy = self.account, self.policy
        if account.security == "none" and not policy.allow_plaintext:
            raise ConnectError("plaintext", "this deployment does not allow SMTP without TLS")
        try:
            addresses = await vet_host(account.host, account.port, allow_private=policy.allow_private)
        except HostRefused as exc:
            raise ConnectError(exc.code, str(exc)) from None
        try:
            sock = await open_socket(addresses, account.port, policy.timeout)
        except TimeoutError:
            raise ConnectError("timeout", f"{account.host}:{account.port} did not answer in time") from None
        except ConnectionRefusedError:
            raise ConnectError("refused", f"{account.host}:{account.port} refused the connection") from None
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise ConnectError("refused", f"cannot reach {account.host}:{account.port}: {reason}") from None
        context = policy.tls or tls_context()
        # None is aiosmtplib's "STARTTLS if offered"; where plaintext is not allowed (any more),
        # "starttls_optional" demands STARTTLS like "starttls".
        required = account.security == "starttls" or (account.security == "starttls_optional"
                                                      and not policy.allow_plaintext)
        start_tls: bool | None = True if required else None if account.security == "starttls_optional" else False
        smtp = self._opening = _TimedSMTP(
            hostname=account.host,
            sock=sock,
            timeout=policy.timeout,
            use_tls=account.security == "tls",
            start_tls=start_tls,
            tls_context=context,
            # An offered STARTTLS is verified like any TLS: a bad certificate is an error, not plaintext.
            validate_certs=True,
        )
        smtp.asked = time.monotonic()
        try:
            await smtp.connect()
            if account.username and await _should_log_in(smtp, account):
                await smtp.login(account.username, account.password)
        except aiosmtplib.SMTPAuthenticationError as exc:
            smtp.close()
            raise ConnectError("auth", exc.message, exc.code) from None
        except aiosmtplib.SMTPConnectTimeoutError:
            smtp.close()
            raise ConnectError("timeout", f"{account.host}:{account.port} did not answer in time") from None
        except aiosmtplib.SMTPTimeoutError:
            smtp.close()
            raise ConnectError("timeout", f"{account.host}:{account.port} stopped answering") from None
        except (ssl.SSLError, aiosmtplib.SMTPConnectError) as exc:
            smtp.close()
            cause = exc.__cause__ if isinstance(exc.__cause__, ssl.SSLError) else exc
            if isinstance(cause, ssl.SSLError):
                reason = getattr(cause, "verify_message", None) or cause.reason or str(cause)
                raise ConnectError("tls", f"TLS with {account.host} failed: {reason}") from None
            raise ConnectError("refused", str(exc)) from None
        except aiosmtplib.SMTPException as exc:
            smtp.close()
            code = getattr(exc, "code", None)
            message = getattr(exc, "message", str(exc))
            if required and "starttls" in message.lower() and "not supported" in message.lower():
                # A settings problem, not a passing one: retrying cannot make the server offer TLS.
                raise ConnectError("starttls", f"{account.host}:{account.port} does not offer STARTTLS") from None
            raise ConnectError("protocol", message, code) from None
        self._smtp = smtp
        self.sent = 0
        self.account = replace(account, password="")  # logged in: the secret is not needed any more
        greeted = not self._pipelining or smtp.last_ehlo_response is not None
        if not greeted:
            try:
                await smtp.ehlo()  # without a login nothing has asked for the extensions yet
                greeted = True
            except aiosmtplib.SMTPException:
                try:
                    await smtp.helo()  # an old server that only knows HELO: plain transactions
                    greeted = True
                except aiosmtplib.SMTPException:
                    pass  # aiosmtplib's sendmail tries again
        transport = smtp.protocol.transport if smtp.protocol is not None else None
        # Duck-typed: uvloop's transports are not asyncio.Transport subclasses but behave the same.
        self._smtputf8 = smtp.supports_extension("smtputf8")
        if self._pipelining and greeted and hasattr(transport, "set_protocol"):
            self._pipe = PipelinedSession(cast(asyncio.Transport, transport), policy.timeout,
                                          pipelining=smtp.supports_extension("pipelining"))

    async def send(self, sender: str, recipient: str, message: bytes, *, deadline: float | None = None) -> Reply:
        """Send one message; never raises for SMTP or network trouble, returns the reply.

        A server that has not taken MAIL, RCPT and DATA by `deadline` (time.monotonic()) is cut
        off (`too_slow`: the message was not handed over, so it can be sent again later).
        """
        # Non-ASCII addresses need SMTPUTF8 (RFC 6531) on every path; a server without it never will.
        international = not (sender.isascii() and recipient.isascii())
        if international and not self._smtputf8:
            return Reply(ReplyKind.FAILED, None,
                         "сервер не принимает адреса не латиницей (нет SMTPUTF8) /"
                         " the server does not accept non-ASCII addresses (no SMTPUTF8 support)")
        if self._pipe is not None:
            return await self._send_pipelined(sender, recipient, message, international, deadline)
        if self._smtp is None or not self._smtp.is_connected:
            return Reply(ReplyKind.RETRY, None, "connection is not open")
        options = ["SMTPUTF8"] if international else []  # without it aiosmtplib encodes addresses as ASCII
        smtp = self._smtp
        smtp.body_out = False
        try:
            _, text = await smtp.sendmail(sender, [recipient], message, mail_options=options)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            refused = exc.recipients[0]
            return Reply(classify(refused.code, refused.message, stage="rcpt"), refused.code, refused.message)
        except aiosmtplib.SMTPSenderRefused as exc:
            return Reply(classify(exc.code, exc.message, stage="mail"), exc.code, exc.message)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            return self._not_sent(smtp, exc)
        self.sent += 1
        return Reply(ReplyKind.SENT, 250, text)  # aiosmtplib raises for anything but 250 after DATA

    def _not_sent(self, smtp: _TimedSMTP, exc: Exception) -> Reply:
        """What aiosmtplib's failure to send means, decided as on the pipelined path."""
        said = str(exc)
        if isinstance(exc, aiosmtplib.SMTPResponseException):
            if 400 <= exc.code < 600:  # an answer: a refusal, here or at the end of DATA
                if not isinstance(exc, aiosmtplib.SMTPDataError):
                    self.close()  # the session is in an unknown state; a refused DATA leaves it clean
                stage = "data" if isinstance(exc, aiosmtplib.SMTPDataError) else "rcpt"
                return Reply(classify(exc.code, exc.message, stage=stage), exc.code, exc.message)
            what = "the end of DATA" if smtp.body_out else "DATA" if isinstance(exc, aiosmtplib.SMTPDataError) \
                else "a command"
            said = f"the server answered {what} with {exc.code} {exc.message}" if exc.code > 0 else exc.message
        self.close()
        if smtp.body_out and not (isinstance(exc, ConnectionError) and not isinstance(exc, TimeoutError)):
            # The body went out whole, then silence or no answer (354 again, garbage): not sent again.
            self.sent += 1
            return _unconfirmed(said, smtp.waited)
        # Closed, or no answer before the body (250 where DATA wants 354): nothing was handed over.
        return _connection_lost(said)

    async def _send_pipelined(self, sender: str, recipient: str, message: bytes, international: bool,
                              deadline: float | None) -> Reply:
        pipe = self._pipe
        assert pipe is not None
        try:
            stage, reply = await pipe.send(sender, recipient, message, smtputf8=international, deadline=deadline,
                                           go=self.may_send)
        except Held as exc:
            if not pipe.is_open:
                self.close()
            return Reply(ReplyKind.RETRY, None, str(exc), pipe.waited, held=True)
        except TooSlow as exc:
            self.close()
            return Reply(ReplyKind.RETRY, None, str(exc), pipe.waited, too_slow=True)
        except Unconfirmed as exc:
            self.close()
            self.sent += 1
            return _unconfirmed(str(exc), pipe.waited)
        except (SessionLost, OSError) as exc:
            self.close()
            return _connection_lost(str(exc), pipe.waited)
        if 200 <= reply.code < 300 and stage == "data":  # pipe.send returns a 2xx only for the final dot
            self.sent += 1
            return Reply(ReplyKind.SENT, reply.code, reply.text, pipe.waited)
        if reply.code == 421:  # the server is closing the session
            self.close()
        return Reply(classify(reply.code, reply.text, stage=stage), reply.code, reply.text, pipe.waited)

    async def quit(self) -> None:
        pipe, self._pipe = self._pipe, None
        if pipe is not None:
            await pipe.quit()
            self._smtp = None
            return
        smtp, self._smtp = self._smtp, None
        if smtp is not None and smtp.is_connected:
            try:
                await asyncio.wait_for(smtp.quit(), timeout=5)
            except (aiosmtplib.SMTPException, OSError, TimeoutError):
                smtp.close()

    def close(self) -> None:
        pipe, self._pipe = self._pipe, None
        if pipe is not None:
            pipe.close()
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            smtp.close()
