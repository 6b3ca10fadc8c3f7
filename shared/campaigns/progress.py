"""Where a campaign stands: status, counts by recipient state, sending rate and time left."""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from shared import smtp_accounts
from shared.campaigns.plan import Plan, plan
from shared.campaigns.states import WAITING_SQL, shown_reason
from shared.db import Conn


async def progress(conn: Conn, user_id: int, campaign_id: uuid.UUID) -> dict[str, Any] | None:
    """Status and counts by recipient state, or None when the user has no such campaign."""
    row = await conn.fetchrow(
        "SELECT id, status, status_reason, subject, recipient_count, created_at, started_at, finished_at, "
        + WAITING_SQL +
        " FROM campaigns WHERE id = $1 AND user_id = $2",
        campaign_id, user_id,
    )
    if row is None:
        return None
    counts = {state: 0 for state in ("pending", "sending", "sent", "failed", "skipped", "bounced")}
    for r in await conn.fetch(
        "SELECT status, count(*) AS n FROM recipients WHERE campaign_id = $1 GROUP BY status", campaign_id
    ):
        counts[r["status"]] = r["n"]
    return {
        "id": str(row["id"]),
        "status": row["status"],
        "status_reason": shown_reason(row),
        "subject": row["subject"],
        "recipients": row["recipient_count"],
        "counts": counts,
        "created_at": row["created_at"].isoformat(),
        "started_at": row["started_at"].isoformat() if row["started_at"] else None,
        "finished_at": row["finished_at"].isoformat() if row["finished_at"] else None,
    }


async def sent_last_minute(conn: Conn, campaign_id: uuid.UUID) -> int:
    rate: int = await conn.fetchval(
        "SELECT count(*) FROM recipients WHERE campaign_id = $1 AND status = 'sent'"
        " AND updated_at > now() - interval '60 seconds'",
        campaign_id,
    )
    return rate


async def campaign_plan(conn: Conn, sender_id: int | None, count: int, rate_per_minute: int,
                        campaign_id: uuid.UUID | None = None, starts_at: float | None = None) -> Plan | None:
    """The schedule of `count` more emails through the campaign's account, as its limits allow,
    behind the mail of the account's other campaigns already under way (they share the limits),
    from `starts_at` (a scheduled campaign's time) or now."""
    if sender_id is None:
        return None
    limits = await conn.fetchrow("SELECT per_minute, per_day FROM senders WHERE id = $1", sender_id)
    if limits is None:
        return None
    per_day = limits["per_day"]
    sent_at = await _recent_sends(conn, sender_id, per_day) if per_day else []
    ahead = await _ahead(conn, sender_id, campaign_id) if count > 0 and (per_day or limits["per_minute"]) else 0
    now = max(time.time(), starts_at or 0.0)
    whole = plan(ahead + count, limits["per_minute"], per_day, sent_at, now, rate_per_minute or None)
    if whole is None or not ahead:
        return whole
    first = plan(ahead + 1, limits["per_minute"], per_day, sent_at, now, rate_per_minute or None)
    return Plan(count, whole.per_day, whole.days, first.last_at if first else whole.first_at, whole.last_at)


def planned(report: dict[str, Any] | None) -> dict[str, int] | None:
    """What a campaign not started yet will send, from its contact file's report: the recipients,
    and those left out (suppressed, repeated, rows without a valid address)."""
    if not report:
        return None
    return {"recipients": report.get("valid", 0), "suppressed": report.get("suppressed", 0),
            "duplicates": report.get("duplicates", 0),
            "problems": (report.get("empty") or 0) + (report.get("invalid") or 0)}


async def waiting_behind(conn: Conn, sender_id: int | None, campaign_id: uuid.UUID) -> dict[str, Any] | None:
    """The account's campaign under way that this one waits for — the first started of those
    started before it with mail still to go (they share the account's limits, first come first
    served) — and how many more of them there are; None when there is none."""
    if sender_id is None:
        return None
    row = await conn.fetchrow(
        """
        SELECT c.id, c.name, c.subject, count(*) OVER () - 1 AS others FROM campaigns c
         WHERE c.sender_id = $1 AND c.id <> $2 AND c.status IN ('queued', 'sending')
           AND COALESCE(c.started_at, '-infinity'::timestamptz)
               < COALESCE((SELECT started_at FROM campaigns WHERE id = $2), 'infinity'::timestamptz)
           AND (NOT c.recipients_loaded OR EXISTS (
                SELECT 1 FROM recipients r WHERE r.campaign_id = c.id AND r.status IN ('pending', 'sending')))
         ORDER BY c.started_at NULLS FIRST LIMIT 1
        """,
        sender_id, campaign_id)
    if row is None:
        return None
    return {"id": str(row["id"]), "name": row["name"], "subject": row["subject"], "others": row["others"]}


# The campaign page asks for the plan every 1.5 s, and a day's sends of a big account (or the
# campaigns ahead of this one) are thousands of rows: they are read again only after a few
# seconds, which a plan counted in hours and days does not notice.
_RECENT_SECONDS = 5.0


class _Recently:
    """Values read at most once every _RECENT_SECONDS per key (at most 1,000 keys)."""

    def __init__(self) -> None:
        self._read: dict[object, tuple[float, Any]] = {}

    async def get(self, key: object, read: Callable[[], Awaitable[Any]]) -> Any:
        now = time.monotonic()
        cached = self._read.get(key)
        if cached is not None and now - cached[0] < _RECENT_SECONDS:
            return cached[1]
        if len(self._read) > 1000:
            self._read.clear()
        value = await read()
        self._read[key] = (now, value)
        return value


_recent = _Recently()


async def _ahead(conn: Conn, sender_id: int, campaign_id: uuid.UUID | None) -> int:
    """Emails of the account's other campaigns that go out before this one's: those sending or
    queued, started earlier (a campaign not started yet comes after all of them)."""
    async def count() -> int:
        ahead: int = await conn.fetchval(
            """
            SELECT count(*) FROM recipients r JOIN campaigns c ON c.id = r.campaign_id
             WHERE c.sender_id = $1 AND c.id IS DISTINCT FROM $2 AND c.status IN ('queued', 'sending')
               AND r.status IN ('pending', 'sending')
               AND (c.started_at IS NULL OR c.started_at < COALESCE(
                    (SELECT started_at FROM campaigns WHERE id = $2), 'infinity'::timestamptz))
            """,
            sender_id, campaign_id)
        return ahead

    ahead: int = await _recent.get(("ahead", sender_id, campaign_id), count)
    return ahead


async def _recent_sends(conn: Conn, sender_id: int, per_day: int) -> list[float]:
    sent_at: list[float] = await _recent.get(
        ("sent", sender_id, per_day), lambda: smtp_accounts.recent_sends(conn, sender_id, latest=per_day))
    return sent_at
