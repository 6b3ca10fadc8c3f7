"""The seed's API, kept: `POST /api/send-message` and the status of what it accepted."""

from __future__ import annotations

import logging
import uuid

from aiokafka.errors import KafkaError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from functions import resources
from functions.http import api_user, error, input_error, json_body
from shared import campaigns, quick_send
from shared.errors import InputError
from shared.netguard import HostRefused, vet_host
from shared.settings import get_settings
from shared.work import CampaignCommand

log = logging.getLogger("sendpy.api")


async def send_message(request: Request) -> Response:
    user_id = await api_user(request)
    if user_id is None:
        return error(request, 401, "unauthorized")
    settings = get_settings()
    try:
        accepted = quick_send.parse(await json_body(request))
        try:
            await vet_host(accepted.host, accepted.port, allow_private=settings.smtp_allow_private)
        except HostRefused as exc:
            raise InputError("host_refused", "server_host", host=accepted.host, reason=str(exc)) from None
    except InputError as exc:
        return input_error(request, exc)

    pool = await resources.db()
    campaign_id = await quick_send.accept(pool, resources.keys(), user_id, accepted)
    try:
        producer = await resources.producer()
        await producer.send_and_wait(
            settings.topic_campaigns, CampaignCommand(campaign_id).encode(), key=str(campaign_id).encode()
        )
    except KafkaError:
        log.exception("could not queue campaign", extra={"campaign": str(campaign_id)})
        await pool.execute("DELETE FROM campaigns WHERE id = $1", campaign_id)
        return error(request, 503, "unavailable", what="message broker")
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
        return error(request, 401, "unauthorized")
    try:
        campaign_id = uuid.UUID(request.path_params["campaign_id"])
    except ValueError:
        return error(request, 404, "not_found")
    pool = await resources.db()
    async with pool.acquire() as conn:
        found = await campaigns.progress(conn, user_id, campaign_id)
    if found is None:
        return error(request, 404, "not_found")
    return JSONResponse(found)
