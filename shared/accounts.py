"""Accounts: registration, password log-in with throttling, browser sessions, API keys."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from shared.addresses import check_address
from shared.credentials import hash_password, verify_password
from shared.db import Conn
from shared.errors import InputError
from shared.users import create_api_key_row

SESSION_DAYS = 14
MIN_PASSWORD = 8
MAX_PASSWORD = 1024
# Failed log-ins allowed in the window, per address and per client, before answering 429.
FAILURES_PER_EMAIL = 5
FAILURES_PER_CLIENT = 20
FAILURE_WINDOW_MINUTES = 15
# Verifying against this keeps unknown addresses as slow as known ones (no user enumeration).
_DUMMY_HASH = hash_password(secrets.token_urlsafe(16))


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
        raise InputError("invalid_email", field, value=email, reason=checked.reason)
    return checked.normalized


async def register(conn: Conn, email: str, password: str) -> int:
    try:
        user_id: int = await conn.fetchval(
            "INSERT INTO users (email, password_hash) VALUES ($1, $2) RETURNING id",
            email, hash_password(password),
        )
    except asyncpg.UniqueViolationError:
        raise InputError("email_taken", "email") from None
    return user_id


async def authenticate(conn: Conn, email: str, password: str, client: str) -> int | None:
    """The user id for correct credentials, None for wrong ones; TooManyAttempts when throttled."""
    counts = await conn.fetchrow(
        """
        SELECT count(*) FILTER (WHERE lower(email) = lower($1)) AS by_email,
               count(*) FILTER (WHERE client = $2) AS by_client
          FROM login_failures
         WHERE at > now() - make_interval(mins => $3) AND (lower(email) = lower($1) OR client = $2)
        """,
        email, client, FAILURE_WINDOW_MINUTES,
    )
    assert counts is not None
    if counts["by_email"] >= FAILURES_PER_EMAIL or counts["by_client"] >= FAILURES_PER_CLIENT:
        raise TooManyAttempts(FAILURE_WINDOW_MINUTES * 60)
    row = await conn.fetchrow("SELECT id, password_hash FROM users WHERE lower(email) = lower($1)", email)
    stored = row["password_hash"] if row and row["password_hash"] else _DUMMY_HASH
    if row is not None and verify_password(stored, password):
        await conn.execute("DELETE FROM login_failures WHERE lower(email) = lower($1)", email)
        user_id: int = row["id"]
        return user_id
    if row is None:
        verify_password(_DUMMY_HASH, password)
    await conn.execute("INSERT INTO login_failures (email, client) VALUES ($1, $2)", email, client)
    return None


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


async def change_password(conn: Conn, user_id: int, current: str, new: str, keep_session: str | None) -> bool:
    """False when `current` is wrong. Other sessions are ended: a changed password locks them out."""
    stored = await conn.fetchval("SELECT password_hash FROM users WHERE id = $1", user_id)
    if not stored or not verify_password(stored, current):
        return False
    async with conn.transaction():
        await conn.execute("UPDATE users SET password_hash = $2 WHERE id = $1", user_id, hash_password(new))
        await conn.execute(
            "DELETE FROM sessions WHERE user_id = $1 AND token_hash <> $2",
            user_id, _digest(keep_session) if keep_session else b"",
        )
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
