"""Deferred delivery batches: work put off by a sender worker, published again when due."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncpg

from shared.work import DeliveryBatch

Publish = Callable[[list[DeliveryBatch]], Awaitable[None]]


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
