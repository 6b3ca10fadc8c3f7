"""A campaign's window of delivery batches: at most `size` published and not yet finished.

Each partition of the deliveries topic is worked in order, so publishing all 500 batches of a
100,000-recipient campaign at once put another user's one-recipient mail behind a quarter or more
of them. Instead the fan-out publishes the first `size` batches and each finished batch publishes
the next (the sender worker calls `finished` once the batch's outcomes and deferrals are written,
before its offset is committed): a batch published now waits behind about `size / partitions`
batches of each campaign under way, while the campaign keeps every partition busy.

The window is bookkeeping, never the only copy of the work. Recipients are rows in Postgres, and
publishing a range twice is harmless (final recipients are skipped, claims are atomic): a crash
between publishing and committing publishes that range again, a crash before `finished` has its
batch redelivered, and a window that lost track (a batch dead-lettered) starts again from the
first open recipient on a resume or from the stall sweeper. Deferred batches (limits, retries) go
back through `deferred_batches`: one put off briefly keeps its place in the window, one put off for
longer (a retry's back-off, a daily limit) gives it to the next batch.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg

from shared.commands import DeliveryBatch, Publish
from shared.db import Conn

_LARGEST_POSITION = 2**31 - 1
# A batch handed back for less than this (its time budget ran out, a claim's lease, the next minute
# of a rate limit) keeps its place: the campaign is still working through it. A longer wait (a
# retry's back-off, a daily limit, a paused account) gives the place to the next batch.
SHORT_WAIT_SECONDS = 60.0


@dataclass(frozen=True)
class Window:
    batch_size: int  # recipients per batch
    size: int  # batches out at once per campaign


async def restart(conn: Conn, campaign_id: uuid.UUID) -> None:
    """A new pass from the first open recipient with nothing out (a start, a resume, the sweeper).
    Batches still out from before are harmless: they finish as usual and free nothing new."""
    await conn.execute(
        "INSERT INTO send_windows (campaign_id) VALUES ($1) ON CONFLICT (campaign_id) DO UPDATE"
        " SET next_position = 1, open_batches = '{}', updated_at = now()",
        campaign_id)


async def fill(conn: Conn, campaign_id: uuid.UUID, publish: Publish, window: Window,
               finished_first: int | None = None) -> int:
    """Inside a transaction: take `finished_first` (a finished batch) out of the window, then publish
    batches of open recipients until `window.size` are out; returns how many were published.

    Publishing happens before the caller commits: if it fails, nothing is recorded as out.
    """
    row = await conn.fetchrow(
        """
        SELECT w.next_position, w.open_batches, c.status, c.sender_id, c.recipient_count,
               (s.per_minute IS NULL AND s.per_day IS NULL) AS spread
          FROM send_windows w JOIN campaigns c ON c.id = w.campaign_id JOIN senders s ON s.id = c.sender_id
         WHERE w.campaign_id = $1
           FOR UPDATE OF w
        """,
        campaign_id,
    )
    if row is None:
        return 0  # started before windows existed: all its batches were published at once
    out = list(row["open_batches"])
    if finished_first is not None and not await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM deferred_batches WHERE campaign_id = $1 AND first_position = $2"
        " AND not_before <= now() + make_interval(secs => $3))",
        campaign_id, finished_first, SHORT_WAIT_SECONDS,
    ):
        out = [first for first in out if first != finished_first]
    position, last_loaded = row["next_position"], row["recipient_count"]
    batches: list[DeliveryBatch] = []
    if row["status"] == "sending":
        while len(out) < window.size and position <= last_loaded:
            # Ranges whose recipients are all final already (a second pass) are stepped over.
            first = await conn.fetchval(
                "SELECT min(position) FROM recipients WHERE campaign_id = $1 AND position >= $2"
                " AND status IN ('pending', 'sending')",
                campaign_id, position)
            if first is None or first > last_loaded:
                position = last_loaded + 1
                break
            last = min(first + window.batch_size - 1, last_loaded)
            batches.append(DeliveryBatch(campaign_id, row["sender_id"], first, last, row["spread"]))
            out.append(first)
            position = last + 1
    if out != list(row["open_batches"]) or position != row["next_position"]:
        await conn.execute(
            "UPDATE send_windows SET next_position = $2, open_batches = $3, updated_at = now() WHERE campaign_id = $1",
            campaign_id, position, out)
    if batches:
        await publish(batches)
    return len(batches)


async def top_up(db: asyncpg.Pool, campaign_id: uuid.UUID, publish: Publish, window: Window) -> int:
    """Publish what the window has room for (after a start, or a chunk of recipients loaded)."""
    async with db.acquire() as conn, conn.transaction():
        return await fill(conn, campaign_id, publish, window)


async def finished(db: asyncpg.Pool, batch: DeliveryBatch, publish: Publish, window: Window) -> int:
    """A sender worker is done with `batch` (sent, deferred, handed back or paused): its place in
    the window goes to the campaign's next batch. Safe to repeat for a redelivered batch."""
    if batch.first > _LARGEST_POSITION:
        return 0  # no window ever holds it
    async with db.acquire() as conn, conn.transaction():
        return await fill(conn, batch.campaign_id, publish, window, finished_first=batch.first)
