"""Campaign rows: what a worker needs to send one, status changes, and progress."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from shared.db import Conn

OPEN_FOR_SENDING = ("queued", "sending")


@dataclass(frozen=True)
class CampaignForSending:
    id: uuid.UUID
    user_id: int
    sender_id: int | None
    status: str
    subject: str
    html: str
    text: str | None
    recipient_count: int


async def load_for_sending(conn: Conn, campaign_id: uuid.UUID) -> CampaignForSending | None:
    row = await conn.fetchrow(
        "SELECT id, user_id, sender_id, status, subject, html_body, text_body, recipient_count"
        " FROM campaigns WHERE id = $1",
        campaign_id,
    )
    if row is None:
        return None
    return CampaignForSending(
        row["id"], row["user_id"], row["sender_id"], row["status"], row["subject"],
        row["html_body"], row["text_body"], row["recipient_count"],
    )


async def status_of(conn: Conn, campaign_id: uuid.UUID) -> str | None:
    status: str | None = await conn.fetchval("SELECT status FROM campaigns WHERE id = $1", campaign_id)
    return status


async def mark_sending(conn: Conn, campaign_id: uuid.UUID) -> bool:
    """queued → sending; True if the campaign is (now) sending."""
    status: str | None = await conn.fetchval(
        "UPDATE campaigns SET status = 'sending', status_reason = NULL"
        " WHERE id = $1 AND status IN ('queued', 'sending') RETURNING status",
        campaign_id,
    )
    return status == "sending"


async def pause(conn: Conn, campaign_id: uuid.UUID, reason: str) -> None:
    await conn.execute(
        "UPDATE campaigns SET status = 'paused', status_reason = $2"
        " WHERE id = $1 AND status IN ('queued', 'sending')",
        campaign_id, reason,
    )


async def finish_if_done(conn: Conn, campaign_id: uuid.UUID) -> bool:
    """Mark the campaign finished when no recipient is open any more."""
    status: str | None = await conn.fetchval(
        """
        UPDATE campaigns SET status = 'finished', finished_at = now()
         WHERE id = $1 AND status = 'sending' AND recipients_loaded
           AND NOT EXISTS (SELECT 1 FROM recipients
                            WHERE campaign_id = $1 AND status IN ('pending', 'sending'))
        RETURNING status
        """,
        campaign_id,
    )
    return status == "finished"


async def progress(conn: Conn, user_id: int, campaign_id: uuid.UUID) -> dict[str, Any] | None:
    """Status and counts by recipient state, or None when the user has no such campaign."""
    row = await conn.fetchrow(
        "SELECT id, status, status_reason, subject, recipient_count, created_at, started_at, finished_at"
        " FROM campaigns WHERE id = $1 AND user_id = $2",
        campaign_id, user_id,
    )
    if row is None:
        return None
    counts = {state: 0 for state in ("pending", "sending", "sent", "failed", "skipped")}
    for r in await conn.fetch(
        "SELECT status, count(*) AS n FROM recipients WHERE campaign_id = $1 GROUP BY status", campaign_id
    ):
        counts[r["status"]] = r["n"]
    return {
        "id": str(row["id"]),
        "status": row["status"],
        "status_reason": row["status_reason"],
        "subject": row["subject"],
        "recipients": row["recipient_count"],
        "counts": counts,
        "created_at": row["created_at"].isoformat(),
        "started_at": row["started_at"].isoformat() if row["started_at"] else None,
        "finished_at": row["finished_at"].isoformat() if row["finished_at"] else None,
    }
