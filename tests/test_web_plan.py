"""The review step and the campaign page say how the account's daily limit spreads a campaign, in
Russian words (plurals, no English units), from the API's plan."""

from __future__ import annotations

import datetime as dt
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
    await expect(page.locator("#review-skipped")).to_have_text(
        "в списке исключений: 0; повторов: 0; строк без верного адреса: 0")
    await expect(plan).to_contain_text("последнее письмо около ")
    assert not re.search(r"\b(min|h|d|days?|about)\b", await plan.inner_text()), await plan.inner_text()
    await shot(page, "4-review-plan-ru")


async def test_send_asks_first_and_a_campaign_can_be_scheduled_and_taken_back(
    ru: RussianPage, db: asyncpg.Pool, api: httpx.AsyncClient, clean_sink: SmtpSink  # noqa: F811
) -> None:
    page = ru.page
    auth = await sign_up(page, db)
    sender = await make_sender(api, auth, clean_sink, per_minute=20, per_day=500)
    upload = await make_upload(api, auth, b"email\nann@example.com\nbob@example.com\n")
    draft = (await api.post("/v1/campaigns", headers=auth, json={
        "sender_id": sender["id"], "upload_id": upload["id"], "subject": "Новости", "html_body": "<p>Hi</p>"})).json()
    await page.goto(f"/#/wizard/{draft['id']}/4")
    await page.get_by_role("button", name="Отправить", exact=True).click()
    dialog = page.get_by_role("dialog", name="Отправить рассылку?")
    await expect(dialog).to_contain_text("Уйдёт писем: 2")
    await dialog.get_by_role("button", name="Отмена").click()  # nothing sent, still the review
    await expect(page.get_by_role("button", name="Отправить", exact=True)).to_be_focused()

    later = page.get_by_label("Или отправить позже, в")
    moscow = dt.timezone(dt.timedelta(hours=3))  # the browser runs in Europe/Moscow (the `ru` fixture)
    when = (dt.datetime.now(moscow) + dt.timedelta(days=30)).replace(hour=9, minute=30, second=0, microsecond=0)
    await later.fill(when.strftime("%Y-%m-%dT%H:%M"))
    await expect(page.locator("#later")).to_contain_text("Москва, стандартное время (UTC+3)")  # not Europe/Moscow
    await page.get_by_role("button", name="Запланировать").click()
    await page.get_by_role("dialog", name="Запланировать рассылку?").get_by_role("button", name="Запланировать").click()
    await expect(page.locator("#status")).to_have_text("запланирована")
    await expect(page.locator("#reason")).to_contain_text("Отправка начнётся ")
    await shot(page, "campaign-scheduled-ru")
    shown = (await api.get(f"/v1/campaigns/{draft['id']}", headers=auth)).json()
    assert shown["status"] == "scheduled"
    assert dt.datetime.fromisoformat(shown["scheduled_at"]) == when  # 09:30 in Moscow is 06:30 UTC
    await page.get_by_role("button", name="Отменить расписание и изменить").click()
    await expect(page.get_by_role("heading", name="Сводка")).to_be_visible()
    assert (await api.get(f"/v1/campaigns/{draft['id']}", headers=auth)).json()["status"] == "draft"
    assert not clean_sink.messages


async def test_send_is_disabled_with_nobody_to_send_to(
    ru: RussianPage, db: asyncpg.Pool, api: httpx.AsyncClient, clean_sink: SmtpSink  # noqa: F811
) -> None:
    page = ru.page
    auth = await sign_up(page, db)
    sender = await make_sender(api, auth, clean_sink)
    upload = await make_upload(api, auth, b"email\nnot-an-address\nstill not\n")
    draft = (await api.post("/v1/campaigns", headers=auth, json={
        "sender_id": sender["id"], "upload_id": upload["id"], "subject": "Новости", "html_body": "<p>Hi</p>"})).json()
    await page.goto(f"/#/wizard/{draft['id']}/4")
    await expect(page.get_by_role("button", name="Отправить", exact=True)).to_be_disabled()
    await expect(page.locator("#no-recipients")).to_contain_text("отправлять некому")


async def test_the_recipient_list_pages_through_everyone(
    ru: RussianPage, db: asyncpg.Pool, api: httpx.AsyncClient, clean_sink: SmtpSink, workers: object  # noqa: F811
) -> None:
    from tests.helpers import wait_status

    page = ru.page
    auth = await sign_up(page, db)
    sender = await make_sender(api, auth, clean_sink)
    upload = await make_upload(api, auth, b"email\n" + b"".join(b"page%d@example.com\n" % n for n in range(230)))
    draft = (await api.post("/v1/campaigns", headers=auth, json={
        "sender_id": sender["id"], "upload_id": upload["id"], "subject": "Новости", "html_body": "<p>Hi</p>"})).json()
    assert (await api.post(f"/v1/campaigns/{draft['id']}/start", headers=auth)).status_code == 202
    await wait_status(api, auth, draft["id"], {"finished"}, timeout=60)
    await page.goto(f"/#/campaign/{draft['id']}")
    await expect(page.locator("#shown")).to_have_text("Показано 100 из 230.")
    await page.get_by_role("button", name="Показать ещё 100").click()
    await expect(page.locator("#shown")).to_have_text("Показано 200 из 230.")
    await page.get_by_role("button", name="Показать ещё 100").click()
    await expect(page.locator("#shown")).to_have_text("Показано 230 из 230.")
    await expect(page.get_by_role("button", name="Показать ещё 100")).to_be_hidden()
    await expect(page.locator("#recipients tr").last).to_contain_text("page229@example.com")
