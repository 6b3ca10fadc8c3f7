"""Stored answers for `Idempotency-Key`: one per (user, operation, key), kept with the request's digest."""

from __future__ import annotations

from dataclasses import dataclass

from shared.db import Conn


@dataclass(frozen=True)
class StoredAnswer:
    request_hash: bytes
    status_code: int
    body: str


async def lock(conn: Conn, user_id: int, operation: str, key: str) -> None:
    """Serialise concurrent retries of one key until the transaction ends; the loser then finds the answer."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"{user_id}:{operation}:{key}")


async def find(conn: Conn, user_id: int, operation: str, key: str) -> StoredAnswer | None:
    row = await conn.fetchrow(
        "SELECT request_hash, status_code, response FROM idempotency_keys"
        " WHERE user_id = $1 AND operation = $2 AND key = $3",
        user_id, operation, key,
    )
    return StoredAnswer(bytes(row["request_hash"]), row["status_code"], row["response"]) if row else None


async def remember(conn: Conn, user_id: int, operation: str, key: str, answer: StoredAnswer) -> None:
    await conn.execute(
        "INSERT INTO idempotency_keys (user_id, key, operation, request_hash, status_code, response)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        user_id, key, operation, answer.request_hash, answer.status_code, answer.body,
    )
