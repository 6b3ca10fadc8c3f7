"""Reading requests: JSON bodies within the size limit, path ids, the caller's address."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from starlette.requests import Request

from functions.errors import ApiError
from shared.errors import InputError
from shared.settings import get_settings

MAX_JSON_BYTES = 6 * 1024 * 1024  # the Lambda payload limit
# Routes anyone may call (sign-up, log-in) read at most this much before answering 413.
SMALL_JSON_BYTES = 64 * 1024
MAX_JSON_DEPTH = 32
# A body trickling in slower than this holds a connection for nothing (6 MB at 100 KB/s fits).
BODY_SECONDS = 60.0


async def read_body(request: Request, limit: int = MAX_JSON_BYTES) -> bytes:
    """The body, read only as far as `limit`: a larger one is refused as soon as it passes it."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "body_too_large", limit_kb=limit // 1024)
    chunks, size = [], 0
    try:
        async with asyncio.timeout(BODY_SECONDS):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise ApiError(413, "body_too_large", limit_kb=limit // 1024)
                chunks.append(chunk)
    except TimeoutError:
        raise ApiError(408, "body_too_slow", seconds=BODY_SECONDS) from None
    body = b"".join(chunks)
    request._body = body  # Starlette's own cache: later request.body() calls get these bytes
    return body


async def json_body(request: Request, limit: int = MAX_JSON_BYTES) -> Any:
    """The parsed JSON body; InputError for anything that is not JSON within the size and depth limits."""
    body = await read_body(request, limit)
    if len(body) <= SMALL_JSON_BYTES:
        return _parsed(body)
    # Millions of items take a second to parse and walk: not on the loop every request shares.
    return await asyncio.to_thread(_parsed, body)


def _parsed(body: bytes) -> Any:
    if not body.strip():
        raise InputError("invalid_json")
    try:
        parsed = json.loads(body)
    except RecursionError:
        raise InputError("json_too_deep", limit=MAX_JSON_DEPTH) from None
    except (ValueError, UnicodeDecodeError):
        raise InputError("invalid_json") from None
    _check_storable(parsed)
    return parsed


def _check_storable(value: Any) -> None:
    """Refuse nesting deeper than MAX_JSON_DEPTH and text Postgres cannot store: NUL, or halves
    of surrogate pairs (valid JSON escapes). Iterative, so no input can exhaust the stack."""
    pending: list[tuple[Any, int]] = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if depth > MAX_JSON_DEPTH:
            raise InputError("json_too_deep", limit=MAX_JSON_DEPTH)
        if isinstance(item, str):
            if "\x00" in item:
                raise InputError("invalid_text")
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise InputError("invalid_text") from None
        elif isinstance(item, dict):
            pending.extend((k, depth + 1) for k in item)
            pending.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            pending.extend((v, depth + 1) for v in item)


async def json_object(request: Request, limit: int = MAX_JSON_BYTES) -> dict[str, Any]:
    body = await json_body(request, limit)
    if not isinstance(body, dict):
        raise InputError("invalid_json")
    return body


def client_address(request: Request) -> str:
    """The caller's IP for throttling. X-Forwarded-For entries are believed only as far as the
    configured proxies appended them (CloudFront appends the viewer's address as the last
    entry); anything earlier in the header is whatever the client chose to send."""
    hops = get_settings().trusted_proxy_hops
    forwarded = [part.strip() for part in request.headers.get("x-forwarded-for", "").split(",") if part.strip()]
    if hops and len(forwarded) >= hops:
        return forwarded[-hops]
    return request.client.host if request.client else "unknown"


def int_param(request: Request, name: str) -> int:
    """A numeric id from the path; anything else is simply not found."""
    raw = str(request.path_params[name])
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise ApiError(404, "not_found")
    return int(raw)


def uuid_param(request: Request, name: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(request.path_params[name]))
    except ValueError:
        raise ApiError(404, "not_found") from None
