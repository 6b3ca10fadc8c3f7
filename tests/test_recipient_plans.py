"""The claim and outcome statements cost what their 100 rows cost, not what the campaign does.

A new campaign's id is not in the table's statistics until autoanalyze comes, which on a big
table it does not during a campaign. The planner then expects one row for `campaign_id = $1`
and, without the batch's position range, checked `position = ANY(…)` (or the join on position)
in a Filter: every 100-row claim walked the campaign's whole primary-key range (benchmarks/README.md,
cost #1). Here that situation is built for real — an older campaign analysed, then a fresh one
not — and the module's own statements run under EXPLAIN ANALYZE, all in one transaction that is
rolled back (ANALYZE included), so no other test sees any of it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from shared import recipients, send_window
from shared.accounts import ensure_user
from shared.recipients import RecipientResult

CAMPAIGN = 30_000
CHUNK = range(15_001, 15_101)  # the scheduler's claim chunk: 100 positions in the middle


class Explaining:
    """Stands for the connection: runs each statement it is given under EXPLAIN (ANALYZE) instead
    — so the very text and arguments the module sends — and keeps the plans."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.plans: list[dict[str, Any]] = []

    async def fetch(self, query: str, *args: Any) -> list[Any]:
        found = await self.conn.fetchval("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + query, *args)
        self.plans.append(json.loads(found)[0]["Plan"])
        return []

    async def execute(self, query: str, *args: Any) -> str:
        await self.fetch(query, *args)
        return "UPDATE 0"


def scans(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """The plan's nodes that read `recipients`."""
    found = [plan] if plan.get("Relation Name") == "recipients" and "Scan" in plan["Node Type"] else []
    for child in plan.get("Plans", []):
        found += scans(child)
    return found


async def new_campaign(conn: Any, user_id: int, status: str) -> uuid.UUID:
    campaign_id = uuid.uuid4()
    await conn.execute("INSERT INTO campaigns (id, user_id, status, subject, html_body) VALUES"
                       " ($1, $2, 'sending', 's', 'h')", campaign_id, user_id)
    await recipients.copy_in(conn, campaign_id, ((f"p{n}@example.com", {"n": n}) for n in range(1, CAMPAIGN + 1)))
    if status != "pending":
        await conn.execute("UPDATE recipients SET status = $2 WHERE campaign_id = $1", campaign_id, status)
    return campaign_id


@pytest.fixture
async def fresh(db: asyncpg.Pool) -> AsyncIterator[tuple[Any, uuid.UUID]]:
    """A connection in a transaction, and a fresh campaign of CAMPAIGN pending recipients that the
    statistics know nothing of, beside an older one of the same size that they know well."""
    async with db.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        try:
            user_id = await ensure_user(conn, f"plans-{uuid.uuid4().hex[:8]}@example.com")
            await new_campaign(conn, user_id, "sent")
            await conn.execute("ANALYZE recipients")
            yield conn, await new_campaign(conn, user_id, "pending")
        finally:
            await transaction.rollback()


def assert_bounded_by_the_chunk(plan: dict[str, Any]) -> None:
    read = scans(plan)
    assert read, json.dumps(plan)
    removed = sum(node.get("Rows Removed by Filter", 0) for node in read)
    touched = sum(node["Shared Hit Blocks"] + node["Shared Read Blocks"] for node in read)
    # A few pages for each of the chunk's 100 rows at most (a claimed row's two versions sit on
    # different pages); walking the campaign reads 30,000 rows and removes all but 100.
    assert removed <= len(CHUNK) and touched <= 4 * len(CHUNK), (removed, touched, json.dumps(plan)[:3000])


async def test_a_claim_reads_its_chunk_not_the_campaign(fresh: tuple[Any, uuid.UUID]) -> None:
    conn, campaign_id = fresh
    explaining = Explaining(conn)
    await recipients.claim(explaining, campaign_id, list(CHUNK))  # type: ignore[arg-type]
    assert len(explaining.plans) == 1
    assert_bounded_by_the_chunk(explaining.plans[0])


async def test_writing_outcomes_reads_its_chunk_not_the_campaign(fresh: tuple[Any, uuid.UUID]) -> None:
    conn, campaign_id = fresh
    claimed = await recipients.claim(conn, campaign_id, list(CHUNK))
    assert claimed is not None and len(claimed) == len(CHUNK)
    explaining = Explaining(conn)
    await recipients.record(explaining, campaign_id,  # type: ignore[arg-type]
                            [RecipientResult(p, "sent", "250 ok") for p in CHUNK])
    assert len(explaining.plans) == 1
    assert_bounded_by_the_chunk(explaining.plans[0])


async def test_the_window_finds_the_next_open_recipient_without_reading_the_rest(
        fresh: tuple[Any, uuid.UUID]) -> None:
    conn, campaign_id = fresh
    found = await conn.fetchval("EXPLAIN (ANALYZE, FORMAT JSON) " + send_window.FIRST_OPEN_SQL, campaign_id, 15_001)
    read = scans(json.loads(found)[0]["Plan"])
    assert read and sum(node["Actual Rows"] for node in read) <= 10, read  # min() read all 15,000 after it
    assert await conn.fetchval(send_window.FIRST_OPEN_SQL, campaign_id, 15_001) == 15_001
