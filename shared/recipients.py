"""Recipient rows: bulk load, claim before sending, record outcomes — always in batches."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from shared.db import Conn

# A claim older than this is from a process that died while sending; it may be taken over.
CLAIM_LEASE_SECONDS = 120


async def copy_in(
    conn: Conn, campaign_id: uuid.UUID, rows: Iterable[tuple[str, dict[str, Any]]]
) -> int:
    """COPY recipients in list order (positions from 1); returns how many were written."""
    records = [
        (campaign_id, position, email, json.dumps(fields, ensure_ascii=False))
        for position, (email, fields) in enumerate(rows, start=1)
    ]
    await conn.copy_records_to_table(
        "recipients", records=records, columns=["campaign_id", "position", "email", "fields"]
    )
    return len(records)


async def skip_positions(conn: Conn, campaign_id: uuid.UUID, positions: list[int], reason: str) -> None:
    """Mark recipients skipped before anything was sent to them (e.g. suppressed)."""
    if positions:
        await conn.execute(
            "UPDATE recipients SET status = 'skipped', reply = $3 WHERE campaign_id = $1"
            " AND position BETWEEN $4 AND $5 AND position = ANY($2::int[])",  # the range: see CLAIM_SQL
            campaign_id, positions, reason, min(positions), max(positions))


@dataclass(frozen=True)
class Claimed:
    position: int
    email: str
    fields: dict[str, Any]
    attempts: int
    suppressed: bool = False  # on the user's suppression list when claimed: skip, do not send


# Only these campaign states may have recipients claimed (states.OPEN_FOR_SENDING; that module
# imports this one).
OPEN_FOR_SENDING = ("queued", "sending")

# Every statement that names recipients by position also gives the positions' range. Until
# autoanalyze comes (on a big table: not during a campaign) a new campaign's id is not in the
# statistics; the planner then expects one row for `campaign_id = $1` and checks a bare
# `position = ANY(…)` (or a join on position) in a Filter, walking the campaign's whole primary-key
# range for every 100 rows: 100,000 rows removed by the filter and 13 ms for one claim in a
# 100,000-recipient campaign. With the range both index columns bound the scan, whatever the
# statistics say (tests/test_recipient_plans.py runs these statements under EXPLAIN).
#
# The campaign's state is checked in the same statement: a paused or cancelled campaign claims
# nothing and answers one row of NULLs.
#
# Every statement that locks several of a campaign's recipients locks them in position order
# (`ORDER BY position … FOR UPDATE`), whatever order its plan reads them in: a cancel's skip_open
# read them as they lie on disk (a bitmap or sequential scan; a row handed back moves to the end)
# while a claim took its chunk in position order, and the two deadlocked (tests/test_recipient_locks.py).
CLAIM_SQL = """
WITH open AS (SELECT 1 FROM campaigns WHERE id = $1 AND status = ANY($6::text[])),
     due AS (
        SELECT position FROM recipients
         WHERE campaign_id = $1 AND position BETWEEN $2 AND $3 AND position = ANY($4::int[])
           AND ((status = 'pending' AND (next_attempt_at IS NULL OR next_attempt_at <= now()))
                OR (status = 'sending' AND claimed_at < now() - make_interval(secs => $5)))
           AND EXISTS (SELECT 1 FROM open)
         ORDER BY position FOR UPDATE),
     claimed AS (
        UPDATE recipients SET status = 'sending', claimed_at = now(), attempts = attempts + 1, updated_at = now()
         WHERE campaign_id = $1 AND position BETWEEN $2 AND $3 AND position IN (SELECT position FROM due)
        RETURNING position, email, fields, attempts)
SELECT position, email, fields, attempts FROM claimed
 UNION ALL SELECT NULL, NULL, NULL, NULL WHERE NOT EXISTS (SELECT 1 FROM open)
 ORDER BY 1
"""


async def claim(conn: Conn, campaign_id: uuid.UUID, positions: Sequence[int],
                lease: float = CLAIM_LEASE_SECONDS) -> list[Claimed] | None:
    """Mark open recipients among `positions` as being sent; final ones are never returned.
    None, and nothing claimed, once the campaign is no longer open for sending."""
    if not positions:
        return [] if await conn.fetchval("SELECT status = ANY($2::text[]) FROM campaigns WHERE id = $1",
                                         campaign_id, OPEN_FOR_SENDING) else None
    rows = await conn.fetch(CLAIM_SQL, campaign_id, min(positions), max(positions), list(positions), lease,
                            OPEN_FOR_SENDING)
    if rows and rows[-1]["position"] is None:
        return None
    return [Claimed(r["position"], r["email"], json.loads(r["fields"]), r["attempts"]) for r in rows]


async def due_positions(conn: Conn, campaign_id: uuid.UUID, first: int, last: int,
                        lease: float = CLAIM_LEASE_SECONDS) -> list[int]:
    """Open recipients in first..last that may be attempted now."""
    rows = await conn.fetch(
        """
        SELECT position FROM recipients
         WHERE campaign_id = $1 AND position BETWEEN $2 AND $3
           AND ((status = 'pending' AND (next_attempt_at IS NULL OR next_attempt_at <= now()))
                OR (status = 'sending' AND claimed_at < now() - make_interval(secs => $4)))
         ORDER BY position
        """,
        campaign_id, first, last, lease,
    )
    return [r["position"] for r in rows]


async def next_due(conn: Conn, campaign_id: uuid.UUID, first: int, last: int,
                   lease: float = CLAIM_LEASE_SECONDS) -> float | None:
    """Epoch seconds when the earliest open recipient in first..last may be attempted; None if none is open."""
    due: float | None = await conn.fetchval(
        """
        SELECT extract(epoch FROM min(CASE WHEN status = 'pending' THEN coalesce(next_attempt_at, now())
                                           ELSE claimed_at + make_interval(secs => $4) END))
          FROM recipients
         WHERE campaign_id = $1 AND position BETWEEN $2 AND $3 AND status IN ('pending', 'sending')
        """,
        campaign_id, first, last, lease,
    )
    return float(due) if due is not None else None


@dataclass(frozen=True)
class RecipientResult:
    """What became of one claimed recipient, to be written by `record`."""

    position: int
    # A final state; "retry" (attempted, try again at next_attempt_at) or "released" (not
    # attempted: paused, rate-limited) both put the recipient back to pending. "released" and
    # "skipped" (suppressed when claimed) take back the attempt the claim counted: none was made.
    status: str
    reply: str | None
    next_attempt_at: float | None = None  # epoch seconds, for "retry"


RECORD_SQL = """
UPDATE recipients AS r
   SET status = CASE WHEN u.status IN ('retry', 'released') THEN 'pending' ELSE u.status END,
       reply = COALESCE(u.reply, r.reply), claimed_at = NULL, updated_at = now(),
       attempts = CASE WHEN u.status IN ('released', 'skipped') THEN r.attempts - 1 ELSE r.attempts END,
       next_attempt_at = CASE WHEN u.status = 'retry' THEN to_timestamp(u.due) END
  FROM unnest($2::int[], $3::text[], $4::text[], $5::float8[]) AS u(position, status, reply, due)
 WHERE r.campaign_id = $1 AND r.position BETWEEN $6 AND $7 AND r.position = u.position AND r.status = 'sending'
"""


async def record(conn: Conn, campaign_id: uuid.UUID, results: Sequence[RecipientResult]) -> None:
    """Write many results in one statement; only rows still claimed are changed."""
    if not results:
        return
    positions = [o.position for o in results]
    await conn.execute(
        RECORD_SQL,
        campaign_id,
        positions,
        [o.status for o in results],
        [o.reply.replace("\x00", "") if o.reply else o.reply for o in results],  # Postgres text holds no NUL
        [o.next_attempt_at for o in results],
        min(positions), max(positions),  # the range: see CLAIM_SQL
    )


async def skip_open(conn: Conn, campaign_id: uuid.UUID, reason: str) -> int:
    """Mark recipients not being sent right now as skipped (a worker finishing one records it).
    Locked in position order, as a claim locks them (see CLAIM_SQL)."""
    result = await conn.execute(
        "WITH open AS (SELECT position FROM recipients WHERE campaign_id = $1 AND status = 'pending'"
        " ORDER BY position FOR UPDATE)"
        " UPDATE recipients AS r SET status = 'skipped', reply = $2, updated_at = now() FROM open"
        " WHERE r.campaign_id = $1 AND r.position = open.position AND r.status = 'pending'",
        campaign_id, reason,
    )
    return int(result.split()[-1])


STATES = ("pending", "sending", "sent", "failed", "skipped", "bounced")


async def page(conn: Conn, campaign_id: uuid.UUID, *, after: int, limit: int, status: str | None = None,
               search: str | None = None, with_fields: bool = False) -> list[dict[str, Any]]:
    """Recipients after position `after`, in order, optionally of one state or matching `search`;
    `with_fields` adds the contact file's columns (as JSON text)."""
    rows = await conn.fetch(
        """
        SELECT position, email, status, reply, attempts, updated_at, CASE WHEN $6 THEN fields END AS fields
          FROM recipients
         WHERE campaign_id = $1 AND position > $2 AND ($3::text IS NULL OR status = $3)
           AND ($4::text IS NULL OR email ILIKE '%' || $4 || '%')
         ORDER BY position LIMIT $5
        """,
        campaign_id, after, status, search, limit, with_fields,
    )
    return [dict(r) if with_fields else {k: v for k, v in r.items() if k != "fields"} for r in rows]
