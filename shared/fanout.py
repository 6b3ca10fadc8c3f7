"""The fan-out: turns a campaign command into recipient rows and delivery batches.

For a campaign made from a contact upload, the file is streamed from S3 (constant memory, apart
from 16 bytes per unique address for de-duplication) and COPYed into `recipients` a chunk at a
time, suppressed addresses included as `skipped` with their reason. A small file is loaded right
away; a big one (or one too slow to read within a request) by the file readers (file_jobs.py),
so that reading it never holds up other users' campaign starts. Batches go out through the user's
window (send_window.py).
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

from shared import file_jobs, recipients, send_window, suppressions
from shared.addresses import normal_address
from shared.campaigns import states
from shared.commands import CampaignCommand, Publish
from shared.contacts import Column, ContactRow, Dialect, address_key, iter_contacts
from shared.db import Conn
from shared.file_jobs import Reading
from shared.send_window import Window
from shared.storage import ObjectChanged, ObjectMissing, UploadStore
from shared.uploads import INLINE_INSPECT_BYTES

COPY_CHUNK = 20_000
# Files up to this size are loaded on the commands topic, within a second (as they are inspected
# within the request); larger ones by the file readers, and so are small ones whose inspection ran
# out of time in the request (uploads.read_by_worker: a file crafted to be slow to read).
INLINE_LOAD_BYTES = INLINE_INSPECT_BYTES


@dataclass
class LoadCounts:
    rows: int = 0  # data rows of the contact file consumed
    duplicates: int = 0
    position: int = 0  # recipients written


Record = tuple[object, ...]

_json_string = json.encoder.encode_basestring  # what json.dumps(…, ensure_ascii=False) writes a str as


def fields_json(fields: dict[str, str]) -> str:
    """`json.dumps(fields, ensure_ascii=False)`, character for character, for a row's text cells:
    without the encoder json.dumps builds on every call (a third of the row's JSON cost)."""
    return "{" + ", ".join([f"{_json_string(name)}: {_json_string(value)}" for name, value in fields.items()]) + "}"


def recipient_records(
    contacts: Iterator[ContactRow], campaign_id: uuid.UUID, counts: LoadCounts, seen: set[bytes],
) -> Iterator[Record]:
    """Rows for COPY: (campaign_id, position, email, fields, status, reply).

    Rows without a valid address are problems of the file, not recipients: the upload's report
    counts them and lists every one (problems.csv), so the review's count is the campaign's.
    Every recipient comes `pending`; `_suppress` marks the suppressed ones of each chunk.

    Positions follow the file's rows (a repeat keeps its first row's place), and batches are
    published in position order; but a sender worker works on a window of batches at once (a
    user's window, send_window.py), which share the account's connections and its limits, so the
    rows at the start of each batch in flight go out together (with the tests' 8 batches of 50 in
    flight, the first email to arrive was row 151 of 2,000): row order holds within a batch only.
    """
    for contact in contacts:
        counts.rows += 1
        email = normal_address(contact.email)
        if email is None:
            continue
        key = address_key(email)
        if key in seen:
            counts.duplicates += 1
            continue
        seen.add(key)
        counts.position += 1
        yield (campaign_id, counts.position, email, fields_json(contact.fields), "pending", None)


async def _suppress(conn: Conn, user_id: int, chunk: list[Record]) -> list[Record]:
    """The chunk with its suppressed people skipped on purpose, shown with the reason: asks about
    the chunk's addresses only — an account's list of a million is never read whole."""
    keys = [suppressions.fast_key(str(record[2])) for record in chunk]
    found = await suppressions.among(conn, user_id, keys)
    if not found:
        return chunk
    return [(*record[:4], "skipped", "suppressed") if key in found else record
            for record, key in zip(chunk, keys, strict=True)]


async def _take(records: Iterator[Record], count: int) -> list[Record]:
    """The next `count` records, pulled in a thread: S3 reads and parsing block."""
    return await asyncio.to_thread(lambda: list(itertools.islice(records, count)))


async def load_recipients(
    db: asyncpg.Pool, store: UploadStore, campaign_id: uuid.UUID, on_chunk: Callable[[int, int], Awaitable[None]],
    chunk_rows: int = COPY_CHUNK, reading: Reading | None = None,
) -> None:
    """Create the recipient rows of an upload-based campaign, a committed chunk at a time.

    After each commit `on_chunk(first, last)` is told the new positions, so sending starts while
    the rest of the file is still loading. Resumes after a crash from the file row the last commit
    reached. With `reading` (a file reader's job), each chunk commits only while the job is still
    this reader's.
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
        counts = LoadCounts(row["loaded_rows"], row["duplicates_removed"], row["recipient_count"])
        seen: set[bytes] = set()
        if counts.position:
            seen = {address_key(r["email"]) for r in await conn.fetch(
                "SELECT email FROM recipients WHERE campaign_id = $1", campaign_id)}
    dialect = Dialect(row["encoding"], row["delimiter"], row["has_header"], row["email_column"])
    columns = [Column(**c) for c in json.loads(row["columns"])]
    rows = iter_contacts(store.chunks(row["s3_key"], row["etag"]), dialect, columns)
    contacts = itertools.islice(rows, counts.rows, None)
    records = recipient_records(contacts, campaign_id, counts, seen)
    while True:
        first = counts.position + 1
        chunk = await _take(records, chunk_rows)
        done = len(chunk) < chunk_rows
        async with db.acquire() as conn, conn.transaction():
            if reading is not None:
                await reading.fence(conn)
            if chunk:
                chunk = await _suppress(conn, row["user_id"], chunk)
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
    db: asyncpg.Pool, command: CampaignCommand, publish: Publish, window: Window, store: UploadStore | None = None,
    chunk_rows: int = COPY_CHUNK,
) -> None:
    """Start or resume a campaign. Returns at once when its recipients must still be loaded from a
    big file: that is queued for the file readers (`load`), and the campaign stays `queued`, its
    reason saying what it waits for, until a reader takes it.
    """
    async with db.acquire() as conn:
        plan = await conn.fetchrow(
            "SELECT c.status, c.user_id, c.recipients_loaded, u.size_bytes, u.read_by_worker"
            " FROM campaigns c LEFT JOIN uploads u ON u.id = c.upload_id WHERE c.id = $1",
            command.campaign_id)
        if plan is None or plan["status"] not in states.OPEN_FOR_SENDING:
            return  # gone, paused or cancelled
        loading = store is not None and not plan["recipients_loaded"]
        if loading and ((plan["size_bytes"] or 0) > INLINE_LOAD_BYTES or plan["read_by_worker"]):
            await file_jobs.enqueue(conn, command.campaign_id, "load", plan["user_id"], supersede=False)
            return
    await _send(db, command.campaign_id, publish, window, store if loading else None, chunk_rows)


async def load(db: asyncpg.Pool, store: UploadStore, reading: Reading, publish: Publish, window: Window,
               chunk_rows: int = COPY_CHUNK) -> None:
    """A file reader's job: load a campaign's recipients from its big file, sending as it goes."""
    await _send(db, reading.job.subject, publish, window, store, chunk_rows, reading)
    async with db.acquire() as conn:
        await file_jobs.done(conn, reading.job)


async def _send(db: asyncpg.Pool, campaign_id: uuid.UUID, publish: Publish, window: Window,
                store: UploadStore | None, chunk_rows: int, reading: Reading | None = None) -> None:
    """Mark the campaign sending and open its window, loading its recipients first if `store`.

    A redelivered command or a resume starts the window again from the first open recipient:
    harmless, since senders skip recipients already in a final state.
    """
    async with db.acquire() as conn:
        if not await states.mark_sending(conn, campaign_id):
            return  # gone, paused or cancelled: a resume queues the work again
        await send_window.restart(conn, campaign_id)

    async def top_up(first: int = 0, last: int = 0) -> None:
        await send_window.top_up(db, campaign_id, publish, window)  # the window has room for them, or soon

    await top_up()
    if store is not None:
        try:
            await load_recipients(db, store, campaign_id, top_up, chunk_rows, reading)
        except (ObjectMissing, ObjectChanged) as exc:
            reason = states.CONTACTS_FILE_GONE if isinstance(exc, ObjectMissing) else states.CONTACTS_FILE_CHANGED
            async with db.acquire() as conn:
                await states.pause(conn, campaign_id, reason)
            return
    async with db.acquire() as conn:
        if await states.status_of(conn, campaign_id) == "cancelled":
            await recipients.skip_open(conn, campaign_id, "cancelled")  # cancelled while loading
        else:
            await states.finish_if_done(conn, campaign_id)  # e.g. every address skipped
