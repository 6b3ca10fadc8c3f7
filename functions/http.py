"""Request helpers every handler uses: language, JSON bodies, errors, and who is calling."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from functions import resources
from shared import accounts
from shared.credentials import api_secret_matches, split_api_key
from shared.errors import InputError, translate
from shared.settings import get_settings

MAX_JSON_BYTES = 6 * 1024 * 1024  # the Lambda payload limit
SESSION_COOKIE = "sendpy_session"
CSRF_COOKIE = "sendpy_csrf"
CSRF_HEADER = "x-csrf-token"
UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


class ApiError(Exception):
    """An answer other than 2xx, worded for a person (see shared/errors.py for the texts)."""

    def __init__(self, status: int, code: str, field: str | None = None,
                 headers: dict[str, str] | None = None, **params: Any) -> None:
        super().__init__(code)
        self.status = status
        self.code = code
        self.field = field
        self.headers = headers
        self.params = params


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


def error_response(request: Request, status: int, code: str, field: str | None = None,
                   headers: dict[str, str] | None = None, **params: Any) -> JSONResponse:
    message = translate(code, language(request), field=field, **params)
    return JSONResponse({"error": {"code": code, "field": field, "message": message}},
                        status_code=status, headers=headers)


def error(request: Request, status: int, code: str, field: str | None = None, **params: Any) -> JSONResponse:
    return error_response(request, status, code, field, **params)


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


@dataclass(frozen=True)
class Caller:
    user_id: int
    via: str  # "session" or "api_key"
    session_token: str | None = None


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
        "SELECT id, user_id, secret_hash FROM api_keys WHERE prefix = $1 AND revoked_at IS NULL", prefix
    )
    if row is None or not api_secret_matches(secret, bytes(row["secret_hash"])):
        return None
    await pool.execute(
        "UPDATE api_keys SET last_used_at = now() WHERE id = $1"
        " AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
        row["id"],
    )
    user_id: int = row["user_id"]
    return user_id


async def caller(request: Request) -> Caller:
    """Who is calling: an API key, or a browser session (with a CSRF check on unsafe methods)."""
    if request.headers.get("authorization") or request.headers.get("x-api-key"):
        user_id = await api_user(request)
        if user_id is None:
            raise ApiError(401, "unauthorized")
        return Caller(user_id, "api_key")
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        pool = await resources.db()
        async with pool.acquire() as conn:
            found = await accounts.session_user(conn, token)
        if found is not None:
            user_id, csrf = found
            if request.method in UNSAFE_METHODS and request.headers.get(CSRF_HEADER) != csrf:
                raise ApiError(403, "csrf")
            return Caller(user_id, "session", token)
    raise ApiError(401, "unauthorized")


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
