"""Keyboard details from the Russian keyboard-only walk: the language menu does not switch on an
arrow key, and after following a menu link focus is at the new page's heading."""

from __future__ import annotations

import datetime as dt
import uuid

import asyncpg
import httpx
from playwright.async_api import Page, expect

from sendpy.devstack.smtp_sink import SmtpSink
from tests.helpers import draft_campaign, make_sender
from tests.test_web_imap import RussianPage, ru, sign_up  # noqa: F401  (ru is a fixture)


async def test_the_language_menu_waits_for_enter_and_links_land_on_the_heading(
    ru: RussianPage, db: asyncpg.Pool  # noqa: F811
) -> None:
    page = ru.page
    await sign_up(page, db)
    language = page.get_by_label("Язык")
    await language.focus()
    await page.keyboard.press("ArrowUp")  # English is above Russian: chosen, not yet applied
    await expect(page.get_by_role("heading", name="Рассылки", exact=True)).to_be_visible()
    await expect(language).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name="Campaigns", exact=True)).to_be_visible()
    await expect(page.get_by_label("Language")).to_be_focused()
    await page.get_by_label("Language").select_option("ru")  # with the mouse it applies at once
    await expect(page.get_by_role("heading", name="Рассылки", exact=True)).to_be_visible()

    await page.get_by_role("link", name="Отправители").focus()
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name="Отправители", exact=True)).to_be_focused()


async def test_an_unknown_campaign_says_so_and_send_asks_with_cancel_first(
    ru: RussianPage, db: asyncpg.Pool  # noqa: F811
) -> None:
    page = ru.page
    await sign_up(page, db)
    await page.goto("/#/campaign/00000000-0000-4000-8000-000000000000")
    await expect(page.get_by_role("heading", name="Такой рассылки нет (удалена или ссылка неверна)")).to_be_visible()
    await expect(page.get_by_role("button", name="Приостановить")).to_have_count(0)


async def type_and_press_enter(page: Page, email: str, password: str) -> None:
    await page.get_by_label("Электронная почта").fill(email)
    await page.get_by_label("Пароль").fill(password)
    await page.get_by_label("Пароль").press("Enter")


async def sign_out(page: Page) -> None:
    await expect(page.get_by_role("heading", name="Рассылки", exact=True)).to_be_visible()
    await page.get_by_role("button", name="Выйти").click()
    await page.goto("/")


async def test_enter_in_the_password_does_what_the_form_says(ru: RussianPage) -> None:  # noqa: F811
    # The form had two submit buttons; Enter in «Пароль» pressed the first — sign-up — even for
    # someone logging in.
    page = ru.page
    email = f"enter-{uuid.uuid4().hex[:8]}@example.com"
    await page.goto("/")
    await expect(page.get_by_role("heading", name="Зарегистрироваться")).to_be_visible()
    await type_and_press_enter(page, email, "a good long password")
    await sign_out(page)
    # This browser has signed in before: the form opens on «Войти», and Enter logs in.
    await expect(page.get_by_role("heading", name="Войти")).to_be_visible()
    await type_and_press_enter(page, email, "a good long password")
    await sign_out(page)
    await page.get_by_role("button", name="Зарегистрироваться").press("Enter")  # the switch, by keyboard
    await expect(page.get_by_role("heading", name="Зарегистрироваться")).to_be_focused()
    await type_and_press_enter(page, email, "another long password")
    await expect(page.locator("#auth-error")).to_contain_text("уже")  # taken: it tried to register


async def test_after_cancelling_focus_is_on_the_new_state_not_the_top(
    ru: RussianPage, db: asyncpg.Pool, api: httpx.AsyncClient, clean_sink: SmtpSink  # noqa: F811
) -> None:
    page = ru.page
    auth = await sign_up(page, db)
    sender = await make_sender(api, auth, clean_sink)
    campaign_id = await draft_campaign(api, auth, sender["id"], ["ann@example.com"])
    at = (dt.datetime.now(dt.UTC) + dt.timedelta(days=2)).isoformat()
    assert (await api.post(f"/v1/campaigns/{campaign_id}/schedule", headers=auth, json={"at": at})).status_code == 200
    await page.goto(f"/#/campaign/{campaign_id}")
    await page.get_by_role("button", name="Отменить рассылку").press("Enter")
    await page.get_by_role("button", name="Да, отменить").press("Enter")  # the page's own dialog
    state = page.locator("#state-line")
    await expect(state).to_contain_text("отменена")
    await expect(state).to_be_focused()  # the button it pressed is gone: focus was on <body>
