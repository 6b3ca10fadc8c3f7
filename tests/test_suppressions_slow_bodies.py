"""Slow request bodies hold no database connection (issue 11): five accounts trickling a 4 MB
suppression import at a byte a second took every connection of the API's pool, and another
user's GET /v1/me waited 57 s."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx

from shared.settings import get_settings
from tests.conftest import new_api_key


async def test_trickling_imports_and_sender_edits_leave_the_pool_to_others(
    api: httpx.AsyncClient, db: asyncpg.Pool, app_env: dict[str, str]
) -> None:
    release = asyncio.Event()

    async def trickle(first: bytes) -> AsyncIterator[bytes]:
        yield first
        await release.wait()  # the rest "arrives" only when the test says so
        yield b"\n"

    crowd = get_settings().database_pool_max + 1
    keys = [await new_api_key(db) for _ in range(crowd)]
    imports = [asyncio.create_task(api.post(
        "/v1/suppressions/import", headers={"Authorization": f"Bearer {key}", "Content-Length": "4000000"},
        content=trickle(b"slow@example.com"))) for key in keys]
    sender = await api.post("/v1/senders", headers={"Authorization": f"Bearer {keys[0]}"}, json={
        "from_email": "news@example.org", "host": "127.0.0.1", "port": 2525, "security": "starttls",
        "password": "secret"})
    assert sender.status_code == 201, sender.text
    edits = [asyncio.create_task(api.patch(
        f"/v1/senders/{sender.json()['id']}", headers={"Authorization": f"Bearer {keys[0]}"},
        content=trickle(b'{"from_name": "N"}'))) for _ in range(crowd)]
    try:
        await asyncio.sleep(1)  # every one of them is reading its body now
        assert not any(task.done() for task in imports + edits)
        other = {"Authorization": f"Bearer {await new_api_key(db)}"}
        me = await asyncio.wait_for(api.get("/v1/me", headers=other), 20)  # was: until the bodies time out
        assert me.status_code == 200, me.text
    finally:
        release.set()
    answers: list[Any] = await asyncio.gather(*imports, *edits)
    # One import per account went through; none was refused for holding the lock meanwhile.
    assert [a.status_code for a in answers[:crowd]] == [201] * crowd, [a.text for a in answers[:crowd]]
    assert {a.status_code for a in answers[crowd:]} == {200}, [a.text for a in answers[crowd:]]
