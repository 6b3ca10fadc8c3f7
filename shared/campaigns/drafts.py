"""Campaign drafts as users edit them: validate, create, read, list, update, delete."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from shared import smtp_accounts, uploads
from shared.campaigns.preview import SAMPLE, trial
from shared.campaigns.states import WAITING_SQL, StateConflict, shown_reason
from shared.db import Conn
from shared.errors import InputError

EDITABLE = ("name", "sender_id", "upload_id", "subject", "html_body", "text_body")
MAX_SUBJECT = 998
MAX_BODY = 2_000_000
_COLUMNS = (
    "id, name, status, status_reason, sender_id, upload_id, subject, html_body, text_body, recipient_count,"
    " duplicates_removed, created_at, updated_at, started_at, finished_at, scheduled_at, " + WAITING_SQL
)


def to_json(row: Any) -> dict[str, Any]:
    data = dict(row)
    data["status_reason"] = shown_reason(row)
    for computed in ("waiting_for_queue", "retry_at", "retry_reason"):
        del data[computed]
    data["id"] = str(data["id"])
    data["upload_id"] = str(data["upload_id"]) if data.get("upload_id") else None
    for key in ("created_at", "updated_at", "started_at", "finished_at", "scheduled_at"):
        data[key] = data[key].isoformat() if data.get(key) else None
    return data


async def _check_refs(conn: Conn, user_id: int, values: dict[str, Any]) -> None:
    sender_id = values.get("sender_id")
    if sender_id is not None:
        if isinstance(sender_id, bool) or not isinstance(sender_id, int) or not 0 < sender_id < 2**63:
            raise InputError("unknown_sender", "sender_id")
        if not await smtp_accounts.owned(conn, user_id, sender_id):
            raise InputError("unknown_sender", "sender_id")
    upload_id = values.get("upload_id")
    if upload_id is not None:
        try:
            values["upload_id"] = uuid.UUID(str(upload_id))
        except ValueError:
            raise InputError("unknown_upload", "upload_id") from None
        if not await uploads.owned(conn, user_id, values["upload_id"]):
            raise InputError("unknown_upload", "upload_id")


def parse(body: dict[str, Any]) -> dict[str, Any]:
    """The editable fields present in `body`, validated (templates compiled to find errors)."""
    unknown = set(body) - set(EDITABLE)
    if unknown:
        raise InputError("unknown_field", sorted(unknown)[0], choices=", ".join(EDITABLE))
    values: dict[str, Any] = {}
    for name in ("name", "subject", "html_body", "text_body"):
        if name in body:
            value = body[name]
            if value is None and name == "text_body":
                values[name] = None
                continue
            if not isinstance(value, str):
                raise InputError("type_string", name)
            limit = {"name": 200, "subject": MAX_SUBJECT}.get(name, MAX_BODY)
            if len(value) > limit:
                raise InputError("too_long", name, limit=limit)
            if name in ("name", "subject") and ("\r" in value or "\n" in value):
                raise InputError("line_break", name)
            values[name] = value
    for name in ("sender_id", "upload_id"):
        if name in body:
            values[name] = body[name]
    # Compiled and filled in once for a sample contact: a template that fails for anyone is refused
    # here, not by every recipient (the file's first contact is tried again at start).
    trial(values.get("subject", ""), values.get("html_body", ""), values.get("text_body"), None, SAMPLE)
    return values


async def create(conn: Conn, user_id: int, body: dict[str, Any]) -> dict[str, Any]:
    values = await asyncio.to_thread(parse, body)  # compiling a 2 MB template takes most of a second
    await _check_refs(conn, user_id, values)
    row = await conn.fetchrow(
        f"""
        INSERT INTO campaigns (id, user_id, name, sender_id, upload_id, subject, html_body, text_body, status)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'draft')
        RETURNING {_COLUMNS}
        """,
        uuid.uuid4(), user_id, values.get("name", ""), values.get("sender_id"), values.get("upload_id"),
        values.get("subject", ""), values.get("html_body", ""), values.get("text_body"),
    )
    return to_json(row)


async def get(conn: Conn, user_id: int, campaign_id: uuid.UUID) -> dict[str, Any] | None:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM campaigns WHERE id = $1 AND user_id = $2",
                              campaign_id, user_id)
    return to_json(row) if row else None


async def list_for(conn: Conn, user_id: int, limit: int = 100) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM campaigns WHERE user_id = $1 ORDER BY created_at DESC LIMIT $2", user_id, limit
    )
    return [to_json(r) for r in rows]


async def update(conn: Conn, user_id: int, campaign_id: uuid.UUID, body: dict[str, Any]) -> dict[str, Any] | None:
    values = await asyncio.to_thread(parse, body)  # compiling a 2 MB template takes most of a second
    await _check_refs(conn, user_id, values)
    async with conn.transaction():
        status = await conn.fetchval(
            "SELECT status FROM campaigns WHERE id = $1 AND user_id = $2 FOR UPDATE", campaign_id, user_id
        )
        if status is None:
            return None
        if status not in ("draft", "scheduled"):  # a scheduled one is checked again when it starts
            raise StateConflict(status, "edit")
        if values:
            assignments = ", ".join(f"{name} = ${n}" for n, name in enumerate(values, start=3))
            await conn.execute(
                f"UPDATE campaigns SET {assignments}, updated_at = now() WHERE id = $1 AND user_id = $2",
                campaign_id, user_id, *values.values(),
            )
    return await get(conn, user_id, campaign_id)


async def delete(conn: Conn, user_id: int, campaign_id: uuid.UUID) -> bool:
    async with conn.transaction():
        status = await conn.fetchval(
            "SELECT status FROM campaigns WHERE id = $1 AND user_id = $2 FOR UPDATE", campaign_id, user_id
        )
        if status is None:
            return False
        if status in ("queued", "sending", "paused"):
            raise StateConflict(status, "delete")
        await conn.execute("DELETE FROM campaigns WHERE id = $1", campaign_id)
    return True
