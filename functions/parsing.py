"""Reading requests: JSON bodies within the size limit, path ids, the caller's address."""

from __future__ import annotations

import json
import uuid
from typing import Any

from starlette.requests import Request

from functions.errors import ApiError
from shared.errors import InputError
from shared.settings import get_settings

MAX_JSON_BYTES = 6 * 1024 * 1024  # the Lambda payload limit


async def json_body(request: Request) -> Any:
    """The parsed JSON body; InputError for anything that is not JSON within the size limit."""
    body = await request.body()
    if len(body) > MAX_JSON_BYTES:
        raise InputError("too_long", "body", limit=MAX_JSON_BYTES)
    if not body.strip():
        raise InputError("invalid_json")
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise InputError("invalid_json") from None
    if not _storable(parsed):
        raise InputError("invalid_text")
    return parsed


def _storable(value: Any) -> bool:
    """False for text Postgres cannot store: NUL, or halves of surrogate pairs (valid JSON escapes)."""
    if isinstance(value, str):
        if "\x00" in value:
            return False
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, dict):
        return all(_storable(k) and _storable(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_storable(v) for v in value)
    return True


async def json_object(request: Request) -> dict[str, Any]:
    body = await json_body(request)
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
