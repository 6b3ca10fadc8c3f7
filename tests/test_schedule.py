"""Send later: scheduled through the API with every start check at once, started once when due
(whatever runs it twice at the same moment), and back to draft with the reason when it no longer
can start. The fan-out worker's own timer is tested end to end in the last test."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

import httpx
import pytest

from sendpy.devstack.smtp_sink import SmtpSink
from shared.campaigns.schedule import start_due
from shared.settings import get_settings
from shared.storage import UploadStore
from tests.conftest import Workers
from tests.helpers import make_sender, make_upload, wait_status


@pytest.fixture
def auth(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


def moment(seconds: float, offset_hours: int = 3) -> str:
    """`seconds` from now, written in a +03:00 zone as a Moscow browser would."""
    zone = dt.timezone(dt.timedelta(hours=offset_hours))
    return (dt.datetime.now(zone) + dt.timedelta(seconds=seconds)).isoformat(timespec="seconds")


async def ready_draft(api: httpx.AsyncClient, auth: dict[str, str], sink: SmtpSink, emails: int = 3) -> str:
    sender = await make_sender(api, auth, sink)
    upload = await make_upload(api, auth, b"email\n" + b"".join(b"later%d@example.com\n" % n for n in range(emails)))
    draft = await api.post("/v1/campaigns", headers=auth, json={
        "sender_id": sender["id"], "upload_id": upload["id"], "subject": "Later", "html_body": "<p>Hi</p>"})
    return str(draft.json()["id"])


async def test_scheduling_checks_now_and_refuses_bad_moments(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink
) -> None:
    unfinished = (await api.post("/v1/campaigns", headers=auth, json={"subject": "x"})).json()["id"]
    refused = await api.post(f"/v1/campaigns/{unfinished}/schedule", headers={**auth, "Accept-Language": "ru"},
                             json={"at": moment(3600)})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "start_needs"  # found now, not at 9:00
    campaign_id = await ready_draft(api, auth, clean_sink)
    for at, code in [(moment(-60), "schedule_past"), ("2026-12-01T09:00:00", "schedule_moment"),
                     ("tomorrow", "schedule_moment"), (moment(400 * 86400), "schedule_too_far")]:
        answer = await api.post(f"/v1/campaigns/{campaign_id}/schedule", headers=auth, json={"at": at})
        assert answer.status_code == 400 and answer.json()["error"]["code"] == code, (at, answer.text)
    at = moment(3600)
    scheduled = await api.post(f"/v1/campaigns/{campaign_id}/schedule", headers=auth, json={"at": at})
    assert scheduled.status_code == 200 and scheduled.json()["status"] == "scheduled"
    assert dt.datetime.fromisoformat(scheduled.json()["scheduled_at"]) == dt.datetime.fromisoformat(at)
    edited = await api.patch(f"/v1/campaigns/{campaign_id}", headers=auth, json={"subject": "Later, edited"})
    assert edited.status_code == 200  # editable until it starts
    back = await api.delete(f"/v1/campaigns/{campaign_id}/schedule", headers=auth)
    assert back.json()["status"] == "draft" and back.json()["scheduled_at"] is None


async def test_a_due_campaign_starts_exactly_once_even_when_two_workers_look_at_once(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink, db: Any
) -> None:
    campaign_id = await ready_draft(api, auth, clean_sink)
    assert (await api.post(f"/v1/campaigns/{campaign_id}/schedule", headers=auth,
                           json={"at": moment(60)})).status_code == 200
    await db.execute("UPDATE campaigns SET scheduled_at = now() - interval '1 second' WHERE id = $1",
                     uuid.UUID(campaign_id))  # its moment has come
    store = UploadStore(get_settings())
    started = await asyncio.gather(*(start_due(db, store) for _ in range(4)))
    assert sum(started) == 1
    assert await db.fetchval("SELECT status FROM campaigns WHERE id = $1", uuid.UUID(campaign_id)) == "queued"
    commands = await db.fetchval("SELECT count(*) FROM outbox WHERE key = $1", campaign_id.encode())
    assert commands == 1  # one start command for the fan-out (no worker runs in this test to take it)
    assert await start_due(db, store) == 0
    await api.post(f"/v1/campaigns/{campaign_id}/cancel", headers=auth)  # later tests' workers send nothing of it


async def test_a_campaign_that_can_no_longer_start_goes_back_to_draft_with_the_reason(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink, db: Any
) -> None:
    campaign_id = await ready_draft(api, auth, clean_sink)
    assert (await api.post(f"/v1/campaigns/{campaign_id}/schedule", headers=auth,
                           json={"at": moment(60)})).status_code == 200
    key = await db.fetchval("SELECT u.s3_key FROM campaigns c JOIN uploads u ON u.id = c.upload_id WHERE c.id = $1",
                            uuid.UUID(campaign_id))
    store = UploadStore(get_settings())
    store.delete(key)  # the file expired while it waited
    await db.execute("UPDATE campaigns SET scheduled_at = now() WHERE id = $1", uuid.UUID(campaign_id))
    assert await start_due(db, store) == 0
    shown = (await api.get(f"/v1/campaigns/{campaign_id}", headers=auth)).json()
    assert shown["status"] == "draft"
    assert shown["status_reason"].startswith("Не удалось начать по расписанию: Файла контактов больше нет")
    assert "Could not start as scheduled: The contact file is no longer in storage" in shown["status_reason"]


async def test_the_fanout_worker_starts_a_scheduled_campaign_on_time(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink, workers: Workers
) -> None:
    campaign_id = await ready_draft(api, auth, clean_sink, emails=5)
    assert (await api.post(f"/v1/campaigns/{campaign_id}/schedule", headers=auth,
                           json={"at": moment(31)})).status_code == 200
    await asyncio.sleep(20)
    assert (await api.get(f"/v1/campaigns/{campaign_id}", headers=auth)).json()["status"] == "scheduled"
    assert not clean_sink.messages  # nothing before its time
    done = await wait_status(api, auth, campaign_id, {"finished"}, timeout=60)
    assert done["counts"]["sent"] == 5 and len(clean_sink.messages) == 5


async def test_a_scheduled_campaigns_plan_starts_at_its_time_not_now(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink, db: Any
) -> None:
    # The walk: scheduled for the 3rd, "about 6 days, the last letter around the 6th".
    campaign_id = await ready_draft(api, auth, clean_sink, emails=30)
    sender_id = (await api.get(f"/v1/campaigns/{campaign_id}", headers=auth)).json()["sender_id"]
    await db.execute("UPDATE senders SET per_minute = 20, per_day = 10 WHERE id = $1", sender_id)
    at = moment(3 * 86400)
    assert (await api.post(f"/v1/campaigns/{campaign_id}/schedule", headers=auth, json={"at": at})).status_code == 200
    plan = (await api.get(f"/v1/campaigns/{campaign_id}", headers=auth)).json()["plan"]
    starts = dt.datetime.fromisoformat(at).timestamp()
    assert plan["first_at"] >= starts - 1, plan
    assert plan["last_at"] >= starts + 2 * 86400 - 60, plan  # 30 at 10 a day: the third day after the start
    await api.delete(f"/v1/campaigns/{campaign_id}/schedule", headers=auth)
