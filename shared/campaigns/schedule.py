"""Send later: schedule a ready draft for a moment, and start it when that moment comes.

Scheduling runs every start check at once, so problems show while the person is still there; the
same checks run again when it is due (the file may have expired, the sender changed meanwhile).
Starting moves the campaign to `queued` and writes the fan-out's command to the outbox in one
transaction: a restart, a second fan-out worker or a retry can never start it twice.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import asyncpg

from shared import outbox
from shared.campaigns import drafts
from shared.campaigns.states import StateConflict, start_checks
from shared.commands import CampaignCommand
from shared.db import Conn
from shared.errors import InputError
from shared.storage import UploadStore

MAX_AHEAD = dt.timedelta(days=366)


def parse_moment(value: Any) -> dt.datetime:
    """An ISO 8601 moment with its UTC offset (the browser sends the person's own zone's)."""
    if not isinstance(value, str) or len(value) > 64:
        raise InputError("schedule_moment", "at")
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InputError("schedule_moment", "at") from None
    if moment.tzinfo is None:
        raise InputError("schedule_moment", "at")
    now = dt.datetime.now(dt.UTC)
    if moment <= now + dt.timedelta(seconds=30):
        raise InputError("schedule_past", "at")
    if moment > now + MAX_AHEAD:
        raise InputError("schedule_too_far", "at")
    return moment


async def schedule(conn: Conn, store: UploadStore, user_id: int, campaign_id: uuid.UUID,
                   at: dt.datetime) -> dict[str, Any] | None:
    """Draft (or already scheduled) → scheduled for `at`; None when the user has no such campaign."""
    campaign = await drafts.get(conn, user_id, campaign_id)
    if campaign is None:
        return None
    if campaign["status"] not in ("draft", "scheduled"):
        raise StateConflict(campaign["status"], "schedule")
    await start_checks(conn, store, user_id, campaign)
    done = await conn.fetchval(
        "UPDATE campaigns SET status = 'scheduled', scheduled_at = $3, status_reason = NULL, updated_at = now()"
        " WHERE id = $1 AND user_id = $2 AND status IN ('draft', 'scheduled') RETURNING id",
        campaign_id, user_id, at)
    if done is None:  # started or cancelled meanwhile
        raise StateConflict(str(await conn.fetchval("SELECT status FROM campaigns WHERE id = $1", campaign_id)),
                            "schedule")
    return await drafts.get(conn, user_id, campaign_id)


async def unschedule(conn: Conn, user_id: int, campaign_id: uuid.UUID) -> dict[str, Any] | None:
    """Scheduled → draft again (to edit it at leisure or send it now)."""
    status = await conn.fetchval("SELECT status FROM campaigns WHERE id = $1 AND user_id = $2",
                                 campaign_id, user_id)
    if status is None:
        return None
    done = await conn.fetchval(
        "UPDATE campaigns SET status = 'draft', scheduled_at = NULL, updated_at = now()"
        " WHERE id = $1 AND user_id = $2 AND status = 'scheduled' RETURNING id", campaign_id, user_id)
    if done is None:
        raise StateConflict(str(status), "unschedule")
    return await drafts.get(conn, user_id, campaign_id)


def could_not_start(error: InputError) -> str:
    return (f"Не удалось начать по расписанию: {error.message('ru')} / "
            f"Could not start as scheduled: {error.message('en')}")


async def start_due(db: asyncpg.Pool, store: UploadStore, limit: int = 50) -> int:
    """Start the scheduled campaigns whose moment has come; one that no longer passes its checks
    goes back to draft with the reason. Returns how many were started."""
    started = 0
    for _ in range(limit):
        async with db.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT id, user_id FROM campaigns WHERE status = 'scheduled' AND scheduled_at <= now()"
                " ORDER BY scheduled_at LIMIT 1 FOR UPDATE SKIP LOCKED")
            if row is None:
                return started
            campaign = await drafts.get(conn, row["user_id"], row["id"])
            assert campaign is not None
            try:
                await start_checks(conn, store, row["user_id"], campaign)
            except InputError as error:
                await conn.execute(
                    "UPDATE campaigns SET status = 'draft', scheduled_at = NULL, status_reason = $2,"
                    " updated_at = now() WHERE id = $1", row["id"], could_not_start(error))
                continue
            await conn.execute(
                "UPDATE campaigns SET status = 'queued', started_at = now(), status_reason = NULL, updated_at = now()"
                " WHERE id = $1", row["id"])
            await outbox.add(conn, CampaignCommand(row["id"], "start"))
            started += 1
    return started
