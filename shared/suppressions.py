"""The suppression list: one per user account, the addresses none of the user's mail goes to again.

Scope: a person who asked to stop (or whose mailbox bounced) is suppressed for every From
address and every campaign of that account — they asked *the sender* to stop, and rarely know or
care which of the sender's addresses wrote. Entries survive the deletion of the campaign and
the sender they came from (both are kept by value, not by reference).

The rule for "the same mailbox" is `suppression_key` (shared/mailbox_keys.py, which says it
provider by provider); every path compares keys, and nobody reads an account's whole list: the
campaign fan-out and the upload report ask about a file's addresses a chunk at a time (`among`,
`Tally`), as `/api/send-message` and the sender worker do about theirs; the cap on what a person
adds reads one counter row (`by_hand`).
"""

from __future__ import annotations

import asyncio
import csv
import re
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import asyncpg

from shared.addresses import check_address, reason_in_russian
from shared.contacts import ContactRow, Report, inspect_rows
from shared.db import Conn
from shared.errors import InputError, translate
from shared.export import csv_lines
from shared.mailbox_keys import fast_key as fast_key  # the rule, for the list's callers
from shared.mailbox_keys import suppression_key as suppression_key
from shared.mailbox_keys import tag_keys as tag_keys

REASONS = ("unsubscribed", "hard_bounce", "soft_bounce", "complaint", "manual", "imported")
PAGE = 200
MAX_IMPORT_ROWS = 100_000
# What a person adds (by hand or by import) stops at this many entries per account, counted among
# themselves (`suppression_counts`, kept by migration 0024's triggers): unsubscribes and bounces are
# always recorded, never refused and never counted against it (the law and the sender's reputation
# need them, and there are never more of them than mail sent).
MAX_ENTRIES = 1_000_000
_BY_HAND = ("manual", "imported")
LOOKUP_BATCH = 5_000  # keys asked about in one indexed query

T = TypeVar("T")
# Imports and exports work in threads of their own: in asyncio's default pool six imports queued
# ahead of log-ins' password hashing and /api/send-message's parsing (another user's send: 18 s).
FILE_THREADS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="suppression-files")


async def in_file_thread(work: Callable[..., T], *args: Any) -> T:
    """`work(*args)` in the imports' and exports' own threads (FILE_THREADS)."""
    return await asyncio.get_running_loop().run_in_executor(FILE_THREADS, work, *args)


class Tally:
    """Counts the suppressed among addresses a worker thread goes through (a contact file being
    read), asking the database about LOOKUP_BATCH keys at a time: an account's list of a million
    is never read whole, and the event loop never waits on the file. `counted` runs the file's
    `inspect_rows` with it; make one on the event loop, use it in a thread."""

    def __init__(self, db: asyncpg.Pool, user_id: int) -> None:
        self._db, self._user_id = db, user_id
        self._loop = asyncio.get_running_loop()
        self._pending: list[str] = []
        self.found = 0

    def offer(self, email: str) -> bool:
        """Note a normalised address; always False — the answer comes in batches, in `found`."""
        self._pending.append(fast_key(email))
        if len(self._pending) >= LOOKUP_BATCH:
            self.flush()
        return False

    def flush(self) -> int:
        wanted, self._pending = self._pending, []
        if wanted:
            hits = asyncio.run_coroutine_threadsafe(self._among(wanted), self._loop).result()
            self.found += sum(1 for key in wanted if key in hits)  # each offer is one distinct address
        return self.found

    async def _among(self, wanted: list[str]) -> set[str]:
        async with self._db.acquire() as conn:
            return await among(conn, self._user_id, wanted)

    def counted(self, contacts: Iterable[ContactRow]) -> Report:
        """`inspect_rows` of the contacts, its suppressed count asked of the database in batches."""
        report = inspect_rows(contacts, self.offer)
        suppressed = self.flush()
        report.suppressed += suppressed
        report.valid -= suppressed  # offered addresses were counted valid until the answer came
        return report


async def among(conn: Conn, user_id: int, candidates: Iterable[str]) -> set[str]:
    """Which of these keys are suppressed (one indexed lookup each, never the whole list)."""
    wanted = list(set(candidates))
    if not wanted:
        return set()
    # One primary-key probe per key, whatever the statistics say: with `address = ANY(…)` a freshly
    # imported list (not yet analysed) was scanned whole for every batch of 5,000.
    rows = await conn.fetch(
        "SELECT k.address FROM unnest($2::text[]) AS k(address), LATERAL (SELECT 1 FROM suppressed s"
        " WHERE s.user_id = $1 AND s.address = k.address LIMIT 1) AS hit", user_id, wanted)
    return {r["address"] for r in rows}


async def is_suppressed(conn: Conn, user_id: int, email: str) -> bool:
    found = await conn.fetchval("SELECT 1 FROM suppressed WHERE user_id = $1 AND address = $2",
                                user_id, suppression_key(email))
    return found is not None


def entry(row: Any) -> dict[str, Any]:
    """A row of `suppressed` as the API shows it."""
    return {
        "email": row["email"], "reason": row["reason"], "created_at": row["created_at"].isoformat(),
        "campaign_id": str(row["campaign_id"]) if row["campaign_id"] else None, "sender_email": row["sender_email"],
        "detail": row["detail"],
    }


async def list_page(conn: Conn, user_id: int, after: str, limit: int = PAGE) -> tuple[list[dict[str, Any]], str | None]:
    """One page of the whole list in key order (the primary key's), and the next cursor. A search
    is suppression_search.page."""
    rows = await conn.fetch(
        "SELECT address, email, reason, created_at, campaign_id, sender_email, detail FROM suppressed"
        " WHERE user_id = $1 AND address > $2 ORDER BY address LIMIT $3", user_id, after, limit)
    return [entry(r) for r in rows], rows[-1]["address"] if len(rows) == limit else None


async def by_hand(conn: Conn, user_id: int) -> int:
    """How many of the account's entries a person added or imported: one row, whatever the list's
    size (`count(*)` read up to a million entries for every address added by hand)."""
    found: int | None = await conn.fetchval("SELECT by_hand FROM suppression_counts WHERE user_id = $1", user_id)
    return found or 0


COUNT_CAP = 10_000  # the list page's count stops here ("10 000+"): a million took 0.1 s a page


async def count_capped(conn: Conn, user_id: int, cap: int = COUNT_CAP) -> tuple[int, bool]:
    """How many entries the list has, counted no further than `cap`; True when there are more."""
    found: int = await conn.fetchval(
        "SELECT count(*) FROM (SELECT 1 FROM suppressed WHERE user_id = $1 LIMIT $2) AS first", user_id, cap + 1)
    return min(found, cap), found > cap


def _by_key(emails: list[str]) -> dict[str, str]:
    unique: dict[str, str] = {}
    for email in emails:
        unique.setdefault(suppression_key(email), email)
    return unique


async def add(conn: Conn, user_id: int, emails: Iterable[str], reason: str, *, campaign_id: uuid.UUID | None = None,
              sender_email: str | None = None, detail: str | None = None, field: str = "emails") -> int:
    """Suppress addresses (validated by the caller); returns how many mailboxes were new. An
    address already on the list keeps its first reason. What a person adds (`manual`,
    `imported`) past MAX_ENTRIES of its kind is refused whole, as an InputError on `field`; an
    unsubscribe or a bounce is always recorded, and takes no lock but its own key's."""
    assert reason in REASONS, reason
    listed = list(emails)
    # Normalising a big import is CPU work: in a thread, so the event loop stays free.
    unique = await in_file_thread(_by_key, listed) if len(listed) > 1000 else _by_key(listed)
    async with conn.transaction():
        if reason in _BY_HAND:  # one at a time per account, so two imports cannot both fit
            await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('sendpy.suppressed', $1))", user_id)
        added: int = await conn.fetchval(
            "WITH added AS (INSERT INTO suppressed (user_id, address, email, reason, campaign_id, sender_email, detail)"
            " SELECT $1, a, e, $4, $5, $6, $7 FROM unnest($2::text[], $3::text[]) AS u(a, e)"
            " ON CONFLICT DO NOTHING RETURNING 1) SELECT count(*) FROM added",
            user_id, list(unique), list(unique.values()), reason, campaign_id, sender_email,
            detail[:500] if detail else None,
        )
        if reason in _BY_HAND and added:
            total = await by_hand(conn, user_id)  # the insert's trigger has counted it in already
            if total > MAX_ENTRIES:  # raised inside the transaction: nothing of it stays
                raise InputError("suppressions_full", field, limit=f"{MAX_ENTRIES:,}", count=f"{total - added:,}",
                                 adding=f"{added:,}")
    return added


async def remove(conn: Conn, user_id: int, email: str) -> bool:
    removed = await conn.fetchval("DELETE FROM suppressed WHERE user_id = $1 AND address = $2 RETURNING 1",
                                  user_id, suppression_key(email))
    return removed is not None


async def unsubscribe(conn: Conn, campaign_id: uuid.UUID, position: int) -> str | None:
    """Suppress a campaign's recipient (their unsubscribe link); the address, None if unknown."""
    row = await conn.fetchrow(
        "SELECT r.email, c.user_id, s.from_email FROM recipients r JOIN campaigns c ON c.id = r.campaign_id"
        " LEFT JOIN senders s ON s.id = c.sender_id WHERE r.campaign_id = $1 AND r.position = $2",
        campaign_id, position,
    )
    if row is None:
        return None
    await add(conn, row["user_id"], [row["email"]], "unsubscribed", campaign_id=campaign_id,
              sender_email=row["from_email"])
    email: str = row["email"]
    return email


@asynccontextmanager
async def one_import(conn: Conn, user_id: int) -> AsyncIterator[bool]:
    """The account's import lock, held on `conn` while the block runs; False when another import
    of the account (in any API process) holds it. A session lock: a pool connection's reset
    drops it, should the unlock never run."""
    if not await conn.fetchval("SELECT pg_try_advisory_lock(hashtextextended('sendpy.suppressions.import', $1))",
                               user_id):
        yield False
        return
    try:
        yield True
    finally:
        await conn.execute("SELECT pg_advisory_unlock(hashtextextended('sendpy.suppressions.import', $1))", user_id)


def parse_import_bytes(raw: bytes) -> tuple[list[str], list[dict[str, Any]], int]:
    """`parse_import` of an uploaded file: UTF-8 (with or without BOM), else Windows-1251."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("cp1251")  # Excel in a Russian locale; every byte decodes
    return parse_import(text.replace("\x00", ""))


SNIFF_CHARS = 4096  # csv.Sniffer is quadratic in its sample: a crafted 75 KB one took 28 s
MAX_LINE_CHARS = 10_000  # an address and a few columns; csv itself gives up past 131,072
MAX_PROBLEMS = 100  # listed; all are counted


def _dialect(text: str) -> type[csv.Dialect] | csv.Dialect:
    """The separator most lines of the first SNIFF_CHARS agree on (lines of one cell, with none,
    have no say). csv.Sniffer wants every line to agree: a BOM, an `Email;Name` header and a few
    malformed lines (an unclosed quote) made it fall back to commas and every `addr;name` row was
    rejected (issue 11). Only '"' quotes: the export writes '-minus@…' (formula-neutralised),
    which the sniffer took for quoting with "'"."""
    sample = text[:SNIFF_CHARS]
    if len(text) > SNIFF_CHARS and "\n" in sample:
        sample = sample[:sample.rindex("\n")]  # whole lines only
    lines = [line for line in re.split(r"\r\n|\r|\n", sample.lstrip("\ufeff")) if line.strip()]
    best, agreeing = ",", 0
    for separator in (";", ",", "\t"):  # a tie goes to the first: ";" is what Excel writes in Russia
        counts = Counter(_outside_quotes(line, separator) for line in lines)
        counts.pop(0, None)
        if counts and (agree := counts.most_common(1)[0][1]) > agreeing:
            best, agreeing = separator, agree
    if not agreeing:  # one address a line
        return csv.excel

    class Guessed(csv.excel):
        delimiter = best

    return Guessed


def _outside_quotes(line: str, separator: str) -> int:
    """How many times `separator` occurs in `line` outside '"…"' (an unclosed quote runs to the end)."""
    found, quoted = 0, False
    for char in line:
        if char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            found += 1
    return found


def _unneutralised(cell: str) -> str:
    """A cell as the export wrote it, without the "'" that keeps a spreadsheet from evaluating it."""
    return cell[1:] if cell[:1] == "'" and cell[1:2] in ("=", "+", "-", "@") else cell


def parse_import(text: str) -> tuple[list[str], list[dict[str, Any]], int]:
    """Addresses from a CSV or a plain list (one a line; the first cell that holds an "@" counts,
    so exports of this list, of a campaign and of most tools import as they are). Returns the
    valid addresses, the first MAX_PROBLEMS lines without one ({"line", "value", "code", …}, see
    `explain`) and how many lines had none.

    Each line is read on its own: a stray quote or an overlong cell costs its line, never the
    lines after it (a quoted cell spanning lines is no part of an address list)."""
    dialect = _dialect(text)
    valid: list[str] = []
    problems: list[dict[str, Any]] = []
    bad = 0

    def problem(line: int, value: str, code: str, **params: str) -> None:
        nonlocal bad
        bad += 1
        if len(problems) < MAX_PROBLEMS:
            problems.append({"line": line, "value": value[:200], "code": code, **params})

    lines = re.split(r"\r\n|\r|\n", text)  # Windows, Unix and old Mac line ends alike
    if len(lines) > MAX_IMPORT_ROWS + 1 or (len(lines) == MAX_IMPORT_ROWS + 1 and lines[-1].strip()):
        raise InputError("too_many", "file", count=f"> {MAX_IMPORT_ROWS:,}", limit=f"{MAX_IMPORT_ROWS:,}")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if len(line) > MAX_LINE_CHARS:
            problem(number, line, "import_line_too_long", limit=f"{MAX_LINE_CHARS:,}")
            continue
        try:
            cells = next(csv.reader([line], dialect), [])
        except csv.Error as exc:
            problem(number, line, "import_bad_line", error=str(exc))
            continue
        candidate = next((_unneutralised(c.strip()) for c in cells if "@" in c), None)
        if candidate is None:
            if number > 1:  # the first line may be a header
                problem(number, line, "import_no_address")
            continue
        checked = check_address(candidate)
        if checked.normalized is None:
            problem(number, candidate, "import_bad_address", reason=checked.reason or "")
            continue
        valid.append(checked.normalized)
    return valid, problems, bad


def explain(problems: list[dict[str, Any]], lang: str) -> list[dict[str, Any]]:
    """Problems as a person reads them in `lang`: line, value, reason."""
    out = []
    for problem in problems:
        params = {k: v for k, v in problem.items() if k not in ("line", "value", "code")}
        if problem["code"] == "import_bad_address":
            params["reason_ru"] = reason_in_russian(params["reason"])
        reason = translate(problem["code"], lang, **params)
        out.append({"line": problem["line"], "row": problem["line"], "value": problem["value"], "reason": reason})
    return out


EXPORT_HEADER = {
    "en": ("email", "reason", "added_at", "campaign_id", "sender_email", "detail"),
    "ru": ("Эл. почта", "Причина", "Добавлен (UTC)", "Рассылка", "Адрес отправителя", "Подробности"),
}
REASON_NAMES = {
    "ru": {"unsubscribed": "отписался", "hard_bounce": "возврат", "soft_bounce": "повторные возвраты",
           "complaint": "жалоба на спам", "manual": "добавлен вручную", "imported": "загружен из файла"},
}
EXPORT_PAGE = 5000


def _csv_chunks(cells: Iterable[list[Any]], header: list[str] | None) -> list[str]:
    return list(csv_lines(cells, header, ";"))


async def export_csv(db: asyncpg.Pool, user_id: int, lang: str = "en") -> AsyncIterator[str]:
    """The whole list as CSV in `lang` (semicolons and a BOM, so Excel in a Russian locale opens it
    as columns), EXPORT_PAGE rows at a time: a list of a million never sits in memory whole.
    One entry a line (line breaks in a bounce's words become spaces), so it imports back."""
    header: list[str] | None = list(EXPORT_HEADER.get(lang, EXPORT_HEADER["en"]))
    names = REASON_NAMES.get(lang, {})
    after = ""
    yield "\ufeff"
    while True:
        async with db.acquire() as conn:
            rows = await conn.fetch(
                "SELECT address, email, reason, created_at, campaign_id, sender_email, detail FROM suppressed"
                " WHERE user_id = $1 AND address > $2 ORDER BY address LIMIT $3", user_id, after, EXPORT_PAGE)
        cells = ([r["email"], names.get(r["reason"], r["reason"]),
                  r["created_at"].isoformat() if lang == "en" else r["created_at"].strftime("%Y-%m-%d %H:%M:%S"),
                  r["campaign_id"], r["sender_email"], " ".join((r["detail"] or "").split()) or None]
                 for r in rows)
        for chunk in await in_file_thread(_csv_chunks, cells, header):
            yield chunk
        header = None
        if len(rows) < EXPORT_PAGE:
            return
        after = rows[-1]["address"]
