"""Users and their API keys."""

from __future__ import annotations

import asyncpg

from shared.credentials import hash_password, new_api_key
from shared.db import Conn


async def ensure_user(conn: Conn, email: str, password: str | None = None) -> int:
    """The id of the user with this email (case-insensitive), created if missing."""
    user_id: int | None = await conn.fetchval("SELECT id FROM users WHERE lower(email) = lower($1)", email)
    if user_id is None:
        user_id = await conn.fetchval(
            "INSERT INTO users (email, password_hash) VALUES ($1, $2) RETURNING id",
            email, hash_password(password) if password else None,
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
