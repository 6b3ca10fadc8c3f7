"""The suppression list: one per user account, the addresses none of the user's mail goes to again.

Scope: a person who asked to stop (or whose mailbox bounced) is suppressed for every From
address and every campaign of that account — they asked *the sender* to stop, and rarely know or
care which of the sender's addresses wrote. Entries survive the deletion of the campaign and
the sender they came from (both are kept by value, not by reference).

The rule for "the same mailbox" is `suppression_key`; every path asks `keys(...)` and compares
keys: the campaign fan-out, `/api/send-message`, the upload report and test sends.
"""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from collections.abc import Iterable
from typing import Any

from shared.addresses import check_address
from shared.db import Conn
from shared.errors import InputError
from shared.export import safe_cell

REASONS = ("unsubscribed", "hard_bounce", "soft_bounce", "complaint", "manual", "imported")
PAGE = 200
MAX_IMPORT_ROWS = 100_000

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


async def keys(conn: Conn, user_id: int) -> set[str]:
    """Every suppressed mailbox of the user (keys, compare with `fast_key`/`suppression_key`)."""
    rows = await conn.fetch("SELECT address FROM suppressed WHERE user_id = $1", user_id)
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
              sender_email: str | None = None, detail: str | None = None) -> int:
    """Suppress addresses (validated by the caller); returns how many mailboxes were new. An
    address already on the list keeps its first reason."""
    assert reason in REASONS, reason
    listed = list(emails)
    # Normalising a big import is CPU work: in a thread, so the event loop stays free.
    unique = await asyncio.to_thread(_by_key, listed) if len(listed) > 1000 else _by_key(listed)
    added: int = await conn.fetchval(
        "WITH added AS (INSERT INTO suppressed (user_id, address, email, reason, campaign_id, sender_email, detail)"
        " SELECT $1, a, e, $4, $5, $6, $7 FROM unnest($2::text[], $3::text[]) AS u(a, e)"
        " ON CONFLICT DO NOTHING RETURNING 1) SELECT count(*) FROM added",
        user_id, list(unique), list(unique.values()), reason, campaign_id, sender_email,
        detail[:500] if detail else None,
    )
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


def parse_import_bytes(raw: bytes) -> tuple[list[str], list[dict[str, Any]]]:
    """`parse_import` of an uploaded file: UTF-8 (with or without BOM), else Windows-1251."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("cp1251")  # Excel in a Russian locale; every byte decodes
    return parse_import(text.replace("\x00", ""))


def parse_import(text: str) -> tuple[list[str], list[dict[str, Any]]]:
    """Addresses from a CSV or a plain list (one a line; the first cell that holds an "@" counts,
    so exports of this list, of a campaign and of most tools import as they are). Returns the
    valid addresses and the first few problems (row, value, reason)."""
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(text[:65536], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    valid: list[str] = []
    problems: list[dict[str, Any]] = []
    for number, cells in enumerate(csv.reader(io.StringIO(text), dialect), start=1):
        if number > MAX_IMPORT_ROWS:
            raise InputError("too_many", "file", count=f"> {MAX_IMPORT_ROWS:,}", limit=f"{MAX_IMPORT_ROWS:,}")
        candidate = next((c.strip() for c in cells if "@" in c), None)
        if candidate is None:
            if number > 1 and any(c.strip() for c in cells) and len(problems) < 10:
                problems.append({"row": number, "value": ",".join(cells)[:200], "reason": "no address"})
            continue
        checked = check_address(candidate)
        if checked.normalized is None:
            if len(problems) < 10:
                problems.append({"row": number, "value": candidate[:200], "reason": checked.explained})
            continue
        valid.append(checked.normalized)
    return valid, problems


async def export_csv(conn: Conn, user_id: int) -> str:
    """The whole list as CSV (semicolons and a BOM, so Excel in a Russian locale opens it as columns)."""
    rows = await conn.fetch(
        "SELECT address, email, reason, created_at, campaign_id, sender_email, detail FROM suppressed"
        " WHERE user_id = $1 ORDER BY address", user_id)

    def write() -> str:
        out = io.StringIO()
        writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
        writer.writerow(["email", "reason", "added_at", "campaign_id", "sender_email", "detail"])
        for r in rows:
            writer.writerow([safe_cell(v) for v in (r["email"], r["reason"], r["created_at"].isoformat(),
                                                     r["campaign_id"], r["sender_email"], r["detail"])])
        return "\ufeff" + out.getvalue()

    return await asyncio.to_thread(write)  # 300,000 rows are a second of CPU
