"""Campaigns: drafts, preview, test send, start/pause/resume/cancel, progress, recipients, export."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from functions import resources
from functions.auth import caller
from functions.errors import ApiError, language
from functions.handover import hand_over
from functions.idempotency import idempotent
from functions.parsing import json_object, uuid_param
from shared import recipients, smtp_accounts, suppressions, uploads
from shared.addresses import check_address
from shared.campaigns import drafts, preview, progress, schedule, states
from shared.campaigns.next_batch import next_batch
from shared.campaigns.states import StateConflict
from shared.db import Conn
from shared.errors import InputError, invalid_email, translate
from shared.export import BOM, csv_lines, default_delimiter, recipient_header, recipient_row, text_cell, time_zone
from shared.mail.compose import CampaignContent, CompiledCampaign, RenderTooLarge
from shared.mail.messenger import ConnectError, ConnectPolicy, Reply, ReplyKind, SmtpConnection
from shared.settings import get_settings
from shared.smtp_accounts import LIVE_CHECK_SECONDS, VerifyProblem
from shared.unsubscribe import Unsubscriber, signing_key


async def _owned(request: Request) -> tuple[int, uuid.UUID, dict[str, Any]]:
    who = await caller(request)
    campaign_id = uuid_param(request, "campaign_id")
    pool = await resources.db()
    async with pool.acquire() as conn:
        campaign = await drafts.get(conn, who.user_id, campaign_id)
    if campaign is None:
        raise ApiError(404, "not_found")
    return who.user_id, campaign_id, campaign


def _conflict(exc: StateConflict) -> ApiError:
    return ApiError(409, "campaign_state", state=exc.status, action=exc.action)


async def list_campaigns(request: Request) -> Response:
    who = await caller(request)
    pool = await resources.db()
    async with pool.acquire() as conn:
        return JSONResponse({"items": await drafts.list_for(conn, who.user_id)})


async def create_campaign(request: Request) -> Response:
    who = await caller(request)
    body = await json_object(request)

    async def act() -> JSONResponse:
        pool = await resources.db()
        async with pool.acquire() as conn:
            return JSONResponse(await drafts.create(conn, who.user_id, body), status_code=201)

    return await idempotent(request, who, "create_campaign", act)


async def get_campaign(request: Request) -> Response:
    user_id, campaign_id, campaign = await _owned(request)
    pool = await resources.db()
    async with pool.acquire() as conn:
        found = await progress.progress(conn, user_id, campaign_id)
        rate = await progress.sent_last_minute(conn, campaign_id)
        counts = found["counts"] if found else {}
        planned = None  # a campaign not started yet has no recipients: what its file will give
        if campaign["status"] in ("draft", "scheduled"):
            upload = await uploads.get(conn, user_id, uuid.UUID(campaign["upload_id"])) \
                if campaign["upload_id"] else None
            planned = progress.planned((upload or {}).get("report"))
            to_send = planned["recipients"] if planned else 0
        else:
            to_send = counts.get("pending", 0) + counts.get("sending", 0)
        # A scheduled campaign's plan starts at its time, not now (the walk: "6 days, last letter on
        # the 6th" for a start on the 3rd).
        starts_at = datetime.fromisoformat(campaign["scheduled_at"]).timestamp() \
            if campaign["status"] == "scheduled" and campaign.get("scheduled_at") else None
        plan = await progress.campaign_plan(conn, campaign["sender_id"], to_send, rate, campaign_id, starts_at)
        # «Отправить сейчас» asks with the plan from now, not the scheduled one it replaces.
        plan_now = await progress.campaign_plan(conn, campaign["sender_id"], to_send, rate, campaign_id) \
            if starts_at is not None else None
        waiting = await next_batch(conn, campaign_id) if campaign["status"] == "sending" else None
        # Started, yet nothing went out in the last minute: the account may still be busy with an
        # earlier campaign of the user's, which this one follows (a draft too: the review's plan says so).
        behind = await progress.waiting_behind(conn, campaign["sender_id"], campaign_id) \
            if campaign["status"] in ("draft", "scheduled", "queued", "sending") and not rate else None
    eta = round(max(plan.last_at - time.time(), 0)) if plan and to_send and campaign["status"] == "sending" \
        else None
    return JSONResponse({**campaign, "counts": counts, "rate_per_minute": rate, "eta_seconds": eta,
                         "plan": plan.to_json() if plan else None, "planned": planned,
                         "plan_now": plan_now.to_json() if plan_now else None, "waiting_for": behind,
                         "next_batch": waiting.to_json(campaign["status_reason"]) if waiting else None})


async def _changed(act: Callable[[Conn], Awaitable[dict[str, Any] | None]]) -> JSONResponse:
    """Run a change of one campaign: 409 when its state forbids it, 404 when the user has none."""
    pool = await resources.db()
    try:
        async with pool.acquire() as conn:
            changed = await act(conn)
    except StateConflict as exc:
        raise _conflict(exc) from None
    if changed is None:
        raise ApiError(404, "not_found")
    return JSONResponse(changed)


async def update_campaign(request: Request) -> Response:
    who = await caller(request)
    campaign_id = uuid_param(request, "campaign_id")
    body = await json_object(request)
    return await _changed(lambda conn: drafts.update(conn, who.user_id, campaign_id, body))


async def delete_campaign(request: Request) -> Response:
    who = await caller(request)
    pool = await resources.db()
    try:
        async with pool.acquire() as conn:
            deleted = await drafts.delete(conn, who.user_id, uuid_param(request, "campaign_id"))
    except StateConflict as exc:
        raise _conflict(exc) from None
    if not deleted:
        raise ApiError(404, "not_found")
    return Response(status_code=204)


async def _row_fields(user_id: int, campaign: dict[str, Any], row: int) -> tuple[str, dict[str, Any]]:
    """(email, fields) of data row `row` (1 = first contact) of the campaign's contact file."""
    if not campaign["upload_id"]:
        return "", {}
    return await uploads.contact_at(await resources.db(), resources.store(), user_id,
                                    uuid.UUID(campaign["upload_id"]), row)


def _row_number(body: dict[str, Any]) -> int:
    row = body.get("row", 1)
    if isinstance(row, bool) or not isinstance(row, int) or not 1 <= row <= 100_000_000:
        raise InputError("row_out_of_range", "row", count="N")
    return row


async def preview_campaign(request: Request) -> Response:
    user_id, campaign_id, campaign = await _owned(request)
    body = await json_object(request)
    row = _row_number(body)
    email, fields = await _row_fields(user_id, campaign, row)
    sender = await _sender(user_id, campaign)
    settings = get_settings()
    # A 2 MB template with long fields takes a good part of a second: not on the event loop.
    result = await asyncio.to_thread(
        preview.preview,
        campaign, sender.from_email if sender else "you@example.com", sender.from_name if sender else "",
        email, fields, Unsubscriber(signing_key(settings), settings.public_base_url, campaign_id, user_id),
    )
    return JSONResponse({"row": row, "email": email, "fields": fields, "subject": result.subject,
                         "html": result.html, "text": result.text, "undefined": result.undefined})


async def _sender(user_id: int, campaign: dict[str, Any]) -> smtp_accounts.Sender | None:
    if not campaign["sender_id"]:
        return None
    pool = await resources.db()
    async with pool.acquire() as conn:
        return await smtp_accounts.load(conn, campaign["sender_id"], user_id)


# A test send goes to the person at the keyboard: marked in their language.
TEST_MARK = {"en": "[Test] ", "ru": "[Тест] "}


async def test_send(request: Request) -> Response:
    """Send this campaign, as row `row` would get it, to one address (subject marked [Test])."""
    user_id, campaign_id, campaign = await _owned(request)
    body = await json_object(request)
    raw_to = body.get("email")
    if not isinstance(raw_to, str) or not raw_to:
        raise InputError("required", "email")
    to = check_address(raw_to)
    if to.normalized is None:
        raise invalid_email("email", raw_to, to.reason)
    sender = await _sender(user_id, campaign)
    if sender is None:
        raise InputError("start_needs", "sender_id")
    _, fields = await _row_fields(user_id, campaign, _row_number(body))
    settings = get_settings()
    content = CampaignContent(str(campaign_id), sender.from_email, sender.from_name,
                              TEST_MARK[language(request)] + campaign["subject"], campaign["html_body"],
                              campaign["text_body"])
    unsubscriber = Unsubscriber(signing_key(settings), settings.public_base_url, campaign_id, user_id)
    address = to.normalized

    def render() -> bytes:
        return CompiledCampaign(content, unsubscriber=unsubscriber).render(0, address, fields)

    try:
        message = await asyncio.to_thread(render)
    except RenderTooLarge as exc:
        raise preview.template_error(exc) from None
    except Exception as exc:  # parses, but fails for this row's data
        raise preview.render_error(exc) from None
    policy = ConnectPolicy.from_settings(settings, max_timeout=10.0)
    connection = SmtpConnection(await sender.open_account(resources.keys()), policy)

    async def deliver() -> Reply:
        await connection.open()
        try:
            return await connection.send(sender.from_email, address, message)
        finally:
            await connection.quit()

    try:
        # The whole test inside the gateway's 30 s, however slowly the server answers each command.
        reply = await asyncio.wait_for(deliver(), LIVE_CHECK_SECONDS)
    except ConnectError as exc:
        problem = VerifyProblem(exc.kind, str(exc), exc.code)
        return JSONResponse({"sent": False, "error": _explain(request, problem, sender)}, status_code=422)
    except TimeoutError:
        connection.close()
        problem = VerifyProblem("timeout", f"{sender.host}:{sender.port} took longer than"
                                           f" {LIVE_CHECK_SECONDS:.0f} s to answer")
        return JSONResponse({"sent": False, "error": _explain(request, problem, sender)}, status_code=422)
    if reply.kind is not ReplyKind.SENT:
        problem = VerifyProblem("protocol", reply.describe(), reply.code)
        return JSONResponse({"sent": False, "error": _explain(request, problem, sender)}, status_code=422)
    answer: dict[str, object] = {"sent": True, "to": to.normalized, "reply": reply.describe()}
    pool = await resources.db()
    async with pool.acquire() as conn:
        if await suppressions.is_suppressed(conn, user_id, to.normalized):
            # A test goes out anyway (it is the user's own check), but the campaign will skip this address.
            answer["warning"] = translate("test_to_suppressed", language(request), email=to.normalized)
    return JSONResponse(answer)


def _explain(request: Request, problem: VerifyProblem, sender: smtp_accounts.Sender) -> dict[str, object]:
    return smtp_accounts.explain(problem, sender.from_email, sender.host, sender.port, sender.preset,
                                 language(request))


async def start_campaign(request: Request) -> Response:
    who = await caller(request)
    campaign_id = uuid_param(request, "campaign_id")

    async def act() -> JSONResponse:
        pool = await resources.db()
        async with pool.acquire() as conn:
            campaign = await drafts.get(conn, who.user_id, campaign_id)
            if campaign is None:
                raise ApiError(404, "not_found")
            checking = campaign["status"] in ("draft", "scheduled")
            if checking:
                await states.start_checks(conn, resources.store(), who.user_id, campaign)
        if checking:  # reads the file with a connection of its own: not while holding this one
            await _first_contact_trial(who.user_id, campaign)
        async with pool.acquire() as conn:
            try:
                await states.transition(conn, who.user_id, campaign_id, "start")
            except StateConflict as exc:
                raise _conflict(exc) from None
            started = await drafts.get(conn, who.user_id, campaign_id)
        await hand_over(str(campaign_id).encode())
        return JSONResponse(started, status_code=202)

    return await idempotent(request, who, "start_campaign", act)


async def _first_contact_trial(user_id: int, campaign: dict[str, Any]) -> None:
    """Fill the campaign in for the file's first contact, as sending will: a template that fails
    there (`{% if age < 18 %}` on a text column) is refused before anyone is mailed."""
    try:
        email, fields = await _row_fields(user_id, campaign, 1)
    except InputError as exc:
        if exc.code == "row_out_of_range":
            return  # a file without contacts: nothing to fill in
        raise
    await asyncio.to_thread(preview.trial, campaign["subject"], campaign["html_body"], campaign["text_body"],
                            {**fields, "email": email}, preview.first_contact(email))


async def schedule_campaign(request: Request) -> Response:
    who = await caller(request)
    campaign_id = uuid_param(request, "campaign_id")
    at = schedule.parse_moment((await json_object(request)).get("at"))
    return await _changed(lambda conn: schedule.schedule(conn, resources.store(), who.user_id, campaign_id, at))


async def unschedule_campaign(request: Request) -> Response:
    who = await caller(request)
    campaign_id = uuid_param(request, "campaign_id")
    return await _changed(lambda conn: schedule.unschedule(conn, who.user_id, campaign_id))


async def _control(request: Request, action: str) -> Response:
    who = await caller(request)
    campaign_id = uuid_param(request, "campaign_id")
    pool = await resources.db()
    try:
        async with pool.acquire() as conn:
            if not await states.transition(conn, who.user_id, campaign_id, action):
                raise ApiError(404, "not_found")
            changed = await drafts.get(conn, who.user_id, campaign_id)
    except StateConflict as exc:
        raise _conflict(exc) from None
    if action == "resume":
        await hand_over(str(campaign_id).encode())
    return JSONResponse(changed, status_code=202 if action == "resume" else 200)


async def pause_campaign(request: Request) -> Response:
    return await _control(request, "pause")


async def resume_campaign(request: Request) -> Response:
    return await _control(request, "resume")


async def cancel_campaign(request: Request) -> Response:
    return await _control(request, "cancel")


def _recipient_filters(request: Request) -> tuple[str | None, str | None]:
    status = request.query_params.get("status") or None
    if status is not None and status not in recipients.STATES:
        raise InputError("invalid_choice", "status", choices=", ".join(recipients.STATES))
    query = (request.query_params.get("q") or "").replace("\x00", "").strip()[:200] or None
    return status, query


async def list_recipients(request: Request) -> Response:
    _, campaign_id, _ = await _owned(request)
    status, query = _recipient_filters(request)
    try:
        after = min(max(int(request.query_params.get("after", "0")), 0), 2**31 - 1)
        limit = min(max(int(request.query_params.get("limit", "50")), 1), 500)
    except ValueError:
        raise InputError("invalid_page", "after") from None
    pool = await resources.db()
    async with pool.acquire() as conn:
        rows = await recipients.page(conn, campaign_id, after=after, limit=limit, status=status, search=query)
    items = [{**r, "updated_at": r["updated_at"].isoformat()} for r in rows]
    next_after = items[-1]["position"] if len(items) == limit else None
    return JSONResponse({"items": items, "next_after": next_after})


async def export_recipients(request: Request) -> Response:
    """The recipients as CSV for a spreadsheet: in the reader's language (`lang`, else the
    browser's) and time zone (`tz`, else UTC), with ';' for Russian unless `sep` says otherwise,
    and the file's own columns; every cell reads in a spreadsheet as written (shared/export.py)."""
    user_id, campaign_id, campaign = await _owned(request)
    status, query = _recipient_filters(request)
    lang = request.query_params.get("lang") or language(request)
    lang = lang if lang in ("ru", "en") else "en"
    separators = {"semicolon": ";", "comma": ",", "tab": "\t"}
    sep = request.query_params.get("sep")
    if sep is not None and sep not in separators:
        raise InputError("invalid_choice", "sep", choices=", ".join(separators))
    delimiter = separators[sep] if sep else default_delimiter(lang)
    zone = time_zone(request.query_params.get("tz"))
    pool = await resources.db()
    async with pool.acquire() as conn:
        upload = await uploads.get(conn, user_id, uuid.UUID(campaign["upload_id"])) if campaign["upload_id"] else None
    email_at = ((upload or {}).get("dialect") or {}).get("email_column")
    columns = [(c["field"], c["label"]) for at, c in enumerate((upload or {}).get("columns") or []) if at != email_at]

    async def body() -> AsyncIterator[bytes]:
        yield BOM.encode()
        after, header = 0, recipient_header(lang, [label for _, label in columns], zone,
                                                 request.query_params.get("zone"))  # type: int, list[str] | None
        fields = [field for field, _ in columns]
        while True:
            async with pool.acquire() as conn:
                rows = await recipients.page(conn, campaign_id, after=after, limit=5000, status=status,
                                             search=query, with_fields=True)
            for chunk in csv_lines((recipient_row(r, lang, fields, zone) for r in rows), header, delimiter,
                                   cell=text_cell):
                yield chunk.encode()
            header = None
            if len(rows) < 5000:
                return
            after = rows[-1]["position"]

    return StreamingResponse(body(), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="campaign-{campaign_id}.csv"'})
