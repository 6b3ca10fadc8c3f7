"""The suppression list: one per user account, the addresses none of the user's mail goes to again.

Scope: a person who asked to stop (or whose mailbox bounced) is suppressed for every From
address and every campaign of that account — they asked *the sender* to stop, and rarely know or
care which of the sender's addresses wrote. Entries survive the deletion of the campaign and
the sender they came from (both are kept by value, not by reference).

The rule for "the same mailbox" is `suppression_key`; every path compares keys: the campaign
fan-out and the upload report load the account's (`keys`, compact), `/api/send-message` and the
sender worker ask about their addresses only (`among`), test sends about one.
"""

from __future__ import annotations

import asyncio
import bisect
import csv
import re
import sys
import uuid
from array import array
from collections.abc import AsyncIterator, Iterable
from typing import Any

import asyncpg

from shared.addresses import check_address, reason_in_russian
from shared.db import Conn
from shared.errors import InputError, translate
from shared.export import csv_lines

REASONS = ("unsubscribed", "hard_bounce", "soft_bounce", "complaint", "manual", "imported")
PAGE = 200
MAX_IMPORT_ROWS = 100_000
# What a person adds (by hand or by import) stops at this many entries per account; unsubscribes
# and bounces are always recorded (the law and the sender's reputation need them, and there are
# never more of them than mail sent).
MAX_ENTRIES = 1_000_000
_BY_HAND = ("manual", "imported")
LOAD_PAGE = 50_000

# Providers whose mailboxes ignore part of the address. Elsewhere only case is ignored: the
# local part is the receiving server's to interpret, and "+" or "." may be significant there.
_GMAIL = {"gmail.com", "googlemail.com"}  # dots and "+tag" ignored; googlemail.com is gmail.com
_YANDEX = {"yandex.ru", "yandex.com", "yandex.by", "yandex.kz", "yandex.ua", "ya.ru", "narod.ru"}  # one login
_PLUS_TAGS = {"outlook.com", "hotmail.com", "live.com", "msn.com", "icloud.com", "me.com"}


def suppression_key(email: str) -> str:
    """The mailbox an address reaches, as a comparable string.

    Case-insensitive everywhere, the domain as IDNA (punycode); for Gmail dots and "+tags" in
    the local part do not count and googlemail.com is gmail.com; for Yandex "+tags" do not count,
    "." equals "-" and every Yandex domain is the same login; for Outlook, Hotmail, Live, MSN,
    and iCloud "+tags" do not count.
    """
    checked = check_address(email).normalized or email.strip()
    local, _, domain = checked.lower().rpartition("@")
    if domain in _GMAIL:
        return f"{local.split('+', 1)[0].replace('.', '')}@gmail.com"
    if domain in _YANDEX:
        return f"{local.split('+', 1)[0].replace('.', '-')}@yandex.ru"
    if domain in _PLUS_TAGS:
        return f"{local.split('+', 1)[0]}@{domain}"
    return f"{local}@{domain}"


def fast_key(normalized: str) -> str:
    """`suppression_key` for an address already normalised by check_address (recipients, uploads):
    skips the second validation, which is most of the cost on a million-row file."""
    local, _, domain = normalized.lower().rpartition("@")
    if domain in _GMAIL or domain in _YANDEX or domain in _PLUS_TAGS:
        return suppression_key(normalized)
    return f"{local}@{domain}"


class SuppressedKeys:
    """An account's suppressed keys in about 9 bytes each: the sorted 64-bit hashes of the keys
    in one byte string, with where each range of leading bits starts. A million entries keep
    ~9 MB, not the ~120 MB of a set of strings (nor the ~90 MB more of the rows read at once). A
    false match needs two keys' hashes to collide, odds of about n in 2**64; str hashes are keyed
    per process, so nobody can aim for one."""

    def __init__(self) -> None:
        self._digests = array("q")
        self._blob = b""
        self._bits = 1
        self._starts = array("q", [0, 0, 0])

    def add(self, keys: Iterable[str]) -> None:
        self._digests.extend(map(hash, keys))

    def freeze(self) -> SuppressedKeys:
        ordered = array("q", sorted(self._digests))
        self._digests = array("q")
        self._blob = ordered.tobytes()
        self._bits = max(1, min(16, (len(ordered) // 16).bit_length()))  # ~16 hashes a range
        half, shift = 1 << (self._bits - 1), 64 - self._bits
        self._starts = array("q", (bisect.bisect_left(ordered, (b - half) << shift) for b in range(2 * half)))
        self._starts.append(len(ordered))
        return self

    def __contains__(self, key: object) -> bool:
        digest = hash(key)
        bucket = (digest >> (64 - self._bits)) + (1 << (self._bits - 1))
        low, high = self._starts[bucket] * 8, self._starts[bucket + 1] * 8
        wanted = digest.to_bytes(8, sys.byteorder, signed=True)
        at = self._blob.find(wanted, low, high)
        while at >= 0 and (at - low) % 8:  # a match across two hashes is no match
            at = self._blob.find(wanted, at + 1, high)
        return at >= 0

    def __len__(self) -> int:
        return len(self._blob) // 8


async def keys(conn: Conn, user_id: int) -> SuppressedKeys:
    """Every suppressed mailbox of the user, to test keys against (`fast_key`/`suppression_key`):
    read through a cursor LOAD_PAGE rows at a time, kept compact (see SuppressedKeys)."""
    found = SuppressedKeys()
    async with conn.transaction():  # a cursor lives in one
        cursor = await conn.cursor("SELECT address FROM suppressed WHERE user_id = $1", user_id)
        while rows := await cursor.fetch(LOAD_PAGE):
            found.add(r["address"] for r in rows)
    return await asyncio.to_thread(found.freeze)  # sorting a million: CPU the event loop need not wait on


async def among(conn: Conn, user_id: int, candidates: Iterable[str]) -> set[str]:
    """Which of these keys are suppressed (one indexed lookup each, never the whole list)."""
    wanted = list(set(candidates))
    if not wanted:
        return set()
    rows = await conn.fetch("SELECT address FROM suppressed WHERE user_id = $1 AND address = ANY($2::text[])",
                            user_id, wanted)
    return {r["address"] for r in rows}


async def is_suppressed(conn: Conn, user_id: int, email: str) -> bool:
    found = await conn.fetchval("SELECT 1 FROM suppressed WHERE user_id = $1 AND address = $2",
                                user_id, suppression_key(email))
    return found is not None


def _item(row: Any) -> dict[str, Any]:
    return {
        "email": row["email"], "reason": row["reason"], "created_at": row["created_at"].isoformat(),
        "campaign_id": str(row["campaign_id"]) if row["campaign_id"] else None, "sender_email": row["sender_email"],
        "detail": row["detail"],
    }


async def list_page(conn: Conn, user_id: int, search: str, after: str, limit: int = PAGE
                    ) -> tuple[list[dict[str, Any]], str | None]:
    """One page in address order (optionally only addresses containing `search`), and the next cursor."""
    pattern = "%" + search.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    rows = await conn.fetch(
        "SELECT address, email, reason, created_at, campaign_id, sender_email, detail FROM suppressed"
        " WHERE user_id = $1 AND address > $2 AND ($3 = '%%' OR address LIKE $3 OR lower(email) LIKE $3)"
        " ORDER BY address LIMIT $4",
        user_id, after, pattern, limit,
    )
    items = [_item(r) for r in rows]
    return items, rows[-1]["address"] if len(rows) == limit else None


async def count(conn: Conn, user_id: int) -> int:
    total: int = await conn.fetchval("SELECT count(*) FROM suppressed WHERE user_id = $1", user_id)
    return total


def _by_key(emails: list[str]) -> dict[str, str]:
    unique: dict[str, str] = {}
    for email in emails:
        unique.setdefault(suppression_key(email), email)
    return unique


async def add(conn: Conn, user_id: int, emails: Iterable[str], reason: str, *, campaign_id: uuid.UUID | None = None,
              sender_email: str | None = None, detail: str | None = None, field: str = "emails") -> int:
    """Suppress addresses (validated by the caller); returns how many mailboxes were new. An
    address already on the list keeps its first reason. What a person adds (`manual`,
    `imported`) past MAX_ENTRIES is refused whole, as an InputError on `field`."""
    assert reason in REASONS, reason
    listed = list(emails)
    # Normalising a big import is CPU work: in a thread, so the event loop stays free.
    unique = await asyncio.to_thread(_by_key, listed) if len(listed) > 1000 else _by_key(listed)
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
            total = await count(conn, user_id)
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
    sample = text[:SNIFF_CHARS]
    if len(text) > SNIFF_CHARS and "\n" in sample:
        sample = sample[:sample.rindex("\n")]  # whole lines only
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t")
    except csv.Error:
        return csv.excel


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
        candidate = next((c.strip() for c in cells if "@" in c), None)
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
        for chunk in csv_lines(cells, header, ";"):
            yield chunk
        header = None
        if len(rows) < EXPORT_PAGE:
            return
        after = rows[-1]["address"]
