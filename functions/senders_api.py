"""SMTP accounts ("senders"): presets, create, read, update, delete, verify live."""

from __future__ import annotations

import asyncio
from dataclasses import asdict

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from functions import resources
from functions.auth import caller
from functions.errors import ApiError, language
from functions.parsing import int_param, json_object
from shared import smtp_accounts
from shared.mail.messenger import ConnectPolicy
from shared.settings import get_settings
from shared.smtp_presets import PRESETS

LIVE = smtp_accounts.LIVE_CHECK_SECONDS


async def presets(request: Request) -> Response:
    return JSONResponse({"items": [asdict(p) for p in PRESETS.values()]})


async def list_senders(request: Request) -> Response:
    who = await caller(request)
    pool = await resources.db()
    async with pool.acquire() as conn:
        return JSONResponse({"items": await smtp_accounts.list_for(conn, who.user_id)})


async def create_sender(request: Request) -> Response:
    who = await caller(request)
    settings = get_settings()
    value = smtp_accounts.parse(await json_object(request), allow_plaintext=settings.smtp_allow_plaintext)
    pool = await resources.db()
    async with pool.acquire() as conn:
        created = await smtp_accounts.create(conn, resources.keys(), who.user_id, value,
                                             allow_private=settings.smtp_allow_private)
    return JSONResponse(created, status_code=201)


async def get_sender(request: Request) -> Response:
    who = await caller(request)
    pool = await resources.db()
    async with pool.acquire() as conn:
        found = await smtp_accounts.get(conn, who.user_id, int_param(request, "sender_id"))
    if found is None:
        raise ApiError(404, "not_found")
    return JSONResponse(found)


async def update_sender(request: Request) -> Response:
    who = await caller(request)
    sender_id = int_param(request, "sender_id")
    body = await json_object(request)  # read before a pool connection is taken: a slow body holds none
    pool = await resources.db()
    async with pool.acquire() as conn:
        current = await smtp_accounts.get(conn, who.user_id, sender_id)
        if current is None:
            raise ApiError(404, "not_found")
        settings = get_settings()
        value = smtp_accounts.parse(body, current=current,
                                    allow_plaintext=settings.smtp_allow_plaintext)
        updated = await smtp_accounts.update(conn, resources.keys(), who.user_id, sender_id, value,
                                             allow_private=settings.smtp_allow_private)
    if updated is None:  # deleted meanwhile
        raise ApiError(404, "not_found")
    return JSONResponse(updated)


async def delete_sender(request: Request) -> Response:
    who = await caller(request)
    pool = await resources.db()
    sender_id = int_param(request, "sender_id")
    async with pool.acquire() as conn:
        outcome = await smtp_accounts.delete(conn, who.user_id, sender_id)
        held = (await smtp_accounts.holding(conn, [sender_id])).get(sender_id, []) if outcome == "in_use" else []
    if outcome == "missing":
        raise ApiError(404, "not_found")
    if outcome == "in_use":
        raise ApiError(409, "sender_in_use", campaigns=_named(held, language(request)))
    return Response(status_code=204)


def _named(campaigns: list[dict[str, object]], lang: str) -> str:
    """«Новости», «Собрание»: the campaigns as their pages name them, in the reader's quotes."""
    left, right, unnamed = ("«", "»", "без названия") if lang == "ru" else ("“", "”", "untitled")
    return ", ".join(f"{left}{c['name'] or c['subject'] or unnamed}{right}" for c in campaigns)


async def verify_sender(request: Request) -> Response:
    who = await caller(request)
    sender_id = int_param(request, "sender_id")
    pool = await resources.db()
    async with pool.acquire() as conn:
        sender = await smtp_accounts.load(conn, sender_id, who.user_id)
    if sender is None:
        raise ApiError(404, "not_found")
    policy = ConnectPolicy.from_settings(get_settings(), max_timeout=10.0)
    try:
        # 10 s a command, and the whole check inside the gateway's 30 s (a server that answers
        # every command just in time took 72 s).
        problem = await asyncio.wait_for(
            smtp_accounts.verify(await sender.open_account(resources.keys()), sender.from_email, policy),
            LIVE)
    except TimeoutError:
        problem = smtp_accounts.VerifyProblem(
            "timeout", f"{sender.host}:{sender.port} took longer than {LIVE:.0f} s to answer")
    async with pool.acquire() as conn:
        await smtp_accounts.record_verification(conn, sender_id, problem)
        current = await smtp_accounts.get(conn, who.user_id, sender_id)
    if problem is None:
        return JSONResponse({"verified": True, "sender": current})
    return JSONResponse(
        {"verified": False, "sender": current, "error": _explain(request, problem, sender)},
        status_code=422,
    )


def _explain(request: Request, problem: smtp_accounts.VerifyProblem, sender: smtp_accounts.Sender) -> dict[str, object]:
    """The error body for an SMTP problem, in the caller's language."""
    return smtp_accounts.explain(problem, sender.from_email, sender.host, sender.port, sender.preset,
                                 language(request))
