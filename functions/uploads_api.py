"""Contact uploads: presigned POST to S3, completion with detection, corrections, report."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from functions import resources
from functions.auth import caller
from functions.errors import ApiError, language
from functions.parsing import json_object, uuid_param
from shared import uploads
from shared.contacts import DELIMITERS, ENCODINGS
from shared.errors import InputError
from shared.export import BOM, csv_lines, default_delimiter, text_cell
from shared.settings import get_settings


async def create_upload(request: Request) -> Response:
    who = await caller(request)
    body = await json_object(request)
    filename = body.get("filename", "contacts.csv")
    if not isinstance(filename, str):
        raise InputError("type_string", "filename")
    filename = filename.strip()[:255] or "contacts.csv"
    settings = get_settings()
    pool = await resources.db()
    async with pool.acquire() as conn:
        upload, key = await uploads.create(conn, who.user_id, filename)
    form = resources.store().presigned_post(key, settings.max_upload_bytes)
    return JSONResponse({"upload": upload, "post": form, "max_bytes": settings.max_upload_bytes}, status_code=201)


async def _prepare(request: Request, overrides: dict[str, Any] | None, accept_fewer: bool = False) -> Response:
    who = await caller(request)
    upload_id = uuid_param(request, "upload_id")
    pool = await resources.db()
    try:
        upload, needs_worker = await uploads.prepare(
            pool, resources.store(), who.user_id, upload_id, get_settings().max_upload_bytes, overrides, accept_fewer
        )
    except LookupError:
        raise ApiError(404, "not_found") from None
    # A big file is now queued for the fan-out's file readers (in Postgres: nothing to publish);
    # a correction supersedes a reading of the earlier guesses instead of queueing another.
    return JSONResponse(upload, status_code=202 if needs_worker else 200)


async def complete_upload(request: Request) -> Response:
    return await _prepare(request, None)


def _overrides(body: dict[str, Any]) -> dict[str, Any]:
    chosen: dict[str, Any] = {}
    if body.get("encoding") is not None:
        if body["encoding"] not in ENCODINGS:
            raise InputError("invalid_choice", "encoding", choices=", ".join(ENCODINGS))
        chosen["encoding"] = body["encoding"]
    if body.get("delimiter") is not None:
        if body["delimiter"] not in DELIMITERS:
            raise InputError("invalid_choice", "delimiter", choices=", ".join(repr(d) for d in DELIMITERS))
        chosen["delimiter"] = body["delimiter"]
    if body.get("has_header") is not None:
        if not isinstance(body["has_header"], bool):
            raise InputError("invalid_choice", "has_header", choices="true, false")
        chosen["has_header"] = body["has_header"]
    if body.get("email_column") is not None:
        column = body["email_column"]
        if isinstance(column, bool) or not isinstance(column, int) or column < 0:
            raise InputError("invalid_column", "email_column", count="N")
        chosen["email_column"] = column
    return chosen


async def correct_upload(request: Request) -> Response:
    """Re-read the file with the user's corrections (encoding, delimiter, header, email column);
    `accept_fewer: true` applies one that finds far fewer addresses than the reading before."""
    body = await json_object(request)
    accept_fewer = body.get("accept_fewer", False)
    if not isinstance(accept_fewer, bool):
        raise InputError("invalid_choice", "accept_fewer", choices="true, false")
    return await _prepare(request, _overrides(body), accept_fewer)


async def get_upload(request: Request) -> Response:
    who = await caller(request)
    pool = await resources.db()
    async with pool.acquire() as conn:
        found = await uploads.get(conn, who.user_id, uuid_param(request, "upload_id"))
    if found is None:
        raise ApiError(404, "not_found")
    return JSONResponse(found)


async def upload_problems(request: Request) -> Response:
    """Every row of the file without a valid address, as CSV in the reader's language."""
    who = await caller(request)
    upload_id = uuid_param(request, "upload_id")
    pool = await resources.db()
    async with pool.acquire() as conn:
        found = await uploads.get(conn, who.user_id, upload_id)
        file = await uploads.stored_file(conn, who.user_id, upload_id)
    if found is None or file is None:
        raise ApiError(404, "not_found")
    if found["status"] != "ready":
        raise InputError("upload_not_ready", "upload_id")
    lang = request.query_params.get("lang") or language(request)
    lang = lang if lang in uploads.PROBLEM_HEADER else "en"
    dialect, columns = uploads.stored_detection(found)
    rows = uploads.problem_rows(resources.store(), file[0], file[1], dialect, columns, lang)

    async def body() -> AsyncIterator[bytes]:
        yield BOM.encode()
        # Cells as the campaign export writes them (shared/export.py): `="+7916…"`, which a Russian
        # Excel shows as exactly +7916… and never evaluates, not `'+7916…`, whose apostrophe Excel
        # shows in a CSV it opens; = + - @ still never start a formula.
        lines = csv_lines(rows, uploads.problem_header(dialect, columns, lang), default_delimiter(lang), text_cell)
        while (chunk := await asyncio.to_thread(next, lines, None)) is not None:  # S3 reads block
            yield chunk.encode()

    return StreamingResponse(body(), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": problems_disposition(found.get("filename") or "", lang)})


PROBLEMS_NAME = {"ru": "проблемные-строки-{stem}.csv", "en": "problem-rows-{stem}.csv"}
_UNSAFE = re.compile(r'[\x00-\x1f\x7f"*/:<>?\\|]+')


def problems_disposition(filename: str, lang: str) -> str:
    """The problem rows named after the file they came from, in the reader's language
    («проблемные-строки-школа.csv»): RFC 6266's `filename*` for UTF-8, and an ASCII-only
    `filename` for a client that reads no other (the name's ASCII letters, else "contacts")."""
    stem = _UNSAFE.sub("_", filename.rsplit(".", 1)[0] if "." in filename[1:] else filename).strip(" ._")[:100]
    ascii_stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("_.") or "contacts"
    name = PROBLEMS_NAME.get(lang, PROBLEMS_NAME["en"]).format(stem=stem or "contacts")
    fallback = PROBLEMS_NAME["en"].format(stem=ascii_stem)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


async def list_uploads(request: Request) -> Response:
    who = await caller(request)
    pool = await resources.db()
    async with pool.acquire() as conn:
        return JSONResponse({"items": await uploads.list_for(conn, who.user_id)})


async def delete_upload(request: Request) -> Response:
    who = await caller(request)
    outcome = await uploads.delete(await resources.db(), resources.store(), who.user_id,
                                   uuid_param(request, "upload_id"))
    if outcome == "missing":
        raise ApiError(404, "not_found")
    if outcome == "in_use":
        raise ApiError(409, "upload_in_use")
    return Response(status_code=204)
