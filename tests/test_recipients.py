"""Recipient rows in Postgres: claims, leases, outcomes, skipping — the rules the scheduler relies on."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from shared import recipients
from shared.accounts import ensure_user
from shared.campaigns import states as campaign_states
from shared.recipients import RecipientResult


@pytest.fixture
async def campaign(db: asyncpg.Pool) -> AsyncIterator[uuid.UUID]:
    campaign_id = uuid.uuid4()
    async with db.acquire() as conn:
        user_id = await ensure_user(conn, f"rcpt-{campaign_id.hex[:8]}@example.com")
        await conn.execute("INSERT INTO campaigns (id, user_id, status, subject, html_body) VALUES"
                           " ($1, $2, 'sending', 's', 'h')", campaign_id, user_id)
        await recipients.copy_in(conn, campaign_id, ((f"r{n}@example.com", {"n": n}) for n in range(1, 11)))
    yield campaign_id
    async with db.acquire() as conn:
        await conn.execute("DELETE FROM campaigns WHERE id = $1", campaign_id)


async def states(db: asyncpg.Pool, campaign_id: uuid.UUID) -> dict[int, tuple[str, int, str | None]]:
    rows = await db.fetch("SELECT position, status, attempts, reply FROM recipients WHERE campaign_id = $1",
                          campaign_id)
    return {r["position"]: (r["status"], r["attempts"], r["reply"]) for r in rows}


async def test_copy_keeps_order_and_fields(db: asyncpg.Pool, campaign: uuid.UUID) -> None:
    async with db.acquire() as conn:
        claimed = await recipients.claim(conn, campaign, [3, 1, 2])
    assert [(c.position, c.email, c.fields, c.attempts) for c in claimed or []] == [
        (1, "r1@example.com", {"n": 1}, 1), (2, "r2@example.com", {"n": 2}, 1), (3, "r3@example.com", {"n": 3}, 1)]


async def test_a_claim_is_held_until_its_lease_runs_out(db: asyncpg.Pool, campaign: uuid.UUID) -> None:
    async with db.acquire() as conn:
        assert len(await recipients.claim(conn, campaign, [1, 2], lease=60) or []) == 2
        assert await recipients.claim(conn, campaign, [1, 2], lease=60) == []  # another worker holds them
        assert await recipients.due_positions(conn, campaign, 1, 3, lease=60) == [3]
        await conn.execute("UPDATE recipients SET claimed_at = now() - interval '61 seconds'"
                           " WHERE campaign_id = $1 AND position = 1", campaign)
        taken_over = await recipients.claim(conn, campaign, [1, 2], lease=60)
    assert [(c.position, c.attempts) for c in taken_over or []] == [(1, 2)]


@pytest.mark.parametrize("status", ["paused", "cancelled", "draft", "finished"])
async def test_a_campaign_not_open_for_sending_claims_nothing(db: asyncpg.Pool, campaign: uuid.UUID,
                                                              status: str) -> None:
    await db.execute("UPDATE campaigns SET status = $2 WHERE id = $1", campaign, status)
    async with db.acquire() as conn:
        assert await recipients.claim(conn, campaign, [1, 2]) is None  # checked in the claim's own statement
        assert await recipients.claim(conn, campaign, []) is None
        await conn.execute("UPDATE campaigns SET status = 'queued' WHERE id = $1", campaign)
        assert await recipients.claim(conn, campaign, []) == []
        claimed = await recipients.claim(conn, campaign, [2, 1])
    assert claimed is not None and [c.position for c in claimed] == [1, 2]
    assert (await states(db, campaign))[3] == ("pending", 0, None)
    assert set(recipients.OPEN_FOR_SENDING) == set(campaign_states.OPEN_FOR_SENDING)


async def test_outcomes_are_written_once_and_final_ones_stay(db: asyncpg.Pool, campaign: uuid.UUID) -> None:
    due = time.time() + 300
    async with db.acquire() as conn:
        await recipients.claim(conn, campaign, [1, 2, 3, 4])
        await recipients.record(conn, campaign, [
            RecipientResult(1, "sent", "250 ok"), RecipientResult(2, "failed", "550 no such user"),
            RecipientResult(3, "retry", "451 later", due), RecipientResult(4, "released", None),
        ])
        # A late duplicate write for a recipient no longer claimed changes nothing.
        await recipients.record(conn, campaign, [RecipientResult(1, "failed", "late")])
        assert await recipients.claim(conn, campaign, [1, 2, 3]) == []  # final, or not due yet
        next_due = await recipients.next_due(conn, campaign, 3, 4)
    found = await states(db, campaign)
    assert found[1] == ("sent", 1, "250 ok") and found[2] == ("failed", 1, "550 no such user")
    assert found[3] == ("pending", 1, "451 later")
    assert found[4] == ("pending", 0, None)  # released: not attempted, the attempt is handed back
    assert next_due is not None and next_due <= time.time() + 1  # 4 is due now; 3 only in five minutes


async def test_someone_suppressed_when_claimed_is_stored_with_no_attempt(db: asyncpg.Pool,
                                                                         campaign: uuid.UUID) -> None:
    # The claim counts an attempt; a recipient found on the suppression list then is skipped, not
    # mailed: the data (and the export that reads it) said 1 attempt. A retried one keeps its real ones.
    async with db.acquire() as conn:
        await recipients.claim(conn, campaign, [1, 2])
        await recipients.record(conn, campaign, [RecipientResult(2, "retry", "451 later", time.time())])
        await recipients.claim(conn, campaign, [2])  # its second attempt
        await recipients.record(conn, campaign, [RecipientResult(1, "skipped", "suppressed"),
                                                 RecipientResult(2, "skipped", "suppressed")])
    found = await states(db, campaign)
    assert found[1] == ("skipped", 0, "suppressed") and found[2] == ("skipped", 1, "suppressed")


async def test_skip_open_leaves_recipients_being_sent(db: asyncpg.Pool, campaign: uuid.UUID) -> None:
    async with db.acquire() as conn:
        await recipients.claim(conn, campaign, [1])
        skipped = await recipients.skip_open(conn, campaign, "cancelled")
    assert skipped == 9
    found = await states(db, campaign)
    assert found[1][0] == "sending" and {found[p] for p in range(2, 11)} == {("skipped", 0, "cancelled")}


async def test_page_filters_and_pages_in_order(db: asyncpg.Pool, campaign: uuid.UUID) -> None:
    async with db.acquire() as conn:
        first = await recipients.page(conn, campaign, after=0, limit=4)
        rest = await recipients.page(conn, campaign, after=first[-1]["position"], limit=100)
        found = await recipients.page(conn, campaign, after=0, limit=10, search="r1")
        pending = await recipients.page(conn, campaign, after=0, limit=100, status="sent")
    assert [r["position"] for r in first + rest] == list(range(1, 11))
    assert [r["email"] for r in found] == ["r1@example.com", "r10@example.com"]
    assert pending == []
