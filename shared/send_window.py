"""A user's window of delivery batches: at most `size` of their batches published and not yet finished.

Each partition of the deliveries topic is worked in order, so publishing all 500 batches of a
100,000-recipient campaign at once put another user's one-recipient mail behind a quarter or more
of them. Instead the fan-out publishes the first `size` batches and each finished batch publishes
the next (the sender worker calls `finished` once the batch's outcomes and deferrals are written,
before its offset is committed): a batch published now waits behind about `size / partitions`
batches of each user with mail under way, while that mail keeps every partition busy.

The window is the user's, not each campaign's: ten big campaigns started at once had ten windows
out, and another user's one-recipient mail waited 44 s behind them instead of one window's worth.
A user's sending campaigns share `size` places; each campaign keeps its own place in its
recipients (`send_windows`, one row per campaign, batches in position order), and a freed place
goes to the campaign with the fewest batches out — on a tie, the one given a place longest ago —
so every one of them gets turns and none starves — except that an account with limits sends its
campaigns one after the other in the order they were started (they share its limits, and the
campaign page says which one a campaign waits for): a paused one steps aside until it is resumed.
A campaign with mail to go and no place says so (`status_reason`, OWN_MAIL_FIRST) until it gets one:
a one-shot behind thirty of the user's own stuck at a silent server waited minutes without a word.
One filler per user at a time (an advisory lock) keeps the count true while it publishes.

Lock order: a transaction that takes a user's window lock takes it before any row — their
`send_windows` rows (touched only under that lock) and campaign rows (locked as well by pauses and
cancels and by the sender's single statements, none of which wait for a window lock). The stall
sweeper once locked campaign rows first and then waited for the window lock: it deadlocked with a
filler opening one of those campaigns' window (the new row's foreign key waits for the campaign row).

The window is bookkeeping, never the only copy of the work. Recipients are rows in Postgres, and
publishing a range twice is harmless (final recipients are skipped, claims are atomic): a crash
between publishing and committing publishes that range again, a crash before `finished` has its
batch redelivered, and a window that lost track (a batch dead-lettered) starts again from the
first open recipient on a resume or from the stall sweeper. Only sending campaigns count: the
batches of one paused or cancelled are dropped when read and free their places as usual. Deferred
batches (limits, retries) go back through `deferred_batches`: one put off briefly keeps its place
in the window, one put off for longer (a retry's back-off, a daily limit) gives it to the next batch.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from shared.commands import DeliveryBatch, Publish
from shared.db import Conn
from shared.errors import translate

_LARGEST_POSITION = 2**31 - 1
# A batch handed back for less than this (its time budget ran out, a claim's lease, the next minute
# of a rate limit) keeps its place: the campaign is still working through it. A longer wait (a
# retry's back-off, a daily limit, a paused account) gives the place to the next batch.
SHORT_WAIT_SECONDS = 60.0
_USER_LOCK = 0x5357  # with the user id: one filler of a user's window at a time
# The next open recipient from a position on. `ORDER BY … LIMIT 1` and not `min()`: for a campaign
# not yet in the statistics the planner expects one row and aggregates every open one after the
# position (a 100,000-recipient campaign: 9 ms for each batch published, instead of 0.02 ms).
FIRST_OPEN_SQL = ("SELECT position FROM recipients WHERE campaign_id = $1 AND position >= $2"
                  " AND status IN ('pending', 'sending') ORDER BY position LIMIT 1")
# Both languages: the reason is stored for every reader (the page shows the reader's half).
OWN_MAIL_FIRST = " / ".join(translate("own_mail_first", lang) for lang in ("ru", "en"))


@dataclass(frozen=True)
class Window:
    batch_size: int  # recipients per batch
    size: int  # batches out at once per user, across all their campaigns


@dataclass
class _Campaign:
    """One sending campaign's row of the user's window, while a fill works on it."""

    campaign_id: uuid.UUID
    sender_id: int
    spread: bool
    position: int  # where its pass over the open recipients goes on
    last_loaded: int
    out: list[int]  # first positions of its batches out now
    turn: int  # when it last got a place, relative to the others: lower waited longer
    started: datetime
    loaded: bool  # all its recipients are in Postgres (the fan-out may still be loading them)
    reason: str | None  # its status_reason now
    changed: bool = False
    served: bool = False

    def has_work(self) -> bool:
        return not self.loaded or self.position <= self.last_loaded or bool(self.out)

    def queued_behind(self, campaigns: list[_Campaign]) -> bool:
        """An account with limits sends its campaigns one after the other, in the order they were
        started (what the campaign page promises): a later one gets no place while an earlier one
        still has mail to go. A pause takes the earlier one out of the way until its resume."""
        return not self.spread and any(
            other.sender_id == self.sender_id and not other.spread
            and (other.started, str(other.campaign_id)) < (self.started, str(self.campaign_id))
            and other.has_work() for other in campaigns)


async def lock_window(conn: Conn, user_id: int) -> None:
    """The user's window is ours until the transaction ends: take it before any row (see the lock order)."""
    await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", _USER_LOCK, user_id % 2**31)


async def _lock_user(conn: Conn, campaign_id: uuid.UUID) -> int | None:
    """The campaign's user, whose window is now ours until the transaction ends."""
    user_id: int | None = await conn.fetchval("SELECT user_id FROM campaigns WHERE id = $1", campaign_id)
    if user_id is not None:
        await lock_window(conn, user_id)
    return user_id


async def restart(conn: Conn, campaign_id: uuid.UUID) -> None:
    """A new pass from the first open recipient with nothing out (a start, a resume, the sweeper).
    Batches still out from before are harmless: they finish as usual and free nothing new."""
    async with conn.transaction():
        await _lock_user(conn, campaign_id)  # before the row, as every filler: no deadlock with one
        await conn.execute(
            "INSERT INTO send_windows (campaign_id) VALUES ($1) ON CONFLICT (campaign_id) DO UPDATE"
            " SET next_position = 1, open_batches = '{}', updated_at = clock_timestamp()",
            campaign_id)


async def fill(conn: Conn, campaign_id: uuid.UUID, publish: Publish, window: Window,
               finished_first: int | None = None) -> int:
    """Inside a transaction: take `finished_first` (a finished batch of `campaign_id`) out of the
    window, then publish batches of the user's sending campaigns until `window.size` are out, each
    place to the campaign with the fewest out; returns how many were published.

    Publishing happens before the caller commits: if it fails, nothing is recorded as out.
    """
    user_id = await _lock_user(conn, campaign_id)
    if user_id is None:
        return 0
    if finished_first is not None and not await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM deferred_batches WHERE campaign_id = $1 AND first_position = $2"
        " AND not_before <= now() + make_interval(secs => $3))",
        campaign_id, finished_first, SHORT_WAIT_SECONDS,
    ):
        await conn.execute(
            "UPDATE send_windows SET open_batches = array_remove(open_batches, $2) WHERE campaign_id = $1"
            " AND $2 = ANY(open_batches)", campaign_id, finished_first)
    rows = await conn.fetch(
        """
        SELECT w.campaign_id, w.next_position, w.open_batches, c.sender_id, c.recipient_count,
               (s.per_minute IS NULL AND s.per_day IS NULL) AS spread, c.recipients_loaded,
               COALESCE(c.started_at, c.created_at) AS started, c.status_reason
          FROM campaigns c JOIN send_windows w ON w.campaign_id = c.id JOIN senders s ON s.id = c.sender_id
         WHERE c.user_id = $1 AND c.status = 'sending'
         ORDER BY w.updated_at, w.campaign_id
           FOR UPDATE OF w
        """,
        user_id,
    )
    campaigns = [_Campaign(r["campaign_id"], r["sender_id"], r["spread"], r["next_position"], r["recipient_count"],
                           list(r["open_batches"]), turn, r["started"], r["recipients_loaded"], r["status_reason"])
                 for turn, r in enumerate(rows)]
    out = sum(len(c.out) for c in campaigns)
    batches: list[DeliveryBatch] = []
    while out < window.size:
        waiting = [c for c in campaigns if c.position <= c.last_loaded and not c.queued_behind(campaigns)]
        if not waiting:
            break
        chosen = min(waiting, key=lambda c: (len(c.out), c.turn))
        chosen.changed = True
        # Ranges whose recipients are all final already (a second pass) are stepped over.
        first = await conn.fetchval(FIRST_OPEN_SQL, chosen.campaign_id, chosen.position)
        if first is None or first > chosen.last_loaded:
            chosen.position = chosen.last_loaded + 1
            continue
        last = min(first + window.batch_size - 1, chosen.last_loaded)
        batches.append(DeliveryBatch(chosen.campaign_id, chosen.sender_id, first, last, chosen.spread))
        chosen.out.append(first)
        chosen.position, chosen.turn, chosen.served = last + 1, len(campaigns) + len(batches), True
        out += 1
    for campaign in campaigns:
        if campaign.changed:
            await conn.execute(
                "UPDATE send_windows SET next_position = $2, open_batches = $3,"
                " updated_at = CASE WHEN $4 THEN clock_timestamp() ELSE updated_at END WHERE campaign_id = $1",
                campaign.campaign_id, campaign.position, campaign.out, campaign.served)
    await _say_who_waits(conn, campaigns)
    if batches:
        await publish(batches)
    return len(batches)


async def _say_who_waits(conn: Conn, campaigns: list[_Campaign]) -> None:
    """After a fill: a campaign with mail to place and none out waits for the user's other mail (the
    window is full, or it would have had a place), and says so; one that got a place says it no more.
    One limited account's later campaigns wait for its earlier one instead: the page says which."""
    held = {c.campaign_id for c in campaigns
            if c.position <= c.last_loaded and not c.out and not c.queued_behind(campaigns)}
    newly = []
    for campaign in campaigns:
        if campaign.campaign_id in held and campaign.reason is None:
            # Only with recipients still to send: one whose last ones are all final finishes soon.
            first = await conn.fetchval(FIRST_OPEN_SQL, campaign.campaign_id, campaign.position)
            if first is not None and first <= campaign.last_loaded:
                newly.append(campaign.campaign_id)
    moved = [c.campaign_id for c in campaigns if c.campaign_id not in held and c.reason == OWN_MAIL_FIRST]
    if newly:  # over no other reason: a slow server's says more
        await conn.execute("UPDATE campaigns SET status_reason = $2 WHERE id = ANY($1::uuid[])"
                           " AND status = 'sending' AND status_reason IS NULL", newly, OWN_MAIL_FIRST)
    if moved:
        await conn.execute("UPDATE campaigns SET status_reason = NULL WHERE id = ANY($1::uuid[])"
                           " AND status_reason = $2", moved, OWN_MAIL_FIRST)


async def top_up(db: asyncpg.Pool, campaign_id: uuid.UUID, publish: Publish, window: Window) -> int:
    """Publish what the window has room for (after a start, or a chunk of recipients loaded)."""
    async with db.acquire() as conn, conn.transaction():
        return await fill(conn, campaign_id, publish, window)


async def finished(db: asyncpg.Pool, batch: DeliveryBatch, publish: Publish, window: Window) -> int:
    """A sender worker is done with `batch` (sent, deferred, handed back or paused): its place in
    the user's window goes to the next batch of the campaign of theirs with the fewest out. Safe to
    repeat for a redelivered batch."""
    if batch.first > _LARGEST_POSITION:
        return 0  # no window ever holds it
    async with db.acquire() as conn, conn.transaction():
        return await fill(conn, batch.campaign_id, publish, window, finished_first=batch.first)
