"""Deferred batches and the stall sweeper, against Postgres: what goes back to Kafka, and when."""

from __future__ import annotations

import time
import uuid

import asyncpg
import pytest

from shared import deferrals, recipients, sweeper
from shared.accounts import ensure_user
from shared.commands import DeliveryBatch


class Published:
    def __init__(self, fail: bool = False) -> None:
        self.batches: list[DeliveryBatch] = []
        self.fail = fail

    async def __call__(self, batches: list[DeliveryBatch]) -> None:
        if self.fail:
            raise ConnectionError("broker away")
        self.batches.extend(batches)


async def new_campaign(db: asyncpg.Pool, count: int, *, updated_ago: float = 0) -> tuple[uuid.UUID, int]:
    campaign_id = uuid.uuid4()
    async with db.acquire() as conn:
        user_id = await ensure_user(conn, f"defer-{campaign_id.hex[:8]}@example.com")
        sender_id = await conn.fetchval(
            "INSERT INTO senders (user_id, from_email, host, port, security, username, password_encrypted)"
            " VALUES ($1, 'a@example.com', 'smtp.example.com', 465, 'tls', 'a', '\\x00') RETURNING id", user_id)
        await conn.execute(
            "INSERT INTO campaigns (id, user_id, sender_id, status, subject, html_body, recipient_count,"
            " recipients_loaded, updated_at) VALUES ($1, $2, $3, 'sending', 's', 'h', $4, true,"
            " now() - make_interval(secs => $5))",
            campaign_id, user_id, sender_id, count, updated_ago)
        await recipients.copy_in(conn, campaign_id, ((f"r{n}@example.com", {}) for n in range(1, count + 1)))
    return campaign_id, sender_id


async def test_only_due_batches_go_back_and_only_once(db: asyncpg.Pool) -> None:
    campaign_id, sender_id = await new_campaign(db, 10)
    due = DeliveryBatch(campaign_id, sender_id, 1, 5)
    later = DeliveryBatch(campaign_id, sender_id, 6, 10)
    async with db.acquire() as conn:
        await deferrals.defer(conn, due, time.time() - 1, "451 try later")
        await deferrals.defer(conn, due, time.time() - 1, "rate limit")  # the same range twice
        await deferrals.defer(conn, later, time.time() + 3600, "sender paused")
    published = Published()
    while await deferrals.republish_due(db, published):
        pass
    mine = [b for b in published.batches if b.campaign_id == campaign_id]
    assert mine == [due]
    left = await db.fetchval("SELECT count(*) FROM deferred_batches WHERE campaign_id = $1", campaign_id)
    assert left == 1


async def test_a_failed_publish_keeps_the_deferral(db: asyncpg.Pool) -> None:
    campaign_id, sender_id = await new_campaign(db, 3)
    async with db.acquire() as conn:
        await deferrals.defer(conn, DeliveryBatch(campaign_id, sender_id, 1, 3), time.time() - 1, "retry")
    with pytest.raises(ConnectionError):
        await deferrals.republish_due(db, Published(fail=True))
    assert await db.fetchval("SELECT count(*) FROM deferred_batches WHERE campaign_id = $1", campaign_id) == 1
    published = Published()
    await deferrals.republish_due(db, published)
    assert DeliveryBatch(campaign_id, sender_id, 1, 3) in published.batches


async def test_the_sweeper_republishes_a_campaign_that_stopped_moving(db: asyncpg.Pool) -> None:
    stalled, _ = await new_campaign(db, 7, updated_ago=120)
    moving, _ = await new_campaign(db, 7, updated_ago=1)
    being_sent, _ = await new_campaign(db, 7, updated_ago=120)
    async with db.acquire() as conn:
        await recipients.claim(conn, being_sent, [1])  # a worker holds a recent claim: leave it alone
    published = Published()
    await sweeper.republish_stalled(db, published, batch_size=3, idle_seconds=60)
    swept = {b.campaign_id for b in published.batches}
    assert stalled in swept and moving not in swept and being_sent not in swept
    ranges = [(b.first, b.last) for b in published.batches if b.campaign_id == stalled]
    assert ranges == [(1, 3), (4, 6), (7, 7)]
    again = Published()
    await sweeper.republish_stalled(db, again, batch_size=3, idle_seconds=60)
    assert stalled not in {b.campaign_id for b in again.batches}  # its heartbeat was renewed
