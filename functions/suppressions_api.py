"""A sender's suppression list: who never gets mail from it again."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from functions import resources
from functions.http import ApiError, caller, int_param, json_object
from shared.addresses import check_address
from shared.errors import InputError

MAX_BATCH = 10_000


async def _owned_sender(request: Request) -> int:
    who = await caller(request)
    sender_id = int_param(request, "sender_id")
    pool = await resources.db()
    if not await pool.fetchval("SELECT EXISTS (SELECT 1 FROM senders WHERE id = $1 AND user_id = $2)",
                               sender_id, who.user_id):
        raise ApiError(404, "not_found")
    return sender_id


async def list_suppressions(request: Request) -> Response:
    sender_id = await _owned_sender(request)
    after = (request.query_params.get("after") or "").lower().replace("\x00", "")
    pool = await resources.db()
    rows = await pool.fetch(
        "SELECT email, reason, created_at FROM suppressions WHERE sender_id = $1 AND email > $2"
        " ORDER BY email LIMIT 500",
        sender_id, after,
    )
    items = [{"email": r["email"], "reason": r["reason"], "created_at": r["created_at"].isoformat()} for r in rows]
    return JSONResponse({"items": items, "next_after": items[-1]["email"] if len(items) == 500 else None})


async def add_suppressions(request: Request) -> Response:
    sender_id = await _owned_sender(request)
    emails = (await json_object(request)).get("emails")
    if not isinstance(emails, list) or not all(isinstance(e, str) for e in emails):
        raise InputError("type_list", "emails")
    if len(emails) > MAX_BATCH:
        raise InputError("too_many", "emails", count=len(emails), limit=MAX_BATCH)
    normalized = []
    for raw in emails:
        checked = check_address(raw)
        if checked.normalized is None:
            raise InputError("invalid_email", "emails", value=raw, reason=checked.reason)
        normalized.append(checked.normalized.lower())
    pool = await resources.db()
    added = await pool.fetchval(
        "WITH added AS (INSERT INTO suppressions (sender_id, email, reason)"
        " SELECT $1, e, 'manual' FROM unnest($2::text[]) AS e ON CONFLICT DO NOTHING RETURNING 1)"
        " SELECT count(*) FROM added",
        sender_id, sorted(set(normalized)),
    )
    return JSONResponse({"added": added}, status_code=201)


async def remove_suppression(request: Request) -> Response:
    sender_id = await _owned_sender(request)
    email = str(request.path_params["email"]).lower()
    if "\x00" in email:
        raise ApiError(404, "not_found")
    pool = await resources.db()
    removed = await pool.fetchval("DELETE FROM suppressions WHERE sender_id = $1 AND email = $2 RETURNING 1",
                                  sender_id, email)
    if removed is None:
        raise ApiError(404, "not_found")
    return Response(status_code=204)
