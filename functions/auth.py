"""Who is calling: an API key (scripts) or a browser session with its CSRF token."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from functions import resources
from functions.errors import ApiError
from shared import accounts
from shared.crypto import same_secret

SESSION_COOKIE = "sendpy_session"
CSRF_COOKIE = "sendpy_csrf"
CSRF_HEADER = "x-csrf-token"
UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


@dataclass(frozen=True)
class Caller:
    user_id: int
    session_token: str | None = None  # set for a browser session, None for an API key


async def api_user(request: Request) -> int | None:
    """The user id behind `Authorization: Bearer <api key>` (or `X-API-Key`), or None."""
    header = request.headers.get("authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else request.headers.get("x-api-key", "")
    if not token:
        return None
    pool = await resources.db()
    async with pool.acquire() as conn:
        return await accounts.user_for_api_key(conn, token)


async def caller(request: Request) -> Caller:
    """Who is calling: an API key, or a browser session (with a CSRF check on unsafe methods)."""
    if request.headers.get("authorization") or request.headers.get("x-api-key"):
        user_id = await api_user(request)
        if user_id is None:
            raise ApiError(401, "unauthorized")
        return Caller(user_id)
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        pool = await resources.db()
        async with pool.acquire() as conn:
            found = await accounts.session_user(conn, token)
        if found is not None:
            user_id, csrf = found
            # Compared in constant time: the token is a secret the page proves it can read.
            if request.method in UNSAFE_METHODS and not same_secret(request.headers.get(CSRF_HEADER, ""), csrf):
                raise ApiError(403, "csrf")
            return Caller(user_id, token)
    raise ApiError(401, "unauthorized")
