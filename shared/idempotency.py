"""Stored answers for `Idempotency-Key`: one per (user, operation, key), kept with the request's digest.

A request first *claims* its key (a row with status 0) in a short transaction of its own, does
its work holding no connection, then stores the answer — so concurrent retries never hold
connections waiting on each other (holding one across the work let five concurrent requests
take the whole pool and freeze the API). A claim whose request died is taken over after CLAIM_SECONDS.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.db import Conn

IN_PROGRESS = 0
CLAIM_SECONDS = 60


@dataclass(frozen=True)
class StoredAnswer:
    request_hash: bytes
    status_code: int  # IN_PROGRESS while the first request is still at work
    body: str


async def claim(conn: Conn, user_id: int, operation: str, key: str, request_hash: bytes) -> StoredAnswer | None:
    """None when this request now owns the key; else what is stored (an answer, or IN_PROGRESS)."""
    owned = await conn.fetchval(
        """
        INSERT INTO idempotency_keys (user_id, key, operation, request_hash, status_code, response)
        VALUES ($1, $2, $3, $4, 0, 'null')
        ON CONFLICT (user_id, operation, key) DO UPDATE SET request_hash = EXCLUDED.request_hash, created_at = now()
           WHERE idempotency_keys.status_code = 0
             AND idempotency_keys.created_at < now() - make_interval(secs => $5)
        RETURNING 1
        """,
        user_id, key, operation, request_hash, CLAIM_SECONDS,
    )
    if owned:
        return None
    row = await conn.fetchrow(
        "SELECT request_hash, status_code, response FROM idempotency_keys"
        " WHERE user_id = $1 AND operation = $2 AND key = $3",
        user_id, operation, key,
    )
    assert row is not None
    return StoredAnswer(bytes(row["request_hash"]), row["status_code"], row["response"])


async def remember(conn: Conn, user_id: int, operation: str, key: str, answer: StoredAnswer) -> None:
    await conn.execute(
        "UPDATE idempotency_keys SET status_code = $4, response = $5"
        " WHERE user_id = $1 AND operation = $2 AND key = $3",
        user_id, operation, key, answer.status_code, answer.body,
    )


async def release(conn: Conn, user_id: int, operation: str, key: str) -> None:
    """Forget a claim whose work failed, so that a retry may do it."""
    await conn.execute(
        "DELETE FROM idempotency_keys WHERE user_id = $1 AND operation = $2 AND key = $3 AND status_code = 0",
        user_id, operation, key,
    )
