"""A big contact file waiting for a file reader says why in the wizard, in Russian, and goes on
by itself once a reader is free."""

from __future__ import annotations

import uuid

import asyncpg
import httpx
from playwright.async_api import expect

from tests.conftest import Workers
from tests.test_web_imap import RussianPage, ru, sign_up  # noqa: F401  (ru is a fixture)


async def test_a_waiting_file_says_behind_what_and_then_is_read(
    ru: RussianPage, db: asyncpg.Pool, api: httpx.AsyncClient, workers: Workers  # noqa: F811
) -> None:
    page = ru.page
    auth = await sign_up(page, db)
    user_id = (await api.get("/v1/me", headers=auth)).json()["id"]
    # Another of this person's files being read right now (one per person at a time).
    other = uuid.uuid4()
    await db.execute("INSERT INTO file_jobs (subject, kind, user_id, token, claimed_until)"
                     " VALUES ($1, 'inspect', $2, $3, now() + interval '1 hour')", other, user_id, uuid.uuid4())
    big = b"email;name\r\n" + b"".join(b"person%d@example.ru;Name %d\r\n" % (n, n) for n in range(12_000))
    assert len(big) > 256 * 1024  # read by the file readers, not within the request
    await page.goto("/#/new")
    await page.locator("#file").set_input_files(files=[{"name": "big.csv", "mimeType": "text/csv", "buffer": big}])
    await expect(page.locator("#upload-status")).to_contain_text("В очереди за вашим другим файлом", timeout=30_000)
    await db.execute("DELETE FROM file_jobs WHERE subject = $1", other)  # that reading ends
    await expect(page.locator("#stat-rows")).to_have_text("12 000", timeout=60_000)
