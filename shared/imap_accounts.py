"""A sender's IMAP account, where its bounces land: settings, live verification, reading new mail.

The connection is made the way SMTP's is: the host vetted by the SSRF guard, the socket opened
to the address that was checked (a DNS answer that changes in between cannot redirect it), TLS
verified against the system trust store (plus the deployment's extra CA) with the host's name.
IMAPClient (BSD) speaks the protocol; it is synchronous, so callers run it in a thread. What is
done with a logged-in session (search, fetch, move, IDLE) is in imap_mailbox.py.
"""

from __future__ import annotations

import asyncio
import functools
import re
import socket
import ssl
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import imapclient

from shared.crypto import KeyProvider, holds, open_sealed, seal
from shared.db import Conn
from shared.errors import InputError, host_refused, translate
from shared.imap_connection import AnswerTooLarge, BoundedImap, Bounds, CallTimedOut, Pace, Stalled, TooSlow
from shared.imap_mailbox import FETCH_BATCH as FETCH_BATCH  # where the readers of before import it from
from shared.imap_mailbox import Mailbox
from shared.mail.messenger import ConnectPolicy, tls_context
from shared.netguard import HostRefused, VettedAddress, vet_host
from shared.smtp_accounts import LIVE_CHECK_SECONDS, VerifyProblem
from shared.smtp_presets import PRESETS, preset_for_address

IMAP_PORT = 993
# How long a connection may take to open (connect, TLS, log in) and each later call unless its
# caller allows otherwise: a server that answers, slowly, is given up on after this, however
# steadily it drips.
CALL_SECONDS = 60.0


T = TypeVar("T")

# IMAPClient is synchronous, and a hostile server holds a thread as long as a call lasts (every
# call has a deadline: imap_connection.py). IMAP calls get threads of their own, so such servers
# can use up only these, never the default pool that hashes passwords and renders mail.
_IMAP_THREADS = ThreadPoolExecutor(max_workers=32, thread_name_prefix="imap")


async def in_imap_thread(call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`call(*args, **kwargs)` in an IMAP thread."""
    return await asyncio.get_running_loop().run_in_executor(_IMAP_THREADS, functools.partial(call, *args, **kwargs))


@dataclass(frozen=True)
class ImapAccount:
    host: str
    port: int
    username: str
    password: str


def default_host(from_email: str, preset: str | None) -> str | None:
    """The provider's IMAP server for a sender, when Sendpy knows the provider."""
    found = PRESETS.get(preset or "") or preset_for_address(from_email)
    return found.imap_host if found else None


def parse(body: dict[str, Any], from_email: str, preset: str | None) -> dict[str, Any]:
    """The IMAP fields of a sender form, validated: `imap_host` (or the provider's), `imap_port`
    (993), `imap_username` (the SMTP one when empty), `imap_password` (the SMTP one when empty),
    `imap_move_bounces`. An empty `imap_host` with no known provider turns bounce reading off."""
    values: dict[str, Any] = {}
    host = body.get("imap_host")
    if host is not None and not isinstance(host, str):
        raise InputError("type_string", "imap_host")
    host = (host or "").strip().lower() or None
    if host is None and body.get("imap_enabled", True) is not False:
        host = default_host(from_email, preset)
    if host is not None and (len(host) > 253 or any(c.isspace() or c in "/@:" for c in host)):
        raise InputError("invalid_host", "imap_host")
    values["imap_host"] = host
    port = body.get("imap_port", IMAP_PORT) or IMAP_PORT
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise InputError("invalid_port", "imap_port")
    values["imap_port"] = port if host else None
    for name in ("imap_username", "imap_password"):
        value = body.get(name)
        if value is not None and not isinstance(value, str):
            raise InputError("type_string", name)
        values[name] = (value or None) if host else None
    # `"imap_password": null` means "the SMTP password again"; leaving it out (or "") keeps the
    # one stored, so a form need not send a password it never showed.
    values["smtp_password"] = "imap_password" in body and body["imap_password"] is None
    move = body.get("imap_move_bounces", False)
    if not isinstance(move, bool):
        raise InputError("invalid_choice", "imap_move_bounces", choices="true, false")
    values["imap_move_bounces"] = move
    return values


def _pinned_client(account: ImapAccount, address: VettedAddress, context: ssl.SSLContext,
                   bounds: Bounds) -> imapclient.IMAPClient:
    """IMAPClient whose socket goes to the vetted address, with TLS checked against the host name,
    every read within `bounds`."""

    class PinnedClient(imapclient.IMAPClient):  # type: ignore[misc]
        def _create_IMAP4(self) -> Any:
            return BoundedImap(account.host, account.port, address.address, context, bounds)

    return PinnedClient(account.host, port=account.port, ssl=True, ssl_context=context, timeout=bounds.read_timeout)


def _connect(account: ImapAccount, address: VettedAddress, policy: ConnectPolicy, deadline: float,
             pace: Pace | None) -> Mailbox:
    context = policy.tls or tls_context()
    bounds = Bounds(deadline, policy.timeout, pace=pace)
    client = _pinned_client(account, address, context, bounds)
    try:
        if (account.username + account.password).isascii():
            client.login(account.username, account.password)
        else:
            # LOGIN carries ASCII only; AUTHENTICATE PLAIN carries UTF-8 (a Cyrillic app password).
            client.plain_login(account.username, account.password)
    except BaseException:
        try:
            client.shutdown()
        except Exception:  # noqa: S110
            pass
        raise
    return Mailbox(client, bounds)


def _server_words(exc: BaseException) -> str:
    """What the server said, without Python's bytes notation: b'[AUTHENTICATIONFAILED] …' → the text."""
    text = str(exc)
    match = re.fullmatch(r"""\(?b(['"])(.*)\1\)?""", text, re.S)
    return (match.group(2) if match else text)[:300]


def _problem(exc: BaseException, account: ImapAccount) -> VerifyProblem:
    where = f"{account.host}:{account.port}"
    if isinstance(exc, TooSlow):  # "received/seconds", for the reader's words (only a look has a pace)
        return VerifyProblem("too_slow", f"{exc.received}/{exc.seconds:.0f}")
    if isinstance(exc, Stalled):  # "seconds/answers", as the reader words it
        return VerifyProblem("stalled", f"{exc.waited:.0f}/{exc.answers}")
    if isinstance(exc, AnswerTooLarge):
        return VerifyProblem("too_large", exc.megabytes)
    if isinstance(exc, imapclient.exceptions.LoginError):
        return VerifyProblem("auth", _server_words(exc))
    if isinstance(exc, ssl.SSLError):
        reason = getattr(exc, "verify_message", None) or exc.reason or str(exc)
        return VerifyProblem("tls", f"TLS with {account.host} failed: {reason}")
    if isinstance(exc, TimeoutError | socket.timeout):
        return VerifyProblem("timeout", f"{where} did not answer in time")
    if isinstance(exc, ConnectionRefusedError):
        return VerifyProblem("refused", f"{where} refused the connection")
    if isinstance(exc, OSError):
        return VerifyProblem("refused", f"cannot reach {where}: {exc.strerror or exc}")
    return VerifyProblem("protocol", str(exc)[:300] or type(exc).__name__)


def bound_problem(exc: BaseException, account: ImapAccount) -> VerifyProblem | None:
    """The problem when `exc` is a bound the server ran into (an answer too large, a call too
    long), else None."""
    return _problem(exc, account) if isinstance(exc, AnswerTooLarge | CallTimedOut) else None


async def open_mailbox(account: ImapAccount, policy: ConnectPolicy, *, seconds: float = CALL_SECONDS,
                       pace: Pace | None = None) -> Mailbox:
    """Vet, connect, log in; raises ImapProblem with what went wrong in plain words. The mailbox's
    calls must end `seconds` from now (the connection included), unless `Mailbox.allow` says
    otherwise, and each answer keep `pace` if given."""
    try:
        addresses = await vet_host(account.host, account.port, allow_private=policy.allow_private)
    except HostRefused as exc:
        raise ImapProblem(VerifyProblem(exc.code, str(exc))) from None
    deadline = time.monotonic() + seconds
    last: BaseException | None = None
    for address in addresses[:2]:
        try:
            return await in_imap_thread(_connect, account, address, policy, deadline, pace)
        except Exception as exc:  # each failure is explained; the next address may answer
            last = exc
    assert last is not None
    raise ImapProblem(_problem(last, account))


class ImapProblem(Exception):
    def __init__(self, problem: VerifyProblem) -> None:
        super().__init__(problem.detail)
        self.problem = problem


async def verify(account: ImapAccount, policy: ConnectPolicy) -> VerifyProblem | None:
    """Connect, TLS, log in, select INBOX (read-only); None when all of it works. All of it ends
    within LIVE_CHECK_SECONDS, thread included, however the server behaves."""
    try:
        mailbox = await open_mailbox(account, policy, seconds=LIVE_CHECK_SECONDS)
    except ImapProblem as exc:
        return exc.problem
    try:
        await in_imap_thread(mailbox.select_inbox, readonly=True)
    except Exception as exc:
        return _problem(exc, account)
    finally:
        await in_imap_thread(mailbox.close)
    return None


def explain(problem: VerifyProblem, host: str, port: int, lang: str) -> dict[str, object]:
    """An IMAP problem as a person reads it, in `lang`."""
    code = f"imap_{problem.kind}" if problem.kind in _KINDS else "imap_protocol"
    return {"code": code, "message": translate(code, lang, host=host, port=port, detail=problem.detail)}


_KINDS = {"dns", "private", "refused", "timeout", "tls", "auth", "protocol", "too_large"}


def _password_stays_with_its_server(values: dict[str, Any], stored: Any) -> None:
    """A saved password is sent only to the server it was entered for: the IMAP password to the
    IMAP server it was saved with, the SMTP password to the SMTP server's host or the provider's
    own IMAP server. Anything else needs the password typed again (else whoever could change the
    settings, say with a stolen session, could point them at their own server and read it there)."""
    host, port = values["imap_host"], values["imap_port"]
    if host is None or values["imap_password"] is not None:
        return  # off, or a password given with the new settings
    smtp = values["smtp_password"] or not stored["own_password"]  # else the saved IMAP password
    if (host, port) == (stored["imap_host"], stored["imap_port"]) and (not smtp or not stored["own_password"]):
        return  # the password that went to this server before
    if smtp and host in (stored["host"].lower(), default_host(stored["from_email"], stored["preset"])):
        return  # the SMTP password to the SMTP host, or to its provider's IMAP server
    raise InputError("imap_password_required", "imap_password", host=host, port=port)


async def save(conn: Conn, keys: KeyProvider, user_id: int, sender_id: int, values: dict[str, Any], *,
               allow_private: bool) -> bool:
    """Store a sender's IMAP settings (the host vetted like SMTP's); False when no such sender.
    A changed server or login starts reading afresh and needs verifying again; turning reading off
    keeps the place reached, so turning it on again for the same mailbox (host and login; the
    reader checks UIDVALIDITY) goes on from there rather than from the mailbox's first message.
    The stored password sent again stays as sealed: an unchanged save leaves the IDLE watch be."""
    stored = await conn.fetchrow(
        "SELECT imap_host, imap_port, imap_password_encrypted IS NOT NULL AS own_password, imap_password_encrypted,"
        " host, from_email, preset FROM senders WHERE id = $1 AND user_id = $2", sender_id, user_id)
    if stored is None:
        return False
    _password_stays_with_its_server(values, stored)
    if values["imap_host"]:
        try:
            await vet_host(values["imap_host"], values["imap_port"], allow_private=allow_private)
        except HostRefused as exc:
            raise host_refused("imap_host", values["imap_host"], exc.code, str(exc)) from None
    given, context = values["imap_password"], f"user:{user_id}"
    same = given and await holds(keys, stored["imap_password_encrypted"], context, given)  # opened, constant time
    sealed = await seal(keys, given, context) if given and not same else None
    done = await conn.fetchval(
        """
        UPDATE senders SET imap_host = $3, imap_port = $4, imap_username = $5,
               imap_password_encrypted = CASE WHEN $3::text IS NULL OR $8 THEN NULL
                                              ELSE COALESCE($6, imap_password_encrypted) END,
               imap_move_bounces = $7,
               imap_verified_at = CASE WHEN $6::bytea IS NULL AND NOT $8 AND imap_host IS NOT DISTINCT FROM $3
                                        AND imap_port IS NOT DISTINCT FROM $4
                                        AND imap_username IS NOT DISTINCT FROM $5 THEN imap_verified_at END,
               imap_uidvalidity = CASE WHEN $3::text IS NULL OR imap_place = $3 || chr(10) || coalesce($5, '')
                                       THEN imap_uidvalidity END,
               imap_next_uid = CASE WHEN $3::text IS NULL OR imap_place = $3 || chr(10) || coalesce($5, '')
                                    THEN imap_next_uid END,
               imap_place = CASE WHEN $3::text IS NULL THEN imap_place ELSE $3 || chr(10) || coalesce($5, '') END,
               imap_problem = NULL, updated_at = now()
         WHERE id = $1 AND user_id = $2 RETURNING 1
        """,
        sender_id, user_id, values["imap_host"], values["imap_port"], values["imap_username"], sealed,
        values["imap_move_bounces"], values["smtp_password"],
    )
    return done is not None


async def account_of(conn: Conn, keys: KeyProvider, user_id: int, sender_id: int) -> ImapAccount | None:
    """The sender's IMAP account with its password opened (the SMTP one unless it has its own)."""
    row = await conn.fetchrow(
        "SELECT imap_host, imap_port, imap_username, imap_password_encrypted, username, password_encrypted"
        " FROM senders WHERE id = $1 AND user_id = $2", sender_id, user_id)
    if row is None or row["imap_host"] is None:
        return None
    password = await open_sealed(keys, row["imap_password_encrypted"] or row["password_encrypted"], f"user:{user_id}")
    return ImapAccount(row["imap_host"], row["imap_port"] or IMAP_PORT, row["imap_username"] or row["username"],
                       password)


async def mark_verified(conn: Conn, sender_id: int, problem: VerifyProblem | None, text: str | None) -> None:
    await conn.execute(
        "UPDATE senders SET imap_verified_at = CASE WHEN $2 THEN now() END, imap_problem = $3,"
        # settings that check out (often new ones) are read at once, not after a slow server's back-off
        " imap_slow_until = CASE WHEN $2 THEN NULL ELSE imap_slow_until END,"
        " imap_slow_strikes = CASE WHEN $2 THEN 0 ELSE imap_slow_strikes END WHERE id = $1",
        sender_id, problem is None, text)


async def status(conn: Conn, sender_id: int) -> dict[str, Any]:
    """What the sender page shows about bounce reading and the account's bounce rate (30 days)."""
    row = await conn.fetchrow(
        """
        SELECT s.imap_host, s.imap_port, s.imap_username, s.imap_move_bounces, s.imap_verified_at,
               s.imap_checked_at, s.imap_problem, s.imap_password_encrypted IS NOT NULL AS own_password,
               (SELECT count(*) FILTER (WHERE r.status = 'bounced') FROM recipients r JOIN campaigns c
                  ON c.id = r.campaign_id WHERE c.sender_id = s.id AND r.updated_at > now() - interval '30 days')
                 AS bounced,
               (SELECT count(*) FROM recipients r JOIN campaigns c ON c.id = r.campaign_id
                 WHERE c.sender_id = s.id AND r.status IN ('sent', 'bounced')
                   AND r.updated_at > now() - interval '30 days') AS delivered
          FROM senders s WHERE s.id = $1
        """,
        sender_id)
    assert row is not None
    bounced, sent = row["bounced"], row["delivered"]
    rate = bounced / sent if sent else 0.0
    return {
        "host": row["imap_host"], "port": row["imap_port"], "username": row["imap_username"],
        "move_bounces": row["imap_move_bounces"], "verified": row["imap_verified_at"] is not None,
        "own_password": row["own_password"],  # False: the SMTP password is used
        "checked_at": row["imap_checked_at"].isoformat() if row["imap_checked_at"] else None,
        "problem": row["imap_problem"], "bounced_30d": bounced, "sent_30d": sent, "bounce_rate_30d": round(rate, 4),
        "bounce_warning": sent >= 50 and rate >= BOUNCE_WARNING_RATE,
    }


# Amazon SES reviews an account at a 5% bounce rate (and may pause it at 10%); Google's and
# Yahoo's 2024 bulk-sender rules and Mail.ru's postmaster pages ask for "low" bounce rates and
# throttle senders who keep mailing dead addresses. Warn at SES's review level, on at least 50 mails.
BOUNCE_WARNING_RATE = 0.05
