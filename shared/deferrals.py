"""Deferred delivery batches: work put off by a sender worker, published again when due."""

from __future__ import annotations

import asyncpg

from shared.commands import DeliveryBatch, Publish, batch_ranges
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


async def republish_stalled(db: asyncpg.Pool, publish: Publish, batch_size: int, idle_seconds: float) -> int:
    """The safety net: a sending campaign with open recipients, no deferred work and no batch
    finished for `idle_seconds` has lost its Kafka work somewhere (a record dead-lettered after an
    outage, a bug): publish all its batches again. Harmless when wrong: final recipients are
    skipped and claims stop two workers sending one recipient."""
    async with db.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            """
            SELECT c.id, c.sender_id, c.recipient_count, (s.per_minute IS NULL AND s.per_day IS NULL) AS spread
              FROM campaigns c JOIN senders s ON s.id = c.sender_id
             WHERE c.status = 'sending' AND c.recipients_loaded
               AND c.updated_at < now() - make_interval(secs => $1)
               AND NOT EXISTS (SELECT 1 FROM deferred_batches d WHERE d.campaign_id = c.id)
               AND EXISTS (SELECT 1 FROM recipients r
                            WHERE r.campaign_id = c.id AND r.status IN ('pending', 'sending'))
               -- A recent claim means a worker is (or was just) sending; it may be waiting out a
               -- Postgres outage with outcomes to write: re-publishing now could send twice.
               AND NOT EXISTS (SELECT 1 FROM recipients r
                                WHERE r.campaign_id = c.id AND r.status = 'sending'
                                  AND r.claimed_at > now() - make_interval(secs => $1))
             LIMIT 20
               FOR UPDATE OF c SKIP LOCKED
            """,
            idle_seconds,
        )
        batches = [
            DeliveryBatch(r["id"], r["sender_id"], first, last, r["spread"])
            for r in rows
            for first, last in batch_ranges(1, r["recipient_count"], batch_size)
        ]
        if rows:
            await conn.execute("UPDATE campaigns SET updated_at = now() WHERE id = ANY($1::uuid[])",
                               [r["id"] for r in rows])
            await publish(batches)
    return len(rows)


async def defer(conn: Conn, batch: DeliveryBatch, not_before: float, reason: str) -> None:
    """Put a batch off until `not_before` (epoch seconds); `republish_due` hands it back."""
    await conn.execute(
        "INSERT INTO deferred_batches (campaign_id, sender_id, first_position, last_position, spread,"
        " not_before, reason) VALUES ($1, $2, $3, $4, $5, to_timestamp($6), $7)",
        batch.campaign_id, batch.sender_id, batch.first, batch.last, batch.spread, not_before, reason[:200],
    )
