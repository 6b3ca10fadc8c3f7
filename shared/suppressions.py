"""Suppression lists: who never gets mail from a user again (unsubscribed, added by hand).

`suppressed_addresses` is the one rule every path applies — the upload report and the fan-out
alike: an address on any of the user's lists is suppressed for all of that user's mail. A person
who asked one of a user's From addresses to stop expects the user to stop.
"""

from __future__ import annotations

import uuid
from typing import Any

from shared.db import Conn

PAGE = 500


def normalize(email: str) -> str:
    return email.strip().lower()


async def suppressed_addresses(conn: Conn, user_id: int) -> set[str]:
    """Every suppressed address of the user, normalised."""
    rows = await conn.fetch(
        "SELECT DISTINCT s.email FROM suppressions s JOIN senders d ON d.id = s.sender_id WHERE d.user_id = $1",
        user_id,
    )
    return {r["email"] for r in rows}


async def list_page(conn: Conn, sender_id: int, after: str) -> tuple[list[dict[str, Any]], str | None]:
    """One page of a sender's list in address order, and the cursor of the next page."""
    rows = await conn.fetch(
        "SELECT email, reason, created_at FROM suppressions WHERE sender_id = $1 AND email > $2"
        " ORDER BY email LIMIT $3",
        sender_id, normalize(after), PAGE,
    )
    items = [{"email": r["email"], "reason": r["reason"], "created_at": r["created_at"].isoformat()} for r in rows]
    return items, items[-1]["email"] if len(items) == PAGE else None


async def add(conn: Conn, sender_id: int, emails: list[str], reason: str) -> int:
    """Add addresses (already validated); returns how many were new."""
    added: int = await conn.fetchval(
        "WITH added AS (INSERT INTO suppressions (sender_id, email, reason)"
        " SELECT $1, e, $3 FROM unnest($2::text[]) AS e ON CONFLICT DO NOTHING RETURNING 1)"
        " SELECT count(*) FROM added",
        sender_id, sorted({normalize(e) for e in emails}), reason,
    )
    return added


async def remove(conn: Conn, sender_id: int, email: str) -> bool:
    removed = await conn.fetchval("DELETE FROM suppressions WHERE sender_id = $1 AND email = $2 RETURNING 1",
                                  sender_id, normalize(email))
    return removed is not None


async def unsubscribe(conn: Conn, campaign_id: uuid.UUID, position: int) -> str | None:
    """Suppress a campaign's recipient (their unsubscribe link); the address, None if unknown."""
    row = await conn.fetchrow(
        "SELECT r.email, c.sender_id FROM recipients r JOIN campaigns c ON c.id = r.campaign_id"
        " WHERE r.campaign_id = $1 AND r.position = $2",
        campaign_id, position,
    )
    if row is None or row["sender_id"] is None:
        return None
    await add(conn, row["sender_id"], [row["email"]], "unsubscribed")
    email: str = row["email"]
    return email
