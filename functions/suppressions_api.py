"""A sender's suppression list: who never gets mail from it again."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from functions import resources
from functions.auth import caller
from functions.errors import ApiError
from functions.parsing import int_param, json_object
from shared import smtp_accounts, suppressions
from shared.addresses import check_address
from shared.errors import InputError

MAX_BATCH = 10_000


async def _owned_sender(request: Request) -> int:
    who = await caller(request)
    sender_id = int_param(request, "sender_id")
    pool = await resources.db()
    async with pool.acquire() as conn:
        if not await smtp_accounts.owned(conn, who.user_id, sender_id):
            raise ApiError(404, "not_found")
    return sender_id


async def list_suppressions(request: Request) -> Response:
    sender_id = await _owned_sender(request)
    after = (request.query_params.get("after") or "").replace("\x00", "")
    pool = await resources.db()
    async with pool.acquire() as conn:
        items, next_after = await suppressions.list_page(conn, sender_id, after)
    return JSONResponse({"items": items, "next_after": next_after})


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
        normalized.append(checked.normalized)
    pool = await resources.db()
    async with pool.acquire() as conn:
        added = await suppressions.add(conn, sender_id, normalized, "manual")
    return JSONResponse({"added": added}, status_code=201)


async def remove_suppression(request: Request) -> Response:
    sender_id = await _owned_sender(request)
    email = str(request.path_params["email"]).lower()
    if "\x00" in email:
        raise ApiError(404, "not_found")
    pool = await resources.db()
    async with pool.acquire() as conn:
        removed = await suppressions.remove(conn, sender_id, email)
    if not removed:
        raise ApiError(404, "not_found")
    return Response(status_code=204)
