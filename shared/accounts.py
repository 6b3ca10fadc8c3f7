"""Accounts: users, passwords (Argon2id), log-in with throttling, browser sessions, API keys.

API keys are random 256-bit secrets stored as SHA-256 digests: nobody can guess them offline,
so they need no slow hash. A key is shown to its owner once and never stored in clear.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from shared.addresses import check_address, reason_in_russian
from shared.db import Conn
from shared.errors import InputError

_hasher = PasswordHasher()  # argon2-cffi's defaults are Argon2id with RFC 9106 parameters

API_KEY_PREFIX = "sp_"


# Argon2id takes ~150 ms of CPU on purpose: in a thread, so the API's event loop keeps serving
# everyone else while someone logs in (on the loop, eight clients logging in held it for 0.7 s).
async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


async def verify_password(password_hash: str, password: str) -> bool:
    return await asyncio.to_thread(_verify, password_hash, password)


@dataclass(frozen=True)
class NewApiKey:
    token: str  # shown once to the user, never stored
    prefix: str  # stored in clear to find the row and to show in lists
    secret_hash: bytes


def new_api_key() -> NewApiKey:
    # A 256-bit random secret needs no slow hash: nobody can guess it offline.
    prefix = secrets.token_hex(4)
    secret = secrets.token_urlsafe(32)
    return NewApiKey(
        token=f"{API_KEY_PREFIX}{prefix}_{secret}",
        prefix=prefix,
        secret_hash=hashlib.sha256(secret.encode()).digest(),
    )


def split_api_key(token: str) -> tuple[str, str] | None:
    """Return (prefix, secret) of a well-formed token, or None."""
    if not token.startswith(API_KEY_PREFIX):
        return None
    prefix, sep, secret = token[len(API_KEY_PREFIX) :].partition("_")
    if not sep or len(prefix) != 8 or not secret:
        return None
    return prefix, secret


def api_secret_matches(secret: str, secret_hash: bytes) -> bool:
    return hmac.compare_digest(hashlib.sha256(secret.encode()).digest(), secret_hash)


SESSION_DAYS = 14
MIN_PASSWORD = 8
MAX_PASSWORD = 1024
# Failed log-ins (and password changes) allowed in the window before answering 429. Counting
# per address *and* client stops a guesser without letting a stranger lock the owner out: the
# owner's own browser or network is another client. A guessing campaign from many clients
# (FAILURES_PER_EMAIL), or from the owner's own network address (FAILURES_PER_CLIENT: an office
# or carrier NAT), still cannot close a *known device* — a browser that logged in to the account
# before: its failures are counted on their own, FAILURES_PER_EMAIL_AND_CLIENT per window.
FAILURES_PER_EMAIL_AND_CLIENT = 5
FAILURES_PER_CLIENT = 20
FAILURES_PER_EMAIL = 100
FAILURE_WINDOW_MINUTES = 15
DEVICE_DAYS = 365
DEVICES_PER_USER = 20
# Verifying against this keeps unknown addresses as slow as known ones (no user enumeration).
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class TooManyAttempts(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__("too many failed log-ins")
        self.retry_after = retry_after


def check_new_password(password: Any, field: str = "password") -> str:
    if not isinstance(password, str) or not password:
        raise InputError("required", field)
    if len(password) < MIN_PASSWORD:
        raise InputError("password_short", field, limit=MIN_PASSWORD)
    if len(password) > MAX_PASSWORD:
        raise InputError("too_long", field, limit=MAX_PASSWORD)
    return password


def check_email(email: Any, field: str = "email") -> str:
    if not isinstance(email, str) or not email.strip():
        raise InputError("required", field)
    checked = check_address(email)
    if checked.normalized is None:
        raise InputError("invalid_email", field, value=email, reason=checked.reason,
                         reason_ru=reason_in_russian(checked.reason or ""))
    return checked.normalized


async def register(conn: Conn, email: str, password: str) -> int:
    try:
        user_id: int = await conn.fetchval(
            "INSERT INTO users (email, password_hash) VALUES ($1, $2) RETURNING id",
            email, await hash_password(password),
        )
    except asyncpg.UniqueViolationError:
        raise InputError("email_taken", "email") from None
    return user_id


async def authenticate(conn: Conn, email: str, password: str, client: str, device: str | None = None) -> int | None:
    """The user id for correct credentials, None for wrong ones; TooManyAttempts when throttled.

    `device` is the known-device token the browser presented, if any (see FAILURES_PER_CLIENT).
    """
    row = await conn.fetchrow("SELECT id, password_hash FROM users WHERE lower(email) = lower($1)", email)
    known = row is not None and device is not None and await _device_of(conn, device) == row["id"]
    counted_as = _device_client(device) if known and device else client
    await _counted_attempt(conn, email, counted_as, known_device=known)
    stored = row["password_hash"] if row and row["password_hash"] else _DUMMY_HASH
    if row is not None and await verify_password(stored, password):
        # Only this client's failures are forgiven: the owner logging in must not wipe the count
        # of a stranger who is guessing the same address.
        await conn.execute("DELETE FROM login_failures WHERE lower(email) = lower($1) AND client = $2",
                           email, counted_as)
        user_id: int = row["id"]
        return user_id
    if row is None:
        await verify_password(_DUMMY_HASH, password)
    return None


async def _counted_attempt(conn: Conn, email: str, client: str, *, known_device: bool) -> int:
    """Count this attempt as a failure *before* the password is checked, then see whether it is one
    too many. Checking first let concurrent guesses all pass while each verified its password
    (nine of them got through a limit of five); counted first, every guess sees those before it.
    A correct password takes the row back out."""
    attempt: int = await conn.fetchval(
        "INSERT INTO login_failures (email, client) VALUES ($1, $2) RETURNING id", email, client)
    try:
        await check_throttle(conn, email, client, known_device=known_device, counting_this=True)
    except TooManyAttempts:
        await conn.execute("DELETE FROM login_failures WHERE id = $1", attempt)  # refused, not tried
        raise
    return attempt


async def check_throttle(conn: Conn, email: str, client: str, *, known_device: bool = False,
                         counting_this: bool = False) -> None:
    """TooManyAttempts when this address, this client, or the pair failed too often lately; for a
    known device only its own failures count. `counting_this`: the attempt being judged is
    already among the failures."""
    counts = await conn.fetchrow(
        """
        SELECT count(*) FILTER (WHERE lower(email) = lower($1) AND client = $2) AS by_pair,
               count(*) FILTER (WHERE lower(email) = lower($1)) AS by_email,
               count(*) FILTER (WHERE client = $2) AS by_client
          FROM login_failures
         WHERE at > now() - make_interval(mins => $3) AND (lower(email) = lower($1) OR client = $2)
        """,
        email, client, FAILURE_WINDOW_MINUTES,
    )
    assert counts is not None
    extra = 1 if counting_this else 0
    if counts["by_pair"] >= FAILURES_PER_EMAIL_AND_CLIENT + extra or (not known_device and (
            counts["by_client"] >= FAILURES_PER_CLIENT + extra or counts["by_email"] >= FAILURES_PER_EMAIL + extra)):
        raise TooManyAttempts(FAILURE_WINDOW_MINUTES * 60)


def _device_client(device: str) -> str:
    return "device:" + hashlib.sha256(device.encode()).hexdigest()[:32]


async def _device_of(conn: Conn, device: str) -> int | None:
    user_id: int | None = await conn.fetchval(
        "UPDATE known_devices SET used_at = now() WHERE token_hash = $1"
        " AND used_at > now() - make_interval(days => $2) RETURNING user_id",
        _digest(device), DEVICE_DAYS)
    return user_id


async def remember_device(conn: Conn, user_id: int, device: str | None) -> str:
    """The known-device token for this browser after a log-in: the one it has, or a new one."""
    if device and await _device_of(conn, device) == user_id:
        return device
    token = secrets.token_urlsafe(32)
    await conn.execute("INSERT INTO known_devices (token_hash, user_id) VALUES ($1, $2)", _digest(token), user_id)
    await conn.execute(
        "DELETE FROM known_devices WHERE user_id = $1 AND token_hash NOT IN ("
        " SELECT token_hash FROM known_devices WHERE user_id = $1 ORDER BY used_at DESC LIMIT $2)",
        user_id, DEVICES_PER_USER)
    return token


@dataclass(frozen=True)
class NewSession:
    token: str
    csrf_token: str
    expires_at: datetime


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def create_session(conn: Conn, user_id: int) -> NewSession:
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(24)
    expires_at = await conn.fetchval(
        "INSERT INTO sessions (token_hash, user_id, csrf_token, expires_at)"
        " VALUES ($1, $2, $3, now() + make_interval(days => $4)) RETURNING expires_at",
        _digest(token), user_id, csrf, SESSION_DAYS,
    )
    return NewSession(token, csrf, expires_at)


async def session_user(conn: Conn, token: str) -> tuple[int, str] | None:
    """(user id, CSRF token) of a live session."""
    row = await conn.fetchrow(
        "SELECT user_id, csrf_token FROM sessions WHERE token_hash = $1 AND expires_at > now()", _digest(token)
    )
    return (row["user_id"], row["csrf_token"]) if row else None


async def end_session(conn: Conn, token: str) -> None:
    await conn.execute("DELETE FROM sessions WHERE token_hash = $1", _digest(token))


async def change_password(conn: Conn, user_id: int, current: str, new: str, keep_session: str | None,
                          client: str, device: str | None = None) -> bool:
    """False when `current` is wrong, throttled like log-in (TooManyAttempts): a stolen API key or
    session must not become a way to guess the password. Other sessions are ended."""
    row = await conn.fetchrow("SELECT email, password_hash FROM users WHERE id = $1", user_id)
    assert row is not None
    known = device is not None and await _device_of(conn, device) == user_id
    counted_as = _device_client(device) if known and device else client
    attempt = await _counted_attempt(conn, row["email"], counted_as, known_device=known)
    if not row["password_hash"] or not await verify_password(row["password_hash"], current):
        return False
    async with conn.transaction():
        await conn.execute("DELETE FROM login_failures WHERE id = $1", attempt)
        await conn.execute("UPDATE users SET password_hash = $2 WHERE id = $1", user_id, await hash_password(new))
        await conn.execute(
            "DELETE FROM sessions WHERE user_id = $1 AND token_hash <> $2",
            user_id, _digest(keep_session) if keep_session else b"",
        )
        await conn.execute("DELETE FROM known_devices WHERE user_id = $1 AND token_hash <> $2",
                           user_id, _digest(device) if device else b"")
    return True


async def profile(conn: Conn, user_id: int) -> dict[str, Any]:
    row = await conn.fetchrow("SELECT id, email, created_at FROM users WHERE id = $1", user_id)
    assert row is not None
    return {"id": row["id"], "email": row["email"], "created_at": row["created_at"].isoformat()}


async def new_key(conn: Conn, user_id: int, name: str) -> dict[str, Any]:
    token, row = await create_api_key_row(conn, user_id, name)
    return {**_key_json(dict(row)), "key": token}


def _key_json(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "prefix": f"sp_{row['prefix']}",
        "name": row["name"],
        "created_at": row["created_at"].isoformat(),
        "last_used_at": row["last_used_at"].isoformat() if row.get("last_used_at") else None,
    }


async def list_keys(conn: Conn, user_id: int) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT id, prefix, name, created_at, last_used_at FROM api_keys"
        " WHERE user_id = $1 AND revoked_at IS NULL ORDER BY id",
        user_id,
    )
    return [_key_json(dict(r)) for r in rows]


async def revoke_key(conn: Conn, user_id: int, key_id: int) -> bool:
    done = await conn.fetchval(
        "UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL RETURNING id",
        key_id, user_id,
    )
    return done is not None


async def ensure_user(conn: Conn, email: str, password: str | None = None) -> int:
    """The id of the user with this email (case-insensitive), created if missing."""
    user_id: int | None = await conn.fetchval("SELECT id FROM users WHERE lower(email) = lower($1)", email)
    if user_id is None:
        user_id = await conn.fetchval(
            "INSERT INTO users (email, password_hash) VALUES ($1, $2) RETURNING id",
            email, await hash_password(password) if password else None,
        )
    assert user_id is not None
    return user_id


async def create_api_key(conn: Conn, user_id: int, name: str = "") -> str:
    """Store a new key (hashed) and return the token, which is shown only this once."""
    token, _ = await create_api_key_row(conn, user_id, name)
    return token


async def create_api_key_row(conn: Conn, user_id: int, name: str) -> tuple[str, asyncpg.Record]:
    key = new_api_key()
    row = await conn.fetchrow(
        "INSERT INTO api_keys (user_id, prefix, secret_hash, name) VALUES ($1, $2, $3, $4)"
        " RETURNING id, prefix, name, created_at, last_used_at",
        user_id, key.prefix, key.secret_hash, name,
    )
    assert row is not None
    return key.token, row


async def user_for_api_key(conn: Conn, token: str) -> int | None:
    """The user behind a presented API key, or None for a malformed, unknown or revoked one."""
    parts = split_api_key(token.strip())
    if parts is None:
        return None
    prefix, secret = parts
    row = await conn.fetchrow(
        "SELECT id, user_id, secret_hash FROM api_keys WHERE prefix = $1 AND revoked_at IS NULL", prefix
    )
    if row is None or not api_secret_matches(secret, bytes(row["secret_hash"])):
        return None
    # Written at most once a minute per key: a busy script must not turn every call into a write.
    await conn.execute(
        "UPDATE api_keys SET last_used_at = now() WHERE id = $1"
        " AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
        row["id"],
    )
    user_id: int = row["user_id"]
    return user_id
