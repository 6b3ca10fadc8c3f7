"""SMTP accounts ("senders"): presets, create, read, update, delete, verify live."""

from __future__ import annotations

from dataclasses import asdict

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from functions import resources
from functions.http import ApiError, caller, int_param, json_object, language
from shared import sender_accounts, senders
from shared.errors import InputError, translate
from shared.mail.messenger import ConnectPolicy
from shared.netguard import HostRefused, vet_host
from shared.settings import get_settings
from shared.smtp_presets import PRESETS, preset_for_address


async def presets(request: Request) -> Response:
    return JSONResponse({"items": [asdict(p) for p in PRESETS.values()]})


async def _vet(value: sender_accounts.SenderInput) -> None:
    try:
        await vet_host(value.host, value.port, allow_private=get_settings().smtp_allow_private)
    except HostRefused as exc:
        raise InputError("host_refused", "host", host=value.host, reason=str(exc)) from None


async def list_senders(request: Request) -> Response:
    who = await caller(request)
    pool = await resources.db()
    async with pool.acquire() as conn:
        return JSONResponse({"items": await sender_accounts.list_for(conn, who.user_id)})


async def create_sender(request: Request) -> Response:
    who = await caller(request)
    value = sender_accounts.parse(await json_object(request), allow_plaintext=get_settings().smtp_allow_plaintext)
    await _vet(value)
    pool = await resources.db()
    async with pool.acquire() as conn:
        created = await sender_accounts.create(conn, resources.keys(), who.user_id, value)
    return JSONResponse(created, status_code=201)


async def get_sender(request: Request) -> Response:
    who = await caller(request)
    pool = await resources.db()
    async with pool.acquire() as conn:
        found = await sender_accounts.get(conn, who.user_id, int_param(request, "sender_id"))
    if found is None:
        raise ApiError(404, "not_found")
    return JSONResponse(found)


async def update_sender(request: Request) -> Response:
    who = await caller(request)
    sender_id = int_param(request, "sender_id")
    pool = await resources.db()
    async with pool.acquire() as conn:
        current = await sender_accounts.get(conn, who.user_id, sender_id)
        if current is None:
            raise ApiError(404, "not_found")
        value = sender_accounts.parse(await json_object(request), current=current,
                                      allow_plaintext=get_settings().smtp_allow_plaintext)
        await _vet(value)
        updated = await sender_accounts.update(conn, resources.keys(), who.user_id, sender_id, value)
    return JSONResponse(updated)


async def delete_sender(request: Request) -> Response:
    who = await caller(request)
    pool = await resources.db()
    async with pool.acquire() as conn:
        outcome = await sender_accounts.delete(conn, who.user_id, int_param(request, "sender_id"))
    if outcome == "missing":
        raise ApiError(404, "not_found")
    if outcome == "in_use":
        raise ApiError(409, "sender_in_use")
    return Response(status_code=204)


async def verify_sender(request: Request) -> Response:
    who = await caller(request)
    sender_id = int_param(request, "sender_id")
    pool = await resources.db()
    async with pool.acquire() as conn:
        if await sender_accounts.get(conn, who.user_id, sender_id) is None:
            raise ApiError(404, "not_found")
        sender = await senders.load(conn, resources.keys(), sender_id)
    assert sender is not None
    policy = ConnectPolicy.from_settings(get_settings(), max_timeout=10.0)  # well inside the gateway's 30 s
    problem = await sender_accounts.verify(sender.account, sender.from_email, policy)
    async with pool.acquire() as conn:
        await sender_accounts.record_verification(conn, sender_id, problem)
        current = await sender_accounts.get(conn, who.user_id, sender_id)
    if problem is None:
        return JSONResponse({"verified": True, "sender": current})
    return JSONResponse(
        {"verified": False, "sender": current, "error": explain(request, problem, sender, current)},
        status_code=422,
    )


def explain(request: Request, problem: sender_accounts.VerifyProblem, sender: senders.Sender,
            current: dict[str, object] | None = None) -> dict[str, object]:
    """The error body for an SMTP problem, in the caller's language, with a provider hint."""
    lang = language(request)
    hint = ""
    if problem.kind == "auth":
        preset = PRESETS.get(str((current or {}).get("preset") or "")) or preset_for_address(sender.from_email)
        if preset is not None and preset.app_password_hint:
            hint = translate("smtp_auth_hint", lang, provider=preset.title)
    message = translate(
        f"smtp_{problem.kind}", lang, host=sender.account.host, port=sender.account.port,
        detail=problem.detail, hint=hint, from_email=sender.from_email,
    )
    return {"code": f"smtp_{problem.kind}", "message": message, "smtp_code": problem.code}
