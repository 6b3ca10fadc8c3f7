"""Helpers for API tests: uploads the way the browser does them, senders, campaigns, waiting."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from sendpy.devstack.smtp_sink import SmtpSink


async def upload_file(api: httpx.AsyncClient, headers: dict[str, str], data: bytes,
                      filename: str = "contacts.csv") -> dict[str, Any]:
    created = await api.post("/v1/uploads", json={"filename": filename}, headers=headers)
    assert created.status_code == 201, created.text
    form = created.json()["post"]
    async with httpx.AsyncClient() as s3:
        posted = await s3.post(form["url"], data=form["fields"], files={"file": (filename, data, "text/csv")})
    assert posted.status_code in (200, 204), posted.text
    upload: dict[str, Any] = created.json()["upload"]
    return upload


async def complete(api: httpx.AsyncClient, headers: dict[str, str], upload_id: str) -> httpx.Response:
    return await api.post(f"/v1/uploads/{upload_id}/complete", headers=headers)


async def wait_ready(api: httpx.AsyncClient, headers: dict[str, str], upload_id: str,
                     timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        found: dict[str, Any] = (await api.get(f"/v1/uploads/{upload_id}", headers=headers)).json()
        if found["status"] in ("ready", "failed") or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.3)


async def make_sender(api: httpx.AsyncClient, auth: dict[str, str], sink: SmtpSink, **extra: Any) -> dict[str, Any]:
    body = {"from_email": f"news{time.monotonic_ns()}@example.org", "from_name": "Новости", "host": "127.0.0.1",
            "port": sink.port, "security": "starttls", "password": "secret-pass", **extra}
    made = await api.post("/v1/senders", json=body, headers=auth)
    assert made.status_code == 201, made.text
    verified = await api.post(f"/v1/senders/{made.json()['id']}/verify", headers=auth)
    assert verified.status_code == 200, verified.text
    return dict(made.json())

async def make_upload(api: httpx.AsyncClient, auth: dict[str, str], data: bytes) -> dict[str, Any]:
    upload = await upload_file(api, auth, data)
    ready = await complete(api, auth, upload["id"])
    assert ready.status_code == 200, ready.text
    return dict(ready.json())

async def wait_status(api: httpx.AsyncClient, auth: dict[str, str], campaign_id: str, wanted: set[str],
                      timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        answer = await api.get(f"/v1/campaigns/{campaign_id}", headers=auth)
        found: dict[str, Any] = answer.json()
        # A 5xx can happen while a test restarts Postgres; keep polling through it.
        if answer.status_code == 200 and (found["status"] in wanted or time.monotonic() > deadline):
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"campaign {campaign_id} still not {wanted}: {answer.text}")
        await asyncio.sleep(0.3)


async def run_campaign(api: httpx.AsyncClient, auth: dict[str, str], sink: SmtpSink, emails: list[str],
                       html: str = "<p>Hello {{ email }}</p>", **sender: Any) -> str:
    """Sender (verified) + contact file + draft, started; returns the campaign id."""
    made = await make_sender(api, auth, sink, **sender)
    upload = await make_upload(api, auth, ("email\n" + "\n".join(emails) + "\n").encode())
    draft = await api.post("/v1/campaigns", headers=auth, json={
        "sender_id": made["id"], "upload_id": upload["id"], "subject": "Test", "html_body": html})
    assert draft.status_code == 201, draft.text
    started = await api.post(f"/v1/campaigns/{draft.json()['id']}/start", headers=auth)
    assert started.status_code == 202, started.text
    return str(draft.json()["id"])
