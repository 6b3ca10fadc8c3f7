"""The campaign state machine's clock: what moves each non-final state on when nothing else does.

Every state but the final ones (finished, cancelled) has something that moves it and a longest
wait; this module is the last resort behind each, run by the fan-out workers every
`stall_seconds / 10`:

| state                         | moved on by                         | longest wait, then                    |
|-------------------------------|-------------------------------------|---------------------------------------|
| draft                         | the user (start)                    | none: nothing is promised yet         |
| queued                        | the fan-out taking the command      | `stall_seconds`: command written again |
| queued, its big file waiting  | a file reader taking it (file_jobs; | each reading ahead: its time limit    |
| for a reader (reason shown)   | one per user at a time)             | (`file_job_seconds`); a dead reader's |
|                               |                                     | lease (`file_job_lease_seconds`)      |
| sending, loading recipients   | each committed chunk (heartbeat)    | `stall_seconds`: command written again |
| sending, loaded               | each finished batch (heartbeat),    | `stall_seconds`: its window starts    |
|                               | which publishes the next one        | again from the first open recipient   |
| sending, work deferred        | the deferral's time (rate limits,   | its `not_before`, at most 24 h (a     |
|                               | retry back-off)                     | daily limit); then republished        |
| paused                        | the user (resume), always with the  | none: the reason says what to fix     |
|                               | reason when a worker paused it      |                                       |
| upload inspecting             | a file reader counting (progress);  | as a queued campaign's file above;    |
|                               | a correction supersedes it          | no reading queued: `stall_seconds`    |

Work dead-lettered after repeated failures never waits on this: the consumer pauses the campaign
(or fails the upload) with the reason at once (worker_image/__main__.py). Re-issuing work is
harmless when the original was only slow: every command is idempotent, final recipients are never
sent again and a claim stops two workers sending to one recipient.

Locks: rows are taken with SKIP LOCKED (a row someone else holds is left to the next sweep), and a
stalled campaign is restarted in a transaction of its own, its user's window lock first, as every
filler takes it (send_window.py). The sweeper once locked up to 20 campaigns and then waited for
their users' window locks one by one: a fan-out opening one of those campaigns' windows (its
foreign key waits for the campaign row), or another sweeper holding the same users in another
order, made a deadlock, and Postgres aborted one of them.
"""

from __future__ import annotations

import asyncpg

from shared import file_jobs, outbox, send_window
from shared.commands import CampaignCommand, Publish
from shared.send_window import Window


async def requeue_stuck(db: asyncpg.Pool, idle_seconds: float) -> int:
    """Write the command again for campaigns queued or loading, and queue a reading again for
    uploads being inspected, that have not moved for `idle_seconds` and have nothing waiting in the
    outbox or the file readers' queue (whose own leases and time limits bound those waits)."""
    async with db.acquire() as conn, conn.transaction():
        campaigns = await conn.fetch(
            """
            SELECT id FROM campaigns c
             WHERE (c.status = 'queued' OR (c.status = 'sending' AND NOT c.recipients_loaded))
               AND c.updated_at < now() - make_interval(secs => $1)
               AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.key = convert_to(c.id::text, 'UTF8'))
               AND NOT EXISTS (SELECT 1 FROM file_jobs j WHERE j.subject = c.id)
             LIMIT 50
               FOR UPDATE OF c SKIP LOCKED
            """,
            idle_seconds,
        )
        upload_rows = await conn.fetch(
            """
            SELECT id, user_id FROM uploads u
             WHERE u.status = 'inspecting' AND u.updated_at < now() - make_interval(secs => $1)
               AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.key = convert_to(u.id::text, 'UTF8'))
               AND NOT EXISTS (SELECT 1 FROM file_jobs j WHERE j.subject = u.id)
             LIMIT 50
               FOR UPDATE OF u SKIP LOCKED
            """,
            idle_seconds,
        )
        for row in campaigns:
            await outbox.add(conn, CampaignCommand(row["id"], "start"))
        for row in upload_rows:
            await file_jobs.enqueue(conn, row["id"], "inspect", row["user_id"], supersede=False)
        if campaigns:
            await conn.execute("UPDATE campaigns SET updated_at = now() WHERE id = ANY($1::uuid[])",
                               [r["id"] for r in campaigns])
        if upload_rows:
            await conn.execute("UPDATE uploads SET updated_at = now() WHERE id = ANY($1::uuid[])",
                               [r["id"] for r in upload_rows])
    return len(campaigns) + len(upload_rows)


# A sending campaign with open recipients, no deferred work, and neither a finished batch nor a claim
# for `idle_seconds` ($1).
_STALLED_SQL = """
SELECT c.id, c.user_id FROM campaigns c
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
"""


async def republish_stalled(db: asyncpg.Pool, publish: Publish, batch_size: int, idle_seconds: float,
                            window_size: int = 8) -> int:
    """The safety net: a sending campaign with open recipients, no deferred work and no batch
    finished for `idle_seconds` has lost its Kafka work somewhere (a record dead-lettered after an
    outage, a bug): its window starts again from the first open recipient. Harmless when wrong:
    final recipients are skipped and claims stop two workers sending one recipient."""
    window = Window(batch_size, window_size)
    async with db.acquire() as conn:
        found = await conn.fetch(_STALLED_SQL + " ORDER BY c.user_id, c.id LIMIT 20", idle_seconds)
    swept = 0
    for row in found:  # published before each commit: a failure leaves the rest to the next sweep
        async with db.acquire() as conn, conn.transaction():
            await send_window.lock_window(conn, row["user_id"])  # before the campaign's row: the lock order
            # Still stalled now that its user's window is ours (another sweeper may have just restarted it).
            if await conn.fetchval(_STALLED_SQL + " AND c.id = $2 FOR NO KEY UPDATE OF c SKIP LOCKED",
                                   idle_seconds, row["id"]) is None:
                continue
            await conn.execute("UPDATE campaigns SET updated_at = now() WHERE id = $1", row["id"])
            await send_window.restart(conn, row["id"])
            await send_window.fill(conn, row["id"], publish, window)
        swept += 1
    return swept
