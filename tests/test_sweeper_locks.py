"""The stall sweeper's locks against the fan-out's and the sender's, on the real Postgres (issue 10).

A worker's log showed "deadlock detected" under a storm of pauses and cancels. The sweeper locked
the stalled campaigns' rows first and then waited for each user's window lock (send_window.py),
while every filler takes the window lock first and then touches the campaign's row: the fan-out
opening a campaign's window (the new row's foreign key waits for the campaign row), or the sender's
finished batch writing why a campaign waits. Here two connections are interleaved by hand: the
filler holds the window lock, the sweeper starts and waits, the filler goes on to the row.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg

from shared import recipients, send_window, sweeper
from shared.accounts import ensure_user
from shared.commands import DeliveryBatch
from shared.send_window import Window
from tests.helpers import eventually


class Published:
    def __init__(self) -> None:
        self.batches: list[DeliveryBatch] = []

    async def __call__(self, batches: list[DeliveryBatch]) -> None:
        self.batches.extend(batches)


async def one_user_campaigns(db: asyncpg.Pool) -> tuple[uuid.UUID, uuid.UUID]:
    """A campaign stalled for two minutes, and another one of its user's that is moving."""
    stalled, moving = uuid.uuid4(), uuid.uuid4()
    async with db.acquire() as conn:
        user_id = await ensure_user(conn, f"locks-{stalled.hex[:8]}@example.com")
        sender_id = await conn.fetchval(
            "INSERT INTO senders (user_id, from_email, host, port, security, username, password_encrypted)"
            " VALUES ($1, 'a@example.com', 'smtp.example.com', 465, 'tls', 'a', '\\x00') RETURNING id", user_id)
        for campaign_id, idle in ((stalled, 120.0), (moving, 0.0)):
            await conn.execute(
                "INSERT INTO campaigns (id, user_id, sender_id, status, subject, html_body, recipient_count,"
                " recipients_loaded, updated_at) VALUES ($1, $2, $3, 'sending', 's', 'h', 4, true,"
                " now() - make_interval(secs => $4))", campaign_id, user_id, sender_id, idle)
            await recipients.copy_in(conn, campaign_id, ((f"r{n}@example.com", {}) for n in range(1, 5)))
    return stalled, moving


async def sweeper_waits_for_a_window(db: asyncpg.Pool, filler_pid: int) -> bool:
    return bool(await db.fetchval(
        "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND pid <> $1"
        " AND wait_event_type = 'Lock' AND wait_event = 'advisory')", filler_pid))


async def sweep_beside(db: asyncpg.Pool, filler: Any, published: Published, window: int = 8) -> asyncio.Task[int]:
    """The sweeper, started while `filler` holds the user's window lock, once it waits for it."""
    pid = await filler.fetchval("SELECT pg_backend_pid()")
    sweeping = asyncio.create_task(sweeper.republish_stalled(db, published, batch_size=2, idle_seconds=60,
                                                             window_size=window))
    await eventually(lambda: sweeper_waits_for_a_window(db, pid), 30, "the sweeper waits for the user's window")
    return sweeping


async def test_the_sweeper_and_the_fanout_opening_a_window_do_not_deadlock(db: asyncpg.Pool) -> None:
    stalled, moving = await one_user_campaigns(db)
    published = Published()
    async with db.acquire() as fanout:
        async with fanout.transaction():
            await send_window.restart(fanout, moving)  # the user's window lock, held until the commit
            sweeping = await sweep_beside(db, fanout, published)
            # The fan-out opens the stalled campaign's window: the new row's key check needs the
            # campaign row, which the old sweeper held while it waited (deadlock detected after 1 s).
            await send_window.restart(fanout, stalled)
        swept = await asyncio.wait_for(sweeping, 60)
    assert swept >= 1
    assert [(b.first, b.last) for b in published.batches if b.campaign_id == stalled] == [(1, 2), (3, 4)]


async def test_the_sweeper_and_a_finished_batch_saying_who_waits_do_not_deadlock(db: asyncpg.Pool) -> None:
    stalled, moving = await one_user_campaigns(db)
    full = Window(batch_size=2, size=2)
    async with db.acquire() as conn:
        await send_window.restart(conn, moving)
    await send_window.top_up(db, moving, Published(), full)  # the moving one has both places
    async with db.acquire() as conn:
        await send_window.restart(conn, stalled)
    published = Published()
    async with db.acquire() as sender:
        async with sender.transaction():  # what send_window.finished does, the lock first
            await send_window.lock_window(sender, await sender.fetchval(
                "SELECT user_id FROM campaigns WHERE id = $1", moving))
            sweeping = await sweep_beside(db, sender, published, full.size)
            # No place for the stalled one: the filler writes why on its row.
            await send_window.fill(sender, moving, Published(), full)
        assert await asyncio.wait_for(sweeping, 60) >= 1
    # Restarted, and still without a place: it says why.
    assert not [b for b in published.batches if b.campaign_id == stalled]
    reason = await db.fetchval("SELECT status_reason FROM campaigns WHERE id = $1", stalled)
    assert reason == send_window.OWN_MAIL_FIRST
