"""A sender's bounce reading: its IMAP settings, their live check, and what the reader found."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from functions import resources
from functions.auth import caller
from functions.errors import ApiError, language
from functions.parsing import int_param, json_object
from shared import imap_accounts, smtp_accounts
from shared.mail.messenger import ConnectPolicy
from shared.settings import get_settings
from shared.smtp_accounts import LIVE_CHECK_SECONDS, VerifyProblem


async def _owned(request: Request) -> tuple[int, smtp_accounts.Sender]:
    who = await caller(request)
    sender_id = int_param(request, "sender_id")
    pool = await resources.db()
    async with pool.acquire() as conn:
        sender = await smtp_accounts.load(conn, sender_id, who.user_id)
    if sender is None:
        raise ApiError(404, "not_found")
    return who.user_id, sender


async def get_imap(request: Request) -> Response:
    _, sender = await _owned(request)
    pool = await resources.db()
    async with pool.acquire() as conn:
        return JSONResponse(await imap_accounts.status(conn, sender.id))


async def put_imap(request: Request) -> Response:
    """Store the settings, then check them live: 200 with `verified`, or 422 with the problem."""
    user_id, sender = await _owned(request)
    values = imap_accounts.parse(await json_object(request), sender.from_email, sender.preset)
    pool = await resources.db()
    async with pool.acquire() as conn:
        await imap_accounts.save(conn, resources.keys(), user_id, sender.id, values,
                                 allow_private=get_settings().smtp_allow_private)
    if values["imap_host"] is None:
        async with pool.acquire() as conn:
            return JSONResponse({"verified": False, "imap": await imap_accounts.status(conn, sender.id)})
    return await _verify(request, user_id, sender)


async def verify_imap(request: Request) -> Response:
    user_id, sender = await _owned(request)
    return await _verify(request, user_id, sender)


async def _verify(request: Request, user_id: int, sender: smtp_accounts.Sender) -> Response:
    pool = await resources.db()
    async with pool.acquire() as conn:
        account = await imap_accounts.account_of(conn, resources.keys(), user_id, sender.id)
    if account is None:
        raise ApiError(404, "not_found")
    policy = ConnectPolicy.from_settings(get_settings(), max_timeout=10.0)
    try:
        problem = await asyncio.wait_for(imap_accounts.verify(account, policy), LIVE_CHECK_SECONDS)
    except TimeoutError:
        problem = VerifyProblem("timeout", f"{account.host}:{account.port} took longer than"
                                           f" {LIVE_CHECK_SECONDS:.0f} s to answer")
    explained = imap_accounts.explain(problem, account.host, account.port, language(request)) if problem else None
    both = " / ".join(str(imap_accounts.explain(problem, account.host, account.port, lang)["message"])
                      for lang in ("ru", "en")) if problem else None
    async with pool.acquire() as conn:
        await imap_accounts.mark_verified(conn, sender.id, problem, both)
        status = await imap_accounts.status(conn, sender.id)
    if explained is None:
        return JSONResponse({"verified": True, "imap": status})
    return JSONResponse({"verified": False, "imap": status, "error": explained}, status_code=422)
