"""What the fourth Russian keyboard-only walk found on the campaign page (issue 12): the recipients'
status column has a header, «Показать ещё 100» moves focus to the first new row, cancelling asks in
the page's own dialog and a cancelled campaign says what was sent, a campaign behind another is
«ждёт очереди» (no «6 дек..»), and a scheduled one says whom it waits for and its plan.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import asyncpg
import httpx
from playwright.async_api import expect

from sendpy.devstack.smtp_sink import SmtpSink
from tests.helpers import make_sender
from tests.test_a11y import serious_violations
from tests.test_web_e2e import shot
from tests.test_web_imap import RussianPage, ru, sign_up  # noqa: F401  (ru is a fixture)
from tests.test_web_walk_fixes import draft


async def sending(db: asyncpg.Pool, campaign_id: str, statuses: list[str], started: dt.datetime,
                  status: str = "sending") -> None:
    """The campaign under way with recipients in these states, as workers leave them."""
    async with db.acquire() as conn:
        await conn.execute("UPDATE campaigns SET status = $4, started_at = $2, recipient_count = $3,"
                           " recipients_loaded = true WHERE id = $1", uuid.UUID(campaign_id), started, len(statuses),
                           status)
        await conn.executemany(
            "INSERT INTO recipients (campaign_id, position, email, status, attempts) VALUES ($1, $2, $3, $4, 1)",
            [(uuid.UUID(campaign_id), n, f"r{n}@example.com", s) for n, s in enumerate(statuses, start=1)])


def addresses(n: int) -> bytes:
    return b"email\n" + b"".join(f"r{i}@example.com\n".encode() for i in range(1, n + 1))


async def test_recipients_have_a_status_header_and_show_more_moves_focus_to_the_new_rows(
    ru: RussianPage, db: asyncpg.Pool, api: httpx.AsyncClient, clean_sink: SmtpSink  # noqa: F811
) -> None:
    page = ru.page
    auth = await sign_up(page, db)
    sender = await make_sender(api, auth, clean_sink)
    campaign_id = await draft(api, auth, sender, addresses(150))
    await sending(db, campaign_id, ["sent"] * 150, dt.datetime.now(dt.UTC))
    await page.goto(f"/#/campaign/{campaign_id}")
    headers = page.locator("table thead th")
    await expect(headers).to_have_text(["#", "Электронная почта", "Статус", "Ответ сервера", "Попытки"])
    more = page.get_by_role("button", name="Показать ещё 100")
    await more.press("Enter")
    first_new = page.locator("#recipients tr").nth(100)
    await expect(first_new).to_contain_text("r101@example.com")
    await expect(first_new).to_be_focused()
    assert await serious_violations(page, "campaign page, more rows") == []


async def test_cancelling_asks_in_the_pages_dialog_and_says_what_was_sent(
    ru: RussianPage, db: asyncpg.Pool, api: httpx.AsyncClient, clean_sink: SmtpSink  # noqa: F811
) -> None:
    page = ru.page
    auth = await sign_up(page, db)
    sender = await make_sender(api, auth, clean_sink)
    campaign_id = await draft(api, auth, sender, addresses(5))
    # Paused: the workers of other tests in this run leave it alone.
    await sending(db, campaign_id, ["sent", "pending", "pending", "pending", "pending"], dt.datetime.now(dt.UTC),
                  "paused")
    page.once("dialog", lambda dialog: dialog.dismiss())  # the browser's own confirm() would land here
    await page.goto(f"/#/campaign/{campaign_id}")
    cancel = page.get_by_role("button", name="Отменить рассылку")
    await cancel.press("Enter")
    asked = page.get_by_role("dialog", name="Отменить рассылку?")
    await expect(asked).to_contain_text("Ещё не отправленные получатели (4) будут пропущены")
    await expect(asked.get_by_role("button", name="Нет, продолжить")).to_be_focused()  # the safe answer first
    assert await serious_violations(page, "cancel dialog") == []
    await page.keyboard.press("Escape")
    await expect(cancel).to_be_focused()
    await expect(page.locator("#status")).to_have_text("приостановлена")
    await cancel.press("Enter")
    await asked.get_by_role("button", name="Да, отменить").press("Enter")
    await expect(page.locator("#status")).to_have_text("отменена")
    await expect(page.locator("#state-line")).to_be_focused()
    await expect(page.locator("#reason")).to_have_text(
        "Отправлено 1 из 5; остальные 4 не отправлены — рассылка отменена.")
    await expect(page.locator("#percent")).to_have_text("20\u00a0%")
    await shot(page, "walk-s4-campaign-cancelled")


async def behind(api: httpx.AsyncClient, auth: dict[str, str], db: asyncpg.Pool, sender: dict[str, Any]) -> str:
    """A campaign of the sender under way, started an hour ago, with 6 emails to go at 2 a day."""
    first = await draft(api, auth, sender, addresses(6), name="Осенняя")
    await sending(db, first, ["pending"] * 6, dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
    return first


async def test_a_campaign_behind_another_waits_its_turn_and_says_until_when_in_one_sentence(
    ru: RussianPage, db: asyncpg.Pool, api: httpx.AsyncClient, clean_sink: SmtpSink  # noqa: F811
) -> None:
    page = ru.page
    auth = await sign_up(page, db)
    sender = await make_sender(api, auth, clean_sink, per_day=2)
    await behind(api, auth, db, sender)
    second = await draft(api, auth, sender, addresses(3), name="Зимняя")
    await sending(db, second, ["pending"] * 3, dt.datetime.now(dt.UTC))
    await page.goto(f"/#/campaign/{second}")
    await expect(page.locator("#status")).to_have_text("ждёт очереди")
    reason = page.locator("#reason")
    await expect(reason).to_contain_text("сначала уходит рассылка «Осенняя». Первые письма около")
    assert ".." not in await reason.text_content()


async def test_a_scheduled_campaign_says_the_sender_is_busy_and_shows_the_reviews_plan(
    ru: RussianPage, db: asyncpg.Pool, api: httpx.AsyncClient, clean_sink: SmtpSink  # noqa: F811
) -> None:
    page = ru.page
    auth = await sign_up(page, db)
    sender = await make_sender(api, auth, clean_sink, per_day=2)
    await behind(api, auth, db, sender)
    later = await draft(api, auth, sender, addresses(3), name="Зимняя")
    at = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)).isoformat()
    assert (await api.post(f"/v1/campaigns/{later}/schedule", headers=auth, json={"at": at})).status_code == 200
    await page.goto(f"/#/campaign/{later}")
    reason = page.locator("#reason")
    await expect(reason).to_contain_text("Через этого же отправителя сначала уходит рассылка «Осенняя».")
    await expect(reason).to_contain_text("Отправка займёт: примерно")
    assert ".." not in await reason.text_content()
    await shot(page, "walk-s4-campaign-scheduled-behind")


async def test_the_campaigns_list_shows_sent_of_total_the_wait_and_the_scheduled_time(
    ru: RussianPage, db: asyncpg.Pool, api: httpx.AsyncClient, clean_sink: SmtpSink  # noqa: F811
) -> None:
    page = ru.page
    auth = await sign_up(page, db)
    sender = await make_sender(api, auth, clean_sink, per_day=2)
    first = await draft(api, auth, sender, addresses(20), name="Осенняя")
    await sending(db, first, ["sent"] * 1 + ["pending"] * 19, dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
    second = await draft(api, auth, sender, addresses(3), name="Зимняя")
    await sending(db, second, ["pending"] * 3, dt.datetime.now(dt.UTC))
    later = await draft(api, auth, sender, addresses(3), name="Весенняя")
    day = dt.date.today() + dt.timedelta(days=10)
    at = dt.datetime(day.year, day.month, day.day, 6, 30, tzinfo=dt.UTC)  # 09:30 in Moscow, the browser's zone
    assert (await api.post(f"/v1/campaigns/{later}/schedule", headers=auth,
                           json={"at": at.isoformat()})).status_code == 200
    await page.reload()  # sign-up left the list open, empty
    row = page.get_by_role("row")
    await expect(row.filter(has_text="Осенняя")).to_contain_text("отправляется отправлено 1 из 20 (5\u00a0%)")
    await expect(row.filter(has_text="Зимняя")).to_contain_text("ждёт очереди отправлено 0 из 3 (0\u00a0%)")
    months = ("января", "февраля", "марта", "апреля", "мая", "июня", "июля", "августа", "сентября", "октября",
              "ноября", "декабря")
    await expect(row.filter(has_text="Весенняя")).to_contain_text(
        f"запланирована на {day.day} {months[day.month - 1]} {day.year}, 09:30")
    await shot(page, "walk-s4-campaigns-list")


async def test_the_editor_and_the_schedule_speak_for_themselves_and_scheduling_asks_first(
    ru: RussianPage, db: asyncpg.Pool, api: httpx.AsyncClient, clean_sink: SmtpSink  # noqa: F811
) -> None:
    page = ru.page
    auth = await sign_up(page, db)
    sender = await make_sender(api, auth, clean_sink)
    campaign_id = await draft(api, auth, sender, addresses(2))
    await page.goto(f"/#/wizard/{campaign_id}/3")
    await page.get_by_role("button", name="Ссылка").press("Enter")
    link = page.get_by_role("dialog", name="Ссылка")
    url = link.get_by_label("Адрес")
    await url.fill("example.ru")  # no https://: the app's own words, not the browser's bubble
    await url.press("Enter")
    await expect(link.locator(".error")).to_have_text("Введите полный адрес, начиная с https:// (или mailto:).")
    await expect(url).to_be_focused()
    await expect(url).to_have_accessible_description("Введите полный адрес, начиная с https:// (или mailto:).")
    await page.keyboard.press("Escape")

    await page.goto(f"/#/wizard/{campaign_id}/4")
    schedule = page.get_by_role("button", name="Запланировать")
    await schedule.press("Enter")  # no date at all
    later = page.get_by_label("Или отправить позже, в")
    await expect(page.locator("#start-error")).to_contain_text("Укажите дату и время полностью")
    await expect(later).to_be_focused()
    moscow = dt.timezone(dt.timedelta(hours=3))
    when = (dt.datetime.now(moscow) + dt.timedelta(days=3)).replace(hour=9, minute=30, second=0, microsecond=0)
    await later.fill(when.strftime("%Y-%m-%dT%H:%M"))
    await schedule.press("Enter")
    asked = page.get_by_role("dialog", name="Запланировать рассылку?")
    await expect(asked).to_contain_text("Писем: 2; отправка начнётся")
    await expect(asked).to_contain_text(", 09:30 (Москва, стандартное время (UTC+3)).")
    await expect(asked.get_by_role("button", name="Отмена")).to_be_focused()
    await page.keyboard.press("Escape")
    await expect(schedule).to_be_focused()
    assert (await api.get(f"/v1/campaigns/{campaign_id}", headers=auth)).json()["status"] == "draft"
    await schedule.press("Enter")
    await asked.get_by_role("button", name="Запланировать").press("Enter")
    await expect(page.locator("#status")).to_have_text("запланирована")
