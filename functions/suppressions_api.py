"""The account's suppression list: list and search (by the start of an address or a domain), add, remove,
import and export as CSV."""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from functions import resources
from functions.auth import caller
from functions.errors import ApiError, language
from functions.parsing import json_object, read_body
from shared import suppression_search, suppressions
from shared.addresses import check_address
from shared.errors import InputError, invalid_email

MAX_BATCH = 10_000
MAX_IMPORT_BYTES = 5 * 1024 * 1024


def _text_param(request: Request, name: str) -> str:
    return (request.query_params.get(name) or "").replace("\x00", "").strip()[:320]


async def list_suppressions(request: Request) -> Response:
    who = await caller(request)
    pool = await resources.db()
    search, after = _text_param(request, "q"), _text_param(request, "after")
    total = None
    async with pool.acquire() as conn:
        if search:  # not counted: a count reads the whole list (0.1–0.4 s at a million), a search a page
            items, next_after = await suppression_search.page(conn, who.user_id, search, after)
        else:
            items, next_after = await suppressions.list_page(conn, who.user_id, after)
            total = await suppressions.count(conn, who.user_id)
    return JSONResponse({"items": items, "next_after": next_after, "total": total})


async def add_suppressions(request: Request) -> Response:
    who = await caller(request)
    emails = (await json_object(request)).get("emails")
    if not isinstance(emails, list) or not all(isinstance(e, str) for e in emails):
        raise InputError("type_list", "emails")
    if len(emails) > MAX_BATCH:
        raise InputError("too_many", "emails", count=len(emails), limit=MAX_BATCH)
    normalized = []
    for raw in emails:
        checked = check_address(raw)
        if checked.normalized is None:
            raise invalid_email("emails", raw, checked.reason)
        normalized.append(checked.normalized)
    pool = await resources.db()
    async with pool.acquire() as conn:
        added = await suppressions.add(conn, who.user_id, normalized, "manual")
    return JSONResponse({"added": added}, status_code=201)


async def import_suppressions(request: Request) -> Response:
    """A CSV (or one address a line) as the request body; the lines with a valid address are
    added, the others reported by line number with the reason (the first 100; `problem_count`
    counts them all). Nothing is added when no line holds a valid address."""
    who = await caller(request)
    pool = await resources.db()
    async with pool.acquire() as conn:
        async with suppressions.one_import(conn, who.user_id) as mine:
            if not mine:
                raise ApiError(409, "import_running", "file")
            raw = await read_body(request, MAX_IMPORT_BYTES)
            # Checking 100,000 addresses takes seconds of CPU: in the imports' own threads.
            valid, problems, bad = await suppressions.in_file_thread(suppressions.parse_import_bytes, raw)
            if not valid:
                raise InputError("no_addresses", "file")
            added = await suppressions.add(conn, who.user_id, valid, "imported", field="file")
    return JSONResponse({"added": added, "already": len(set(valid)) - added, "problem_count": bad,
                         "problems": suppressions.explain(problems, language(request))}, status_code=201)


async def export_suppressions(request: Request) -> Response:
    """The list as CSV, in the reader's language (`lang`, else the browser's), streamed."""
    who = await caller(request)
    lang = request.query_params.get("lang") or language(request)
    pool = await resources.db()

    async def body() -> AsyncIterator[bytes]:
        async for chunk in suppressions.export_csv(pool, who.user_id, lang if lang in ("ru", "en") else "en"):
            yield chunk.encode()

    return StreamingResponse(body(), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": 'attachment; filename="suppressions.csv"'})


async def remove_suppression(request: Request) -> Response:
    """DELETE /v1/suppressions/{email}; the address may hold a "/" (the route takes the rest of
    the path), or come as `?email=` on DELETE /v1/suppressions."""
    who = await caller(request)
    email = str(request.path_params.get("email") or request.query_params.get("email") or "")
    if not email:
        raise InputError("required", "email")
    if "\x00" in email or len(email) > 320:
        raise ApiError(404, "not_found")
    pool = await resources.db()
    async with pool.acquire() as conn:
        removed = await suppressions.remove(conn, who.user_id, email)
    if not removed:
        raise ApiError(404, "not_found")
    return Response(status_code=204)
