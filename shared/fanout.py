"""The fan-out: turns a campaign command into recipient rows and delivery batches.

For a campaign made from a contact upload, the file is streamed from S3 (constant memory, apart
from 16 bytes per unique address for de-duplication) and COPYed into `recipients` in one
transaction, invalid and suppressed addresses included as `skipped` with their reason.
Re-planning (a redelivered command, a resume) is harmless: recipients are loaded once, and
senders skip recipients already in a final state.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

import asyncpg

from shared import recipients, suppressions
from shared.addresses import check_address
from shared.campaigns import states
from shared.commands import CampaignCommand, DeliveryBatch, Publish, batch_ranges
from shared.contacts import Column, ContactRow, Dialect, address_key, iter_contacts
from shared.storage import ObjectChanged, ObjectMissing, UploadStore

COPY_CHUNK = 20_000


@dataclass
class LoadCounts:
    rows: int = 0  # data rows of the contact file consumed
    duplicates: int = 0
    position: int = 0  # recipients written


Record = tuple[object, ...]


def recipient_records(
    contacts: Iterator[ContactRow], campaign_id: uuid.UUID, suppressed: suppressions.SuppressedKeys, counts: LoadCounts,
    seen: set[bytes],
) -> Iterator[Record]:
    """Rows for COPY: (campaign_id, position, email, fields, status, reply).

    Rows without a valid address are problems of the file, not recipients: the upload's report
    counts them and lists every one (problems.csv), so the review's count is the campaign's.
    Suppressed people are recipients skipped on purpose, shown with the reason.
    """
    for contact in contacts:
        counts.rows += 1
        checked = check_address(contact.email)
        email = checked.normalized
        if email is None:
            continue
        key = address_key(email)
        if key in seen:
            counts.duplicates += 1
            continue
        seen.add(key)
        counts.position += 1
        fields = json.dumps(contact.fields, ensure_ascii=False)
        if suppressed and suppressions.fast_key(email) in suppressed:
            yield (campaign_id, counts.position, email, fields, "skipped", "suppressed")
        else:
            yield (campaign_id, counts.position, email, fields, "pending", None)


async def _take(records: Iterator[Record], count: int) -> list[Record]:
    """The next `count` records, pulled in a thread: S3 reads and parsing block."""
    return await asyncio.to_thread(lambda: list(itertools.islice(records, count)))


async def load_recipients(
    db: asyncpg.Pool, store: UploadStore, campaign_id: uuid.UUID, on_chunk: Callable[[int, int], Awaitable[None]],
    chunk_rows: int = COPY_CHUNK,
) -> None:
    """Create the recipient rows of an upload-based campaign, a committed chunk at a time.

    After each commit `on_chunk(first, last)` is told the new positions, so sending starts
    while the rest of the file is still loading. Resumes after a crash from the file row the
    last commit reached.
    """
    async with db.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT c.user_id, c.sender_id, c.recipients_loaded, c.loaded_rows, c.recipient_count,"
            " c.duplicates_removed, u.s3_key, u.etag, u.encoding, u.delimiter, u.has_header, u.email_column, u.columns"
            " FROM campaigns c JOIN uploads u ON u.id = c.upload_id WHERE c.id = $1",
            campaign_id,
        )
        if row is None or row["recipients_loaded"]:
            return
        suppressed = await suppressions.keys(conn, row["user_id"])
        counts = LoadCounts(row["loaded_rows"], row["duplicates_removed"], row["recipient_count"])
        seen: set[bytes] = set()
        if counts.position:
            seen = {address_key(r["email"]) for r in await conn.fetch(
                "SELECT email FROM recipients WHERE campaign_id = $1", campaign_id)}
    dialect = Dialect(row["encoding"], row["delimiter"], row["has_header"], row["email_column"])
    columns = [Column(**c) for c in json.loads(row["columns"])]
    rows = iter_contacts(store.chunks(row["s3_key"], row["etag"]), dialect, columns)
    contacts = itertools.islice(rows, counts.rows, None)
    records = recipient_records(contacts, campaign_id, suppressed, counts, seen)
    while True:
        first = counts.position + 1
        chunk = await _take(records, chunk_rows)
        done = len(chunk) < chunk_rows
        async with db.acquire() as conn, conn.transaction():
            if chunk:
                await conn.copy_records_to_table(
                    "recipients", records=chunk,
                    columns=["campaign_id", "position", "email", "fields", "status", "reply"],
                )
            await conn.execute(
                "UPDATE campaigns SET recipient_count = $2, loaded_rows = $3, duplicates_removed = $4,"
                " recipients_loaded = $5, updated_at = now() WHERE id = $1",
                campaign_id, counts.position, counts.rows, counts.duplicates, done,
            )
        if chunk:
            await on_chunk(first, counts.position)
        if done:
            return


async def run(
    db: asyncpg.Pool, command: CampaignCommand, batch_size: int, publish: Publish, store: UploadStore | None = None,
    chunk_rows: int = COPY_CHUNK,
) -> None:
    """Mark the campaign sending, publish its batches, loading its recipients first if needed.

    A redelivered command or a resume publishes every batch again: harmless, since senders skip
    recipients already in a final state.
    """
    async with db.acquire() as conn:
        if not await states.mark_sending(conn, command.campaign_id):
            return  # gone, paused or cancelled
        campaign = await states.load_for_sending(conn, command.campaign_id)
        assert campaign is not None
        if campaign.sender_id is None:
            return
        sender_id = campaign.sender_id
        spread = bool(await conn.fetchval(
            "SELECT per_minute IS NULL AND per_day IS NULL FROM senders WHERE id = $1", sender_id))

    async def publish_range(first: int, last: int) -> None:
        await publish([DeliveryBatch(command.campaign_id, sender_id, a, b, spread)
                       for a, b in batch_ranges(first, last, batch_size)])

    if campaign.recipient_count:
        await publish_range(1, campaign.recipient_count)
    if store is not None:
        try:
            await load_recipients(db, store, command.campaign_id, publish_range, chunk_rows)
        except (ObjectMissing, ObjectChanged) as exc:
            reason = states.CONTACTS_FILE_GONE if isinstance(exc, ObjectMissing) else states.CONTACTS_FILE_CHANGED
            async with db.acquire() as conn:
                await states.pause(conn, command.campaign_id, reason)
            return
    async with db.acquire() as conn:
        if await states.status_of(conn, command.campaign_id) == "cancelled":
            await recipients.skip_open(conn, command.campaign_id, "cancelled")  # cancelled while loading
        else:
            await states.finish_if_done(conn, command.campaign_id)  # e.g. every address skipped
