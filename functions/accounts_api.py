"""Accounts: register, log in and out, change password, profile, API keys."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from functions import resources
from functions.auth import CSRF_COOKIE, SESSION_COOKIE, caller
from functions.errors import ApiError
from functions.parsing import SMALL_JSON_BYTES, client_address, int_param, json_object
from shared import accounts
from shared.accounts import NewSession
from shared.errors import InputError
from shared.settings import get_settings


def _with_session(response: Response, session: NewSession) -> Response:
    secure = get_settings().public_base_url.startswith("https://")
    max_age = accounts.SESSION_DAYS * 86400
    response.set_cookie(SESSION_COOKIE, session.token, max_age=max_age, httponly=True, secure=secure,
                        samesite="lax", path="/")
    # Readable by the page's script, which echoes it in X-CSRF-Token (double submit).
    response.set_cookie(CSRF_COOKIE, session.csrf_token, max_age=max_age, httponly=False, secure=secure,
                        samesite="lax", path="/")
    return response


# Marks a browser that has logged in to an account: log-in throttling counts its failures apart
# (shared/accounts.py), so strangers' guesses cannot lock the owner out of it. Sent only to
# /v1/auth, never readable by scripts.
DEVICE_COOKIE = "sendpy_device"


def _with_device(response: Response, token: str) -> Response:
    response.set_cookie(DEVICE_COOKIE, token, max_age=accounts.DEVICE_DAYS * 86400, httponly=True,
                        secure=get_settings().public_base_url.startswith("https://"), samesite="strict",
                        path="/v1/auth")
    return response


def _require_json(request: Request) -> None:
    # Log-in CSRF: a cross-site <form> can post text/plain that parses as JSON, never application/json.
    if not request.headers.get("content-type", "").split(";")[0].strip().lower() == "application/json":
        raise ApiError(415, "json_required")


def _throttled(exc: accounts.TooManyAttempts) -> ApiError:
    return ApiError(429, "too_many_attempts", headers={"Retry-After": str(exc.retry_after)},
                    minutes=exc.retry_after // 60)


async def register(request: Request) -> Response:
    _require_json(request)
    body = await json_object(request, SMALL_JSON_BYTES)
    email = accounts.check_email(body.get("email"))
    password = accounts.check_new_password(body.get("password"))
    pool = await resources.db()
    async with pool.acquire() as conn, conn.transaction():
        user_id = await accounts.register(conn, email, password)
        session = await accounts.create_session(conn, user_id)
        user = await accounts.profile(conn, user_id)
        device = await accounts.remember_device(conn, user_id, None)
    response = JSONResponse({"user": user, "csrf_token": session.csrf_token}, status_code=201)
    return _with_device(_with_session(response, session), device)


async def login(request: Request) -> Response:
    _require_json(request)
    body = await json_object(request, SMALL_JSON_BYTES)
    email, password = body.get("email"), body.get("password")
    if not isinstance(email, str) or not email:
        raise InputError("required", "email")
    if not isinstance(password, str) or not password:
        raise InputError("required", "password")
    presented = request.cookies.get(DEVICE_COOKIE)
    pool = await resources.db()
    async with pool.acquire() as conn:
        try:
            user_id = await accounts.authenticate(conn, email.strip(), password, client_address(request), presented)
        except accounts.TooManyAttempts as exc:
            raise _throttled(exc) from None
        if user_id is None:
            raise ApiError(401, "bad_credentials")
        session = await accounts.create_session(conn, user_id)
        user = await accounts.profile(conn, user_id)
        device = await accounts.remember_device(conn, user_id, presented)
    return _with_device(_with_session(JSONResponse({"user": user, "csrf_token": session.csrf_token}), session), device)


async def logout(request: Request) -> Response:
    who = await caller(request)
    if who.session_token:
        pool = await resources.db()
        async with pool.acquire() as conn:
            await accounts.end_session(conn, who.session_token)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")
    return response


async def change_password(request: Request) -> Response:
    who = await caller(request)
    body = await json_object(request)
    current = body.get("current_password")
    if not isinstance(current, str) or not current:
        raise InputError("required", "current_password")
    new = accounts.check_new_password(body.get("new_password"), "new_password")
    pool = await resources.db()
    async with pool.acquire() as conn:
        try:
            changed = await accounts.change_password(conn, who.user_id, current, new, who.session_token,
                                                     client_address(request), request.cookies.get(DEVICE_COOKIE))
        except accounts.TooManyAttempts as exc:
            raise _throttled(exc) from None
        if not changed:
            raise InputError("wrong_password", "current_password")
    return Response(status_code=204)


async def me(request: Request) -> Response:
    who = await caller(request)
    pool = await resources.db()
    async with pool.acquire() as conn:
        return JSONResponse(await accounts.profile(conn, who.user_id))


async def list_keys(request: Request) -> Response:
    who = await caller(request)
    pool = await resources.db()
    async with pool.acquire() as conn:
        return JSONResponse({"items": await accounts.list_keys(conn, who.user_id)})


async def create_key(request: Request) -> Response:
    who = await caller(request)
    body = await json_object(request)
    name = body.get("name", "")
    if not isinstance(name, str):
        raise InputError("type_string", "name")
    if len(name) > 100:
        raise InputError("too_long", "name", limit=100)
    if not name.strip():  # a list of nameless keys cannot say which one a script uses
        raise InputError("required", "name")
    pool = await resources.db()
    async with pool.acquire() as conn:
        return JSONResponse(await accounts.new_key(conn, who.user_id, name.strip()), status_code=201)


async def revoke_key(request: Request) -> Response:
    who = await caller(request)
    key_id = int_param(request, "key_id")
    pool = await resources.db()
    async with pool.acquire() as conn:
        if not await accounts.revoke_key(conn, who.user_id, key_id):
            raise ApiError(404, "not_found")
    return Response(status_code=204)
