"""The seed's API, kept: `POST /api/send-message` and the status of what it accepted."""

from __future__ import annotations

import asyncio
import logging
import uuid

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from functions import resources
from functions.auth import api_user
from functions.errors import error_response, input_error
from functions.handover import hand_over
from functions.parsing import json_body
from shared import send_message as one_shot
from shared.campaigns import progress
from shared.errors import InputError
from shared.settings import get_settings

log = logging.getLogger("sendpy.api")


async def send_message(request: Request) -> Response:
    user_id = await api_user(request)
    if user_id is None:
        return error_response(request, 401, "unauthorized")
    settings = get_settings()
    pool = await resources.db()
    try:
        body = await json_body(request)
        # Compiling a 2 MB template takes most of a second: not on the event loop.
        accepted = await asyncio.to_thread(one_shot.parse, body, allow_plaintext=settings.smtp_allow_plaintext)
        campaign_id = await one_shot.accept(pool, resources.keys(), user_id, accepted,
                                            allow_private=settings.smtp_allow_private)
    except InputError as exc:
        return input_error(request, exc)
    await hand_over(str(campaign_id).encode())
    return JSONResponse(
        {
            "campaign_id": str(campaign_id),
            "status": "queued",
            "accepted": len(accepted.recipients),
            "duplicates_removed": accepted.duplicates,
            "status_url": f"/api/campaigns/{campaign_id}",
        },
        status_code=202,
    )


async def campaign_status(request: Request) -> Response:
    user_id = await api_user(request)
    if user_id is None:
        return error_response(request, 401, "unauthorized")
    try:
        campaign_id = uuid.UUID(request.path_params["campaign_id"])
    except ValueError:
        return error_response(request, 404, "not_found")
    pool = await resources.db()
    async with pool.acquire() as conn:
        found = await progress.progress(conn, user_id, campaign_id)
    if found is None:
        return error_response(request, 404, "not_found")
    return JSONResponse(found)
