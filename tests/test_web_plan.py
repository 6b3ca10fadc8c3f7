"""The review step and the campaign page say how the account's daily limit spreads a campaign, in
Russian words (plurals, no English units), from the API's plan."""

from __future__ import annotations

import re

import asyncpg
import httpx
from playwright.async_api import expect

from sendpy.devstack.smtp_sink import SmtpSink
from tests.helpers import make_sender, make_upload
from tests.test_web_e2e import shot
from tests.test_web_imap import RussianPage, ru, sign_up  # noqa: F401  (ru is a fixture)


async def test_the_review_says_how_many_days_a_gmail_sized_limit_takes(
    ru: RussianPage, db: asyncpg.Pool, api: httpx.AsyncClient, clean_sink: SmtpSink  # noqa: F811
) -> None:
    page = ru.page
    auth = await sign_up(page, db)
    sender = await make_sender(api, auth, clean_sink, per_minute=20, per_day=500)
    upload = await make_upload(api, auth, b"email\n" + b"".join(b"p%d@example.com\n" % n for n in range(2755)))
    draft = (await api.post("/v1/campaigns", headers=auth, json={
        "sender_id": sender["id"], "upload_id": upload["id"], "subject": "Новости", "html_body": "<p>Hi</p>"})).json()
    await page.goto(f"/#/wizard/{draft['id']}/4")
    plan = page.locator("#review-plan")
    await expect(plan).to_contain_text("примерно 6 дней, по 500 в день")
    await expect(plan).to_contain_text("последнее письмо около ")
    assert not re.search(r"\b(min|h|d|days?|about)\b", await plan.inner_text()), await plan.inner_text()
    await shot(page, "4-review-plan-ru")
