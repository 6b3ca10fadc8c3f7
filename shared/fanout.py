"""The fan-out: turns a campaign command into recipient rows and delivery batches.

For a campaign made from a contact upload, the file is streamed from S3 (constant memory, apart
from 16 bytes per unique address for de-duplication) and COPYed into `recipients` in one
transaction, invalid and suppressed addresses included as `skipped` with their reason.
Re-planning (a redelivered command, a resume) is harmless: recipients are loaded once, and
senders skip recipients already in a final state.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import asyncpg

from shared import campaigns
from shared.addresses import check_address
from shared.campaign_drafts import skip_open
from shared.contacts import Column, ContactRow, Dialect, address_key, iter_contacts
from shared.storage import UploadStore
from shared.work import CampaignCommand, DeliveryBatch, batch_ranges

COPY_BATCH = 5_000


@dataclass
class LoadCounts:
    rows: int = 0
    duplicates: int = 0
    position: int = 0


def recipient_records(
    contacts: Iterator[ContactRow], campaign_id: uuid.UUID, suppressed: set[str], counts: LoadCounts
) -> Iterator[tuple[object, ...]]:
    """Rows for COPY: (campaign_id, position, email, fields, status, reply)."""
    seen: set[bytes] = set()
    for contact in contacts:
        counts.rows += 1
        checked = check_address(contact.email)
        email = checked.normalized or contact.email[:320]
        key = address_key(email)
        if key in seen:
            counts.duplicates += 1
            continue
        seen.add(key)
        counts.position += 1
        fields = json.dumps(contact.fields, ensure_ascii=False)
        if checked.normalized is None:
            yield (campaign_id, counts.position, email, fields, "skipped", f"invalid address: {checked.reason}")
        elif email.lower() in suppressed:
            yield (campaign_id, counts.position, email, fields, "skipped", "suppressed")
        else:
            yield (campaign_id, counts.position, email, fields, "pending", None)


async def _in_batches(records: Iterator[tuple[object, ...]]) -> AsyncIterator[tuple[object, ...]]:
    """Pull from a blocking iterator (S3 reads, parsing) in a thread, a batch at a time."""

    def next_batch() -> list[tuple[object, ...]]:
        batch = []
        for record in records:
            batch.append(record)
            if len(batch) == COPY_BATCH:
                break
        return batch

    while True:
        batch = await asyncio.to_thread(next_batch)
        if not batch:
            return
        for record in batch:
            yield record


async def load_recipients(db: asyncpg.Pool, store: UploadStore, campaign_id: uuid.UUID) -> None:
    """Create the recipient rows of an upload-based campaign, once."""
    async with db.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT c.sender_id, c.recipients_loaded, u.s3_key, u.encoding, u.delimiter, u.has_header,"
            " u.email_column, u.columns FROM campaigns c JOIN uploads u ON u.id = c.upload_id WHERE c.id = $1",
            campaign_id,
        )
        if row is None or row["recipients_loaded"]:
            return
        suppressed = {r["email"] for r in await conn.fetch(
            "SELECT email FROM suppressions WHERE sender_id = $1", row["sender_id"])}
        dialect = Dialect(row["encoding"], row["delimiter"], row["has_header"], row["email_column"])
        columns = [Column(**c) for c in json.loads(row["columns"])]
        counts = LoadCounts()
        contacts = iter_contacts(store.chunks(row["s3_key"]), dialect, columns)
        async with conn.transaction():
            await conn.copy_records_to_table(
                "recipients",
                records=_in_batches(recipient_records(contacts, campaign_id, suppressed, counts)),
                columns=["campaign_id", "position", "email", "fields", "status", "reply"],
            )
            await conn.execute(
                "UPDATE campaigns SET recipients_loaded = true, recipient_count = $2, duplicates_removed = $3"
                " WHERE id = $1",
                campaign_id, counts.position, counts.duplicates,
            )


async def plan(
    db: asyncpg.Pool, command: CampaignCommand, batch_size: int, store: UploadStore | None = None
) -> list[DeliveryBatch]:
    """Load recipients if needed, mark the campaign sending, and return its delivery batches."""
    async with db.acquire() as conn:
        campaign = await campaigns.load_for_sending(conn, command.campaign_id)
    if campaign is None or campaign.status not in campaigns.OPEN_FOR_SENDING:
        return []
    if store is not None:
        await load_recipients(db, store, command.campaign_id)
    async with db.acquire() as conn:
        if not await campaigns.mark_sending(conn, command.campaign_id):
            # Cancelled or paused while the recipients were loading.
            if await campaigns.status_of(conn, command.campaign_id) == "cancelled":
                await skip_open(conn, command.campaign_id, "cancelled")
            return []
        campaign = await campaigns.load_for_sending(conn, command.campaign_id)
        assert campaign is not None
        if await campaigns.finish_if_done(conn, command.campaign_id) or campaign.sender_id is None:
            return []
        spread = bool(await conn.fetchval(
            "SELECT per_minute IS NULL AND per_day IS NULL FROM senders WHERE id = $1", campaign.sender_id))
    return [
        DeliveryBatch(campaign.id, campaign.sender_id, first, last, spread)
        for first, last in batch_ranges(1, campaign.recipient_count, batch_size)
    ]
