"""Deferred delivery batches: work put off by a sender worker, published again when due."""

from __future__ import annotations

import asyncpg

from shared.commands import DeliveryBatch, Publish
from shared.db import Conn


async def republish_due(db: asyncpg.Pool, publish: Publish, limit: int = 500) -> int:
    """Hand due batches back to Kafka; they leave the table only if publishing succeeded.

    SKIP LOCKED lets any number of fan-out workers do this at once without taking the same rows.
    """
    async with db.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            """
            DELETE FROM deferred_batches WHERE id IN (
                SELECT id FROM deferred_batches WHERE not_before <= now()
                 ORDER BY not_before LIMIT $1 FOR UPDATE SKIP LOCKED)
            RETURNING campaign_id, sender_id, first_position, last_position, spread
            """,
            limit,
        )
        unique = {
            (r["campaign_id"], r["sender_id"], r["first_position"], r["last_position"], r["spread"]) for r in rows
        }
        if unique:
            await publish([DeliveryBatch(*key) for key in sorted(unique)])
    return len(unique)


async def defer(conn: Conn, batch: DeliveryBatch, not_before: float, reason: str) -> None:
    """Put a batch off until `not_before` (epoch seconds); `republish_due` hands it back."""
    await conn.execute(
        "INSERT INTO deferred_batches (campaign_id, sender_id, first_position, last_position, spread,"
        " not_before, reason) VALUES ($1, $2, $3, $4, $5, to_timestamp($6), $7)",
        batch.campaign_id, batch.sender_id, batch.first, batch.last, batch.spread, not_before,
        reason.replace("\x00", "")[:200],
    )
