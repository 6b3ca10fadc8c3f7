"""Helpers: upload a file the way the browser does (presigned POST straight to S3)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx


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
