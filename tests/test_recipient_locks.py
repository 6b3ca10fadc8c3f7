"""A cancel and a claim lock recipient rows in one order, on the real Postgres (issue 12).

`recipients.skip_open` (run by a cancel) updated the campaign's pending rows in whatever order its
plan read them — a bitmap or sequential scan reads them as they lie on disk, and a row written
again (released, retried) moves to the end — while the claim (`CLAIM_SQL`) locks its chunk in
position order. In a storm of cancels the two could each hold a row the other wanted next:
"deadlock detected", and one of them fails. Both now lock `ORDER BY position … FOR UPDATE`,
whatever the plan. Here three connections are interleaved by hand, as in test_sweeper_locks.py:
one holds a row so that the cancel stops between its rows, the claim then takes what it can, and
the first lets go — once with the cancel reading the rows as they lie on disk, once the claim.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import pytest

from shared import recipients
from shared.accounts import ensure_user
from tests.helpers import eventually


async def campaign_lying_as(db: asyncpg.Pool, order: list[int]) -> tuple[uuid.UUID, list[int]]:
    """A sending campaign of pending recipients written in `order` (as rows claimed and handed back
    lie: their new versions go where there is room); the positions in the order they lie on disk."""
    campaign_id = uuid.uuid4()
    async with db.acquire() as conn:
        user_id = await ensure_user(conn, f"rowlocks-{campaign_id.hex[:8]}@example.com")
        await conn.execute("INSERT INTO campaigns (id, user_id, status, subject, html_body, recipient_count,"
                           " recipients_loaded) VALUES ($1, $2, 'sending', 's', 'h', $3, true)",
                           campaign_id, user_id, len(order))
        await conn.execute("INSERT INTO recipients (campaign_id, position, email, fields)"
                           " SELECT $1, p, 'r' || p || '@example.com', '{}' FROM unnest($2::int[]) WITH ORDINALITY"
                           " AS u(p, n) ORDER BY n", campaign_id, order)
        rows = await conn.fetch("SELECT position FROM recipients WHERE campaign_id = $1 ORDER BY ctid", campaign_id)
    return campaign_id, [r["position"] for r in rows]


def cancel_reads_on_disk(on_disk: list[int]) -> tuple[int, int, int]:
    """(held, first, later): the cancel, reading as the rows lie, locks `later`, stops at `held`, and
    wants `first` next; the claim of [first, later] locks `first` and wants `later`."""
    found = [(h, a, x) for i, x in enumerate(on_disk) for j, h in enumerate(on_disk[i + 1:], i + 1)
             for a in on_disk[j + 1:] if a < x and a < h]
    assert found, on_disk  # 3, 4, 2, 1 on one page: held 2, first 1, later 4
    return found[-1]


def claim_reads_on_disk(on_disk: list[int]) -> tuple[int, int, int]:
    """(held, first, later): the cancel, in position order, locks `first` and stops at `held`; the
    claim of [first, later], reading as the rows lie, locks `later` and wants `first`."""
    found = [(h, a, x) for i, x in enumerate(on_disk) for a in on_disk[i + 1:] for h in on_disk if a < h < x]
    assert found, on_disk  # 3, 4, 2, 1: held 2, first 1, later 3
    return found[0]


async def waits_for_a_row(db: asyncpg.Pool, pid: int) -> bool:
    return bool(await db.fetchval("SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1", pid))


async def reading_as_on_disk(conn: Any) -> None:
    """Read as a bitmap or sequential scan does, in the order the rows lie on disk: a big campaign
    gets that plan by itself; the order the rows are locked in must not depend on it."""
    await conn.execute("SET LOCAL enable_indexscan = off")


@pytest.mark.parametrize("on_disk_reader", ["cancel", "claim"])
async def test_a_cancel_and_a_claim_lock_rows_in_one_order(db: asyncpg.Pool, on_disk_reader: str) -> None:
    campaign_id, on_disk = await campaign_lying_as(db, [3, 4, 2, 1])
    held, first, later = (cancel_reads_on_disk if on_disk_reader == "cancel" else claim_reads_on_disk)(on_disk)
    async with db.acquire() as holder, db.acquire() as canceller, db.acquire() as claimer:
        cancel_pid = await canceller.fetchval("SELECT pg_backend_pid()")
        claim_pid = await claimer.fetchval("SELECT pg_backend_pid()")

        async def cancel() -> int:
            async with canceller.transaction():
                if on_disk_reader == "cancel":
                    await reading_as_on_disk(canceller)
                return await recipients.skip_open(canceller, campaign_id, "cancelled")

        async def claim() -> Any:
            async with claimer.transaction():
                if on_disk_reader == "claim":
                    await reading_as_on_disk(claimer)
                return await recipients.claim(claimer, campaign_id, [first, later])

        async with holder.transaction():
            await holder.execute("SELECT 1 FROM recipients WHERE campaign_id = $1 AND position = $2 FOR UPDATE",
                                 campaign_id, held)
            cancelling = asyncio.create_task(cancel())
            await eventually(lambda: waits_for_a_row(db, cancel_pid), 30, "the cancel waits for the held row")
            claiming = asyncio.create_task(claim())
            await eventually(lambda: waits_for_a_row(db, claim_pid), 30, "the claim waits for a row the cancel has")
        # The held row is free. In the old orders the cancel went on to a row the claim held while
        # the claim waited for one the cancel held: "deadlock detected" after deadlock_timeout (1 s).
        skipped, claimed = await asyncio.wait_for(asyncio.gather(cancelling, claiming), 60)
    assert (skipped, claimed) == (4, [])  # the cancel came first: nobody is claimed after it
    rows = await db.fetch("SELECT status, attempts FROM recipients WHERE campaign_id = $1", campaign_id)
    assert [(r["status"], r["attempts"]) for r in rows] == [("skipped", 0)] * 4
