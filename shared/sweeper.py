"""The campaign state machine's clock: what moves each non-final state on when nothing else does.

Every state but the final ones (finished, cancelled) has something that moves it and a longest
wait; this module is the last resort behind each, run by the fan-out workers every
`stall_seconds / 10`:

| state                         | moved on by                         | longest wait, then                    |
|-------------------------------|-------------------------------------|---------------------------------------|
| draft                         | the user (start)                    | none: nothing is promised yet         |
| queued                        | the fan-out taking the command      | `stall_seconds`: command written again |
| sending, loading recipients   | each committed chunk (heartbeat)    | `stall_seconds`: command written again |
| sending, loaded               | each finished batch (heartbeat)     | `stall_seconds`: batches published again |
| sending, work deferred        | the deferral's time (rate limits,   | its `not_before`, at most 24 h (a     |
|                               | retry back-off)                     | daily limit); then republished        |
| paused                        | the user (resume), always with the  | none: the reason says what to fix     |
|                               | reason when a worker paused it      |                                       |
| upload inspecting             | the fan-out counting (progress)     | `stall_seconds`: command written again |

Work dead-lettered after repeated failures never waits on this: the consumer pauses the campaign
(or fails the upload) with the reason at once (worker_image/__main__.py). Re-issuing work is
harmless when the original was only slow: every command is idempotent, final recipients are never
sent again and a claim stops two workers sending to one recipient.
"""

from __future__ import annotations

import asyncpg

from shared import outbox
from shared.commands import CampaignCommand, DeliveryBatch, InspectUpload, Publish, batch_ranges


async def requeue_stuck(db: asyncpg.Pool, idle_seconds: float) -> int:
    """Write the command again for campaigns queued or loading, and uploads being inspected, that
    have not moved for `idle_seconds` and have no command waiting in the outbox."""
    async with db.acquire() as conn, conn.transaction():
        campaigns = await conn.fetch(
            """
            SELECT id FROM campaigns c
             WHERE (c.status = 'queued' OR (c.status = 'sending' AND NOT c.recipients_loaded))
               AND c.updated_at < now() - make_interval(secs => $1)
               AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.key = convert_to(c.id::text, 'UTF8'))
             LIMIT 50
               FOR UPDATE OF c SKIP LOCKED
            """,
            idle_seconds,
        )
        upload_rows = await conn.fetch(
            """
            SELECT id FROM uploads u
             WHERE u.status = 'inspecting' AND u.updated_at < now() - make_interval(secs => $1)
               AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.key = convert_to(u.id::text, 'UTF8'))
             LIMIT 50
               FOR UPDATE OF u SKIP LOCKED
            """,
            idle_seconds,
        )
        for row in campaigns:
            await outbox.add(conn, CampaignCommand(row["id"], "start"))
        for row in upload_rows:
            await outbox.add(conn, InspectUpload(row["id"]))
        if campaigns:
            await conn.execute("UPDATE campaigns SET updated_at = now() WHERE id = ANY($1::uuid[])",
                               [r["id"] for r in campaigns])
        if upload_rows:
            await conn.execute("UPDATE uploads SET updated_at = now() WHERE id = ANY($1::uuid[])",
                               [r["id"] for r in upload_rows])
    return len(campaigns) + len(upload_rows)


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
