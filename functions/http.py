"""Request helpers every handler uses: language, JSON bodies, error responses, the caller."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from functions import resources
from shared.credentials import api_secret_matches, split_api_key
from shared.errors import InputError, translate

MAX_JSON_BYTES = 6 * 1024 * 1024  # the Lambda payload limit


def language(request: Request) -> str:
    """'ru' when the browser prefers Russian over English, else 'en'."""
    best, best_q = "en", -1.0
    for part in request.headers.get("accept-language", "").split(","):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        base = tag.strip().lower()[:2]
        if base in ("ru", "en") and q > best_q:
            best, best_q = base, q
    return best


def error(request: Request, status: int, code: str, field: str | None = None, **params: Any) -> JSONResponse:
    message = translate(code, language(request), field=field, **params)
    return JSONResponse({"error": {"code": code, "field": field, "message": message}}, status_code=status)


def input_error(request: Request, exc: InputError, status: int = 400) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": exc.code, "field": exc.field, "message": exc.message(language(request))}},
        status_code=status,
    )


async def json_body(request: Request) -> Any:
    """The parsed JSON body; InputError for anything that is not JSON within the size limit."""
    body = await request.body()
    if len(body) > MAX_JSON_BYTES:
        raise InputError("too_long", "body", limit=MAX_JSON_BYTES)
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise InputError("invalid_json") from None


async def api_user(request: Request) -> int | None:
    """The user id behind `Authorization: Bearer <api key>` (or `X-API-Key`), or None."""
    header = request.headers.get("authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else request.headers.get("x-api-key", "")
    parts = split_api_key(token.strip())
    if parts is None:
        return None
    prefix, secret = parts
    pool = await resources.db()
    row = await pool.fetchrow(
        "SELECT user_id, secret_hash FROM api_keys WHERE prefix = $1 AND revoked_at IS NULL", prefix
    )
    if row is None or not api_secret_matches(secret, bytes(row["secret_hash"])):
        return None
    user_id: int = row["user_id"]
    return user_id
