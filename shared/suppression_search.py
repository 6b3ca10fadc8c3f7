"""Searching an account's suppression list: by the start of an address, or by its domain.

A list holds up to a million entries people add (and any number of bounces); `LIKE '%…%'` read
every one of them (0.1–3.6 s at 1,000,000, and five searches at once held the API's whole pool
of five connections for 1.5 s). pg_trgm would serve substrings, but the Postgres bundled for the
local stack and the tests (pgserver) does not ship it. So a search is what a btree in byte order
serves, whatever the database's collation (migration 0017): the start of the mailbox's key
(`ann`, `ivan.petrov@g`) or the start of its domain (`@mail.ru`), one ordered range scan of at
most a page per spelling tried. Each query also runs under SEARCH_TIMEOUT_MS, so whatever the
planner does, a search costs the pool at most that; past it the person is asked to type more.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from shared.addresses import check_address
from shared.db import Conn
from shared.errors import InputError
from shared.suppressions import PAGE, entry, suppression_key

MIN_CHARS = 2  # besides "@": one letter names a twenty-sixth of the list
SEARCH_TIMEOUT_MS = 1000
_LAST_CHAR = 0x10FFFF


def _upper_bound(prefix: str) -> str | None:
    """The least string above every string starting with `prefix`, in code-point order (which is
    UTF-8 byte order, the "C" collation's): the prefix with its last character one higher."""
    while prefix:
        last = ord(prefix[-1]) + 1
        if last == 0xD800:  # surrogates cannot be sent; nothing sorts between them and U+E000
            last = 0xE000
        if last <= _LAST_CHAR:
            return prefix[:-1] + chr(last)
        prefix = prefix[:-1]
    return None


def _domain_key(domain: str) -> str:
    """A domain as keys hold it (googlemail.com is gmail.com, IDN as punycode) when it is a whole
    domain; what was typed otherwise (the start of one)."""
    return suppression_key(f"x@{domain}").rpartition("@")[2] if domain else domain


def key_prefixes(search: str) -> list[str]:
    """The starts of keys a search for the start of an address stands for: the key itself for a
    whole address; for a part, as typed and, when it holds dots, as Gmail (dots dropped) and Yandex
    (dots as hyphens) key it — "ivan.petrov" finds ivanpetrov@gmail.com too."""
    typed = search.strip().lower()
    if check_address(typed).normalized is not None:
        return [suppression_key(typed)]
    local, at, domain = typed.partition("@")
    if at and domain:
        domain = _domain_key(domain) if "." in domain else domain
    locals_ = [local] + ([local.replace(".", ""), local.replace(".", "-")] if "." in local else [])
    found = {f"{one}{at}{domain}" for one in locals_}
    # A spelling that starts with another adds nothing but duplicates.
    return sorted(p for p in found if not any(o != p and p.startswith(o) for o in found))


async def page(conn: Conn, user_id: int, search: str, after: str, limit: int = PAGE
               ) -> tuple[list[dict[str, Any]], str | None]:
    """One page of the entries whose key starts with `search` (or, for "@domain", whose domain
    does; also for "domain.tld" when no key starts with that), in byte order, and the next cursor.
    InputError on a search too short, or one the database could not answer within SEARCH_TIMEOUT_MS."""
    typed = search.strip().lower()
    if len(typed.replace("@", "")) < MIN_CHARS:
        raise InputError("search_too_short", "q", min=MIN_CHARS)
    async with conn.transaction():
        await conn.execute(f"SET LOCAL statement_timeout = {SEARCH_TIMEOUT_MS}")
        try:
            prefixes = [] if typed.startswith("@") else key_prefixes(typed)
            if typed.startswith("@"):
                rows = await _by_domain(conn, user_id, _domain_key(typed[1:]), after, limit)
            elif "@" not in typed and "." in typed and not await _by_key(conn, user_id, prefixes, "", 1):
                # "mail.ru" typed without its "@": no address starts with it, so the domain is meant
                # (asked from the start, so that every page of it decides alike).
                rows = await _by_domain(conn, user_id, _domain_key(typed), after, limit)
            else:
                rows = await _by_key(conn, user_id, prefixes, after, limit)
        except asyncpg.QueryCanceledError:
            raise InputError("search_too_slow", "q", seconds=SEARCH_TIMEOUT_MS // 1000) from None
    return [entry(r) for r in rows], rows[-1]["address"] if len(rows) == limit else None


async def _by_key(conn: Conn, user_id: int, prefixes: list[str], after: str, limit: int) -> list[Any]:
    ranges = [(p, hi) for p in prefixes if (hi := _upper_bound(p)) is not None]
    # Each spelling is its own ordered range of the index on (user_id, address COLLATE "C"); the
    # few pages merge in order.
    return await conn.fetch(
        """
        SELECT s.* FROM unnest($3::text[], $4::text[]) AS p(lo, hi) CROSS JOIN LATERAL (
            SELECT address, email, reason, created_at, campaign_id, sender_email, detail FROM suppressed
             WHERE user_id = $1 AND address COLLATE "C" >= p.lo AND address COLLATE "C" < p.hi
               AND address COLLATE "C" > $2
             ORDER BY address COLLATE "C" LIMIT $5) AS s
        ORDER BY s.address COLLATE "C" LIMIT $5
        """,
        user_id, after, [lo for lo, _ in ranges], [hi for _, hi in ranges], limit)


async def _by_domain(conn: Conn, user_id: int, domain: str, after: str, limit: int) -> list[Any]:
    upper = _upper_bound(domain)
    if upper is None:
        return []
    # Ordered by domain, then key: the index on (user_id, domain, key) in "C" order, read from
    # the cursor (a key names its domain) or from the first domain that fits, whichever is later:
    # the scan starts there, not at the account's first entry.
    start = max((after.rpartition("@")[2], after), (domain, ""))
    return await conn.fetch(
        """
        SELECT address, email, reason, created_at, campaign_id, sender_email, detail FROM suppressed
         WHERE user_id = $1
           AND split_part(address, '@', -1) COLLATE "C" >= $2 AND split_part(address, '@', -1) COLLATE "C" < $4
           AND (split_part(address, '@', -1) COLLATE "C", address COLLATE "C") > ($2 COLLATE "C", $3 COLLATE "C")
         ORDER BY split_part(address, '@', -1) COLLATE "C", address COLLATE "C" LIMIT $5
        """,
        user_id, start[0], start[1], upper, limit)
