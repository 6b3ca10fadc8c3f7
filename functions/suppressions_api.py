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
_READING: set[int] = set()  # accounts whose import this process is reading or parsing


def _text_param(request: Request, name: str) -> str:
    return (request.query_params.get(name) or "").replace("\x00", "").strip()[:320]


async def list_suppressions(request: Request) -> Response:
    who = await caller(request)
    pool = await resources.db()
    search, after = _text_param(request, "q"), _text_param(request, "after")
    total, capped = None, False
    async with pool.acquire() as conn:
        if search:  # not counted: a count reads the whole list (0.1–0.4 s at a million), a search a page
            items, next_after = await suppression_search.page(conn, who.user_id, search, after)
        else:
            items, next_after = await suppressions.list_page(conn, who.user_id, after)
            # Counted only so far: 40 pages of a million-entry list slowed everyone's requests.
            total, capped = await suppressions.count_capped(conn, who.user_id)
    return JSONResponse({"items": items, "next_after": next_after, "total": total, "total_capped": capped})


async def add_suppressions(request: Request) -> Response:
    """`partial: true` adds the valid addresses and lists the others ({"index", "value", "reason"}):
    one mistyped line among thirty no longer costs the other twenty-nine. Without it, or when
    none is valid, a bad address is a 400 and nothing is added."""
    who = await caller(request)
    body = await json_object(request)
    emails, partial = body.get("emails"), body.get("partial", False)
    if not isinstance(emails, list) or not all(isinstance(e, str) for e in emails):
        raise InputError("type_list", "emails")
    if not isinstance(partial, bool):
        raise InputError("invalid_choice", "partial", choices="true, false")
    if len(emails) > MAX_BATCH:
        raise InputError("too_many", "emails", count=len(emails), limit=MAX_BATCH)
    normalized, problems, first_bad = [], [], None
    for index, raw in enumerate(emails):
        checked = check_address(raw)
        if checked.normalized is not None:
            normalized.append(checked.normalized)
            continue
        if first_bad is None:
            first_bad = invalid_email("emails", raw[:200], checked.reason)
        if not partial:
            raise first_bad
        russian, _, english = checked.explained.partition(" / ")
        reason = russian if language(request) == "ru" else english
        problems.append({"index": index, "value": raw[:200], "reason": reason})
    if first_bad is not None and not normalized:
        raise first_bad
    pool = await resources.db()
    async with pool.acquire() as conn:
        added = await suppressions.add(conn, who.user_id, normalized, "manual")
    return JSONResponse({"added": added, "problems": problems}, status_code=201)


async def import_suppressions(request: Request) -> Response:
    """A CSV (or one address a line) as the request body; the lines with a valid address are
    added, the others reported by line number with the reason (the first 100; `problem_count`
    counts them all). Nothing is added when no line holds a valid address."""
    who = await caller(request)
    # The body is read, and its addresses checked, before a pool connection or the account's lock
    # is taken: five imports trickling 4 MB at a byte a second held five of the pool's connections
    # for a minute (another user's GET /v1/me: 57 s). This process's guard keeps one account to one
    # import reading or parsing at a time; the advisory lock below does so across processes.
    if who.user_id in _READING:
        raise ApiError(409, "import_running", "file")
    _READING.add(who.user_id)
    try:
        raw = await read_body(request, MAX_IMPORT_BYTES)
        # Checking 100,000 addresses takes seconds of CPU: in the imports' own threads.
        valid, problems, bad = await suppressions.in_file_thread(suppressions.parse_import_bytes, raw)
    finally:
        _READING.discard(who.user_id)
    if not valid:
        raise InputError("no_addresses", "file")
    pool = await resources.db()
    async with pool.acquire() as conn:
        async with suppressions.one_import(conn, who.user_id) as mine:
            if not mine:
                raise ApiError(409, "import_running", "file")
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
