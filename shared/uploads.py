"""Contact uploads: presigned upload, size check, detection, and the inspection report."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import asyncpg

from shared import file_jobs, numbers, suppressions
from shared.addresses import check_address
from shared.contacts import (
    SAMPLE_BYTES,
    Column,
    Detection,
    Dialect,
    address_key,
    detect,
    iter_contacts,
    unclosed_quote_reason,
)
from shared.db import Conn
from shared.errors import InputError
from shared.file_jobs import Reading
from shared.storage import ObjectChanged, ObjectMissing, UploadStore

# Files up to this size are inspected within the request (in a thread, so other requests go on);
# larger ones by the fan-out's file readers, with progress. A small file still has to be read
# within INLINE_INSPECT_SECONDS: one crafted to be slow to read (a quote opened and left open on
# each of 52,000 lines: 0.9 s of CPU) held the API's threads, four at once for 4 s; past it the
# file readers count it too, as a big file, and so load its campaigns.
INLINE_INSPECT_BYTES = 256 * 1024
INLINE_INSPECT_SECONDS = 0.4
T = TypeVar("T")
_COLUMNS = ("id, filename, size_bytes, status, error_code, error_detail, encoding, delimiter, has_header,"
            " email_column, columns, preview, report, rows_read, created_at, updated_at")
# What an upload waits for while it is `inspecting` and no reader has taken it yet.
_WAITING = file_jobs.wait_columns("uploads.id")
_THEN = ("Проверка начнётся сама.", "Reading starts by itself.")
PROGRESS_ROWS = 1000  # how often a reading notes its progress and looks whether it must stop


class _OutOfTime(Exception):
    pass


class _Budget:
    """A deadline for reading a file within a request, looked at for every record. It starts with
    the reading itself, not while the reading waits for a free thread."""

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._deadline: float | None = None

    def check(self) -> None:
        now = time.monotonic()
        if self._deadline is None:
            self._deadline = now + self._seconds
        elif now > self._deadline:
            raise _OutOfTime


def s3_key(user_id: int, upload_id: uuid.UUID) -> str:
    return f"uploads/{user_id}/{upload_id}.csv"


def to_json(row: Any) -> dict[str, Any]:
    data = dict(row)
    data["id"] = str(data["id"])
    for key in ("columns", "preview", "report"):
        data[key] = json.loads(data[key]) if data.get(key) else None
    for key in ("created_at", "updated_at"):
        data[key] = data[key].isoformat()
    data["dialect"] = (
        {"encoding": data.pop("encoding"), "delimiter": data.pop("delimiter"),
         "has_header": data.pop("has_header"), "email_column": data.pop("email_column")}
    )
    if data["dialect"]["encoding"] is None:
        data["dialect"] = None
    data["error"] = {"code": data.pop("error_code"), "detail": data.pop("error_detail")} if data.get("error_code") \
        else None
    data.pop("error_code", None)
    data.pop("error_detail", None)
    waiting = {key: data.pop(key, None) for key in ("file_waiting", "file_own_ahead", "file_all_ahead")}
    data["waiting_reason"] = file_jobs.waiting_reason(waiting, _THEN) if data["status"] == "inspecting" else None
    return data


async def create(conn: Conn, user_id: int, filename: str) -> tuple[dict[str, Any], str]:
    upload_id = uuid.uuid4()
    key = s3_key(user_id, upload_id)
    row = await conn.fetchrow(
        f"INSERT INTO uploads (id, user_id, filename, s3_key, status) VALUES ($1, $2, $3, $4, 'awaiting_upload')"
        f" RETURNING {_COLUMNS}",
        upload_id, user_id, filename, key,
    )
    return to_json(row), key


async def get(conn: Conn, user_id: int, upload_id: uuid.UUID) -> dict[str, Any] | None:
    row = await conn.fetchrow(f"SELECT {_COLUMNS}, {_WAITING} FROM uploads WHERE id = $1 AND user_id = $2",
                              upload_id, user_id)
    return to_json(row) if row else None


async def list_for(conn: Conn, user_id: int) -> list[dict[str, Any]]:
    rows = await conn.fetch(f"SELECT {_COLUMNS}, {_WAITING} FROM uploads WHERE user_id = $1 ORDER BY created_at DESC",
                            user_id)
    return [to_json(r) for r in rows]


async def owned(conn: Conn, user_id: int, upload_id: uuid.UUID) -> bool:
    found: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM uploads WHERE id = $1 AND user_id = $2)", upload_id, user_id)
    return found


async def stored_file(conn: Conn, user_id: int, upload_id: uuid.UUID) -> tuple[str, str | None] | None:
    """Where the file is in the uploads bucket, and the version that was inspected (its ETag)."""
    row = await conn.fetchrow("SELECT s3_key, etag FROM uploads WHERE id = $1 AND user_id = $2", upload_id, user_id)
    return (row["s3_key"], row["etag"]) if row else None


async def _reading_the_file(read: Callable[[], T], field: str) -> T:
    """`read` (which streams the stored file) in a thread; a file gone or replaced since it was
    inspected becomes the 4xx that says so."""
    try:
        return await asyncio.to_thread(read)
    except ObjectMissing:
        raise InputError("contacts_file_gone", field) from None
    except ObjectChanged:
        raise InputError("contacts_file_changed", field) from None


async def contact_at(db: asyncpg.Pool, store: UploadStore, user_id: int, upload_id: uuid.UUID,
                     row: int) -> tuple[str, dict[str, Any]]:
    """(email, fields) of data row `row` (1 = first contact) of an upload; ("", {}) if it is gone."""
    async with db.acquire() as conn:
        upload = await get(conn, user_id, upload_id)
        file = await stored_file(conn, user_id, upload_id)
    if upload is None or file is None:
        return "", {}
    key, etag = file
    dialect, columns = stored_detection(upload)

    def find() -> tuple[str, dict[str, Any]] | None:
        contacts = iter_contacts(store.chunks(key, etag), dialect, columns)
        for contact in itertools.islice(contacts, row - 1, row):
            return contact.email, contact.fields
        return None

    found = await _reading_the_file(find, "upload_id")
    if found is None:
        raise InputError("row_out_of_range", "row", count=(upload.get("report") or {}).get("rows", 0))
    return found


def stored_detection(upload: dict[str, Any]) -> tuple[Dialect, list[Column]]:
    dialect = upload["dialect"]
    if upload["status"] != "ready" or dialect is None:
        raise InputError("upload_not_ready", "upload_id")
    return Dialect(**dialect), [Column(**c) for c in upload["columns"]]


async def _fail(conn: Conn, upload_id: uuid.UUID, error: InputError) -> None:
    # Both languages: the row is read later by whoever opens the upload, in either.
    await conn.execute(
        "UPDATE uploads SET status = 'failed', error_code = $2, error_detail = $3, updated_at = now() WHERE id = $1",
        upload_id, error.code, f"{error.message('ru')} / {error.message('en')}",
    )
    await file_jobs.withdraw(conn, upload_id)  # a reading of it under way stops and writes nothing


async def could_not_inspect(conn: Conn, upload_id: uuid.UUID, error: str) -> None:
    """The worker gave up on the file (dead-lettered, or failed three times)."""
    await _fail(conn, upload_id, InputError("upload_unprocessable", "file", error=error[:300]))


async def too_slow(conn: Conn, upload_id: uuid.UUID, minutes: int) -> None:
    """Reading the file took longer than a reading may (file_jobs' time limit)."""
    await _fail(conn, upload_id, InputError("upload_too_slow", "file", minutes=minutes))


async def queue_inspection(db: asyncpg.Pool, upload_id: uuid.UUID) -> None:
    """Hand an upload waiting in `inspecting` to the file readers (an inspection command written
    before they existed, or one the sweeper found without a reading queued)."""
    async with db.acquire() as conn:
        user_id = await conn.fetchval("SELECT user_id FROM uploads WHERE id = $1 AND status = 'inspecting'", upload_id)
        if user_id is not None:
            await file_jobs.enqueue(conn, upload_id, "inspect", user_id, supersede=False)


async def prepare(
    db: asyncpg.Pool, store: UploadStore, user_id: int, upload_id: uuid.UUID, max_bytes: int,
    overrides: dict[str, Any] | None = None, accept_fewer: bool = False,
) -> tuple[dict[str, Any], bool]:
    """Check the uploaded object and detect its dialect; small files are fully inspected too.

    Returns (upload, needs_worker); when a worker must count the file (big, or too slow to read
    within the request), it is queued for the file readers, superseding a reading of the file's
    earlier guesses. Bad files raise InputError and the upload is marked failed — but a correction
    that does not read leaves a file read well before (the same object) as it was: the person keeps
    the working file and sees why. So does one that finds far fewer addresses than the reading it
    would replace, unless `accept_fewer`.
    """
    async with db.acquire() as conn:
        row = await conn.fetchrow(f"SELECT s3_key, etag, {_COLUMNS} FROM uploads WHERE id = $1 AND user_id = $2",
                                  upload_id, user_id)
    if row is None:
        raise LookupError(upload_id)
    key = row["s3_key"]
    try:
        stored = await asyncio.to_thread(store.head, key)
        if stored is None:
            raise InputError("upload_missing", "file")
        size = stored.size
        if size == 0:
            raise InputError("empty_file", "file")
        if size > max_bytes:
            await asyncio.to_thread(store.delete, key)
            raise InputError("file_too_large", "file", size_mb=round(size / 1048576, 1),
                             limit_mb=round(max_bytes / 1048576, 1))
        try:
            sample = await asyncio.to_thread(store.read_start, key, min(size, SAMPLE_BYTES), stored.etag)
        except (ObjectMissing, ObjectChanged):
            raise InputError("upload_changed_while_read", "file") from None
        detection = await asyncio.to_thread(detect, sample, complete=size <= SAMPLE_BYTES, overrides=overrides)
        report = None
        if size <= INLINE_INSPECT_BYTES:
            try:
                data = sample if size <= SAMPLE_BYTES else await asyncio.to_thread(
                    store.read_start, key, size, stored.etag)
            except (ObjectMissing, ObjectChanged):
                raise InputError("upload_changed_while_read", "file") from None
            tally = suppressions.Tally(db, user_id)  # asks about the file's addresses, not the whole list
            budget = _Budget(INLINE_INSPECT_SECONDS)
            contacts = iter_contacts([data], detection.dialect, detection.columns, budget.check)
            try:
                report = await asyncio.to_thread(tally.counted, contacts)
            except _OutOfTime:
                report = None  # the file readers count it, as a big file
            if report is not None and report.rows == 0:
                raise InputError("no_rows", "file")
        if overrides is not None and not accept_fewer and row["status"] == "ready" and stored.etag == row["etag"]:
            _refuse_a_loss(to_json(row), sample, detection, report.to_json() if report else None)
    except InputError as error:
        same_file = stored is not None and stored.etag == row["etag"] and error.code != "file_too_large"
        if overrides is not None and row["status"] == "ready" and same_file:
            raise  # nothing stored changes: the 4xx says what is wrong with these settings
        async with db.acquire() as conn:
            await _fail(conn, upload_id, error)
        raise
    async with db.acquire() as conn:
        async with conn.transaction():
            await _save_detection(conn, upload_id, stored.size, stored.etag, detection,
                                  report.to_json() if report else None)
            if report is None:
                await file_jobs.enqueue(conn, upload_id, "inspect", user_id, supersede=True)
            else:
                await file_jobs.withdraw(conn, upload_id)  # a big file replaced by a small one
        upload = await get(conn, user_id, upload_id)
    assert upload is not None
    return upload, report is None


def _valid_in(sample: bytes, dialect: Dialect, columns: list[Column]) -> tuple[int, int]:
    """(valid addresses, rows) in the file's first bytes."""
    valid = rows = 0
    try:
        for contact in iter_contacts([sample], dialect, columns):
            rows += 1
            valid += check_address(contact.email).normalized is not None
    except InputError:
        pass
    return valid, rows


def _refuse_a_loss(before: dict[str, Any], sample: bytes, detection: Detection,
                   report: dict[str, Any] | None) -> None:
    """A correction that leaves no valid address, or under half of those the file gave, is refused:
    the walk saw «,» on a `;` file and the column «Город» saved silently with 0 correct addresses,
    the way back gone after a reload. A file counted by a worker is judged on its first rows."""
    had = (before.get("report") or {}).get("valid", 0)
    if report is not None:
        valid, rows = report["valid"], report["rows"]
    else:
        had = _valid_in(sample, *stored_detection(before))[0]
        valid, rows = _valid_in(sample, detection.dialect, detection.columns)
    if had > 0 and valid * 2 < had:
        column = detection.columns[detection.dialect.email_column].label if detection.columns else ""
        raise InputError("correction_loses_addresses", "email_column", column=column[:60],
                         **numbers.counts(valid=valid, rows=rows, before=had))


async def _save_detection(conn: Conn, upload_id: uuid.UUID, size: int, etag: str, detection: Detection,
                          report: dict[str, Any] | None) -> None:
    dialect = detection.dialect
    await conn.execute(
        """
        UPDATE uploads SET size_bytes = $2, encoding = $3, delimiter = $4, has_header = $5, email_column = $6,
               columns = $7, preview = $8, report = $9, status = $10, rows_read = $11,
               error_code = NULL, error_detail = NULL, etag = $12, read_by_worker = ($10 = 'inspecting'),
               updated_at = now()
         WHERE id = $1
        """,
        upload_id, size, dialect.encoding, dialect.delimiter, dialect.has_header, dialect.email_column,
        json.dumps([c.__dict__ for c in detection.columns], ensure_ascii=False),
        json.dumps(detection.preview, ensure_ascii=False),
        json.dumps(report, ensure_ascii=False) if report else None,
        "ready" if report else "inspecting",
        report["rows"] if report else 0, etag,
    )


async def inspect(db: asyncpg.Pool, store: UploadStore, reading: Reading) -> None:
    """A file reader's job: stream the whole file, count, and store the report; progress goes with
    the reading's beat. A reading superseded by a correction stops and writes nothing."""
    upload_id = reading.job.subject
    async with db.acquire() as conn:
        row = await conn.fetchrow(f"SELECT user_id, s3_key, etag, {_COLUMNS} FROM uploads WHERE id = $1", upload_id)
        if row is None or row["status"] != "inspecting":
            await file_jobs.done(conn, reading.job)  # deleted, or inspected already
            return
    tally = suppressions.Tally(db, row["user_id"])  # asks about the file's addresses, not the whole list
    upload = to_json(row)
    dialect = Dialect(**upload["dialect"])
    columns = [Column(**c) for c in upload["columns"]]
    progress = [0]

    async def beat(conn: Conn) -> None:
        await conn.execute(
            "UPDATE uploads SET rows_read = $2, updated_at = now() WHERE id = $1 AND status = 'inspecting'",
            upload_id, progress[0])

    reading.beat = beat

    def watched(contacts: Iterator[Any]) -> Iterator[Any]:
        for n, contact in enumerate(contacts, start=1):
            if n % PROGRESS_ROWS == 0:
                progress[0] = n
                reading.check()
            yield contact

    def count() -> dict[str, Any]:
        contacts = watched(iter_contacts(store.chunks(row["s3_key"], row["etag"]), dialect, columns))
        return tally.counted(contacts).to_json()

    failure: InputError | None = None
    try:
        report = await _reading_the_file(count, "file")
        if report["rows"] == 0:
            failure = InputError("no_rows", "file")
    except InputError as error:
        failure = error
    async with db.acquire() as conn, conn.transaction():
        # The upload first, as a correction locks it: then the job (no deadlock between the two).
        await conn.execute("SELECT 1 FROM uploads WHERE id = $1 FOR UPDATE", upload_id)
        if not await file_jobs.done(conn, reading.job):
            return  # a correction replaced this reading: the newer one writes the report
        if failure is not None:
            await _fail(conn, upload_id, failure)
            return
        await conn.execute(
            "UPDATE uploads SET report = $2, rows_read = $3, status = 'ready', updated_at = now()"
            " WHERE id = $1 AND status = 'inspecting'",
            upload_id, json.dumps(report, ensure_ascii=False), report["rows"],
        )


async def delete(db: asyncpg.Pool, store: UploadStore, user_id: int, upload_id: uuid.UUID) -> str:
    """'deleted', 'missing' or 'in_use' (a campaign still reads it)."""
    async with db.acquire() as conn:
        row = await conn.fetchrow("SELECT s3_key FROM uploads WHERE id = $1 AND user_id = $2", upload_id, user_id)
        if row is None:
            return "missing"
        if await conn.fetchval("SELECT EXISTS (SELECT 1 FROM campaigns WHERE upload_id = $1)", upload_id):
            return "in_use"
        async with conn.transaction():
            await conn.execute("DELETE FROM uploads WHERE id = $1", upload_id)
            await file_jobs.withdraw(conn, upload_id)  # a reading under way stops within a second
    await asyncio.to_thread(store.delete, row["s3_key"])
    return "deleted"


PROBLEM_HEADER = {"en": ("Row in the file", "Value", "Problem"), "ru": ("Строка файла", "Значение", "Что не так")}
_REPEATS = {"en": "repeats row {row}", "ru": "повтор строки {row}"}


def problem_header(dialect: Dialect, columns: list[Column], lang: str) -> tuple[str, ...]:
    """The download's header: where, what and why, then the row's other columns as the file names them."""
    return PROBLEM_HEADER[lang] + tuple(c.label for i, c in enumerate(columns) if i != dialect.email_column)


def problem_rows(store: UploadStore, key: str, etag: str | None, dialect: Dialect,
                 columns: list[Column], lang: str = "en") -> Iterator[tuple[Any, ...]]:
    """Every row not sent to — without a valid address, or repeating an earlier row's — as (row in
    the file, the value, why in `lang`, the row's other columns), read from the file again, so the
    download lists them all with what identifies the person, not the report's first examples.
    Repeats are found as the report finds them (16 bytes an address, plus the row's number)."""
    others = [c.field for i, c in enumerate(columns) if i != dialect.email_column]
    first_row: dict[bytes, int] = {}
    for contact in iter_contacts(store.chunks(key, etag), dialect, columns):
        rest = tuple(contact.fields.get(field, "")[:200] for field in others)
        if contact.unclosed_quote_line is not None:
            reason = reason_in(unclosed_quote_reason(contact.unclosed_quote_line), lang)
            yield (contact.row, contact.email[:200], reason, *rest)
            continue
        checked = check_address(contact.email)
        if checked.normalized is None:
            yield (contact.row, contact.email[:200], reason_in(checked.explained, lang), *rest)
            continue
        first = first_row.setdefault(address_key(checked.normalized), contact.row)
        if first != contact.row:
            yield (contact.row, contact.email[:200], _REPEATS[lang].format(row=first), *rest)


def reason_in(bilingual: str, lang: str) -> str:
    """The reader's half of a reason written "по-русски / in English" (the Russian half has no " / ")."""
    russian, _, english = bilingual.partition(" / ")
    return russian if lang == "ru" else english
