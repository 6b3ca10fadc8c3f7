"""What the fourth Russian keyboard-only walk found at 375 px and 1366×768 (issue 12): the language
switched from the keyboard keeps focus on its control (the phone menu stays open) and a Tab that
chose it moves on; the message step fits a phone; an empty sign-up puts focus on the first field
with its reason.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from sendpy.devstack.smtp_sink import SmtpSink
from tests.helpers import make_sender
from tests.test_a11y import serious_violations
from tests.test_web_e2e import shot
from tests.test_web_imap import sign_up
from tests.test_web_walk_fixes import draft


@pytest.fixture
async def phone(browser: Browser, live_server: str) -> AsyncIterator[Page]:
    context = await browser.new_context(base_url=live_server, locale="ru-RU", timezone_id="Europe/Moscow",
                                        viewport={"width": 375, "height": 740})
    page = await context.new_page()
    yield page
    await context.close()


@pytest.fixture
async def laptop(browser: Browser, live_server: str) -> AsyncIterator[Page]:
    context = await browser.new_context(base_url=live_server, locale="ru-RU", timezone_id="Europe/Moscow",
                                        viewport={"width": 1366, "height": 768})
    page = await context.new_page()
    yield page
    await context.close()


async def test_enter_in_the_open_phone_menu_switches_the_language_and_keeps_the_menu_and_focus(
    phone: Page, db: asyncpg.Pool
) -> None:
    await sign_up(phone, db)
    toggle = phone.get_by_role("button", name="Меню")
    await toggle.press("Enter")
    language = phone.locator("#lang")
    await language.focus()
    await phone.keyboard.press("ArrowUp")  # English
    await phone.keyboard.press("Enter")
    await expect(phone.get_by_role("heading", name="Campaigns", exact=True)).to_be_visible()
    await expect(phone.get_by_role("button", name="Menu")).to_have_attribute("aria-expanded", "true")
    await expect(language).to_be_visible()
    await expect(language).to_be_focused()
    await shot(phone, "walk-s4-375-language-switched")


async def test_a_tab_that_chose_the_language_moves_on(laptop: Page, db: asyncpg.Pool) -> None:
    await sign_up(laptop, db)
    language = laptop.locator("#lang")
    await language.focus()
    await laptop.keyboard.press("ArrowUp")  # English, chosen when the Tab leaves the menu
    await laptop.keyboard.press("Tab")
    await expect(laptop.get_by_role("heading", name="Campaigns", exact=True)).to_be_visible()
    await expect(language).not_to_be_focused()
    moved_on = "(el) => !!document.activeElement && document.activeElement !== document.body"\
               " && !!(el.compareDocumentPosition(document.activeElement) & Node.DOCUMENT_POSITION_FOLLOWING)"
    assert await language.evaluate(moved_on)
    await laptop.keyboard.press("Shift+Tab")
    await expect(language).to_be_focused()  # one Tab back is the language again: nothing skipped


async def test_the_message_step_fits_a_375_px_screen(
    phone: Page, db: asyncpg.Pool, api: httpx.AsyncClient, clean_sink: SmtpSink
) -> None:
    auth = await sign_up(phone, db)
    sender = await make_sender(api, auth, clean_sink)
    campaign_id = await draft(api, auth, sender, "email;Номер телефона родителя для связи по вопросам класса\n"
                              "ann@example.com;+7 916 000-00-00\n".encode())
    await phone.goto(f"/#/wizard/{campaign_id}/3")
    picker = phone.get_by_label("Вставить поле")
    await expect(picker).to_be_visible()
    widths = await phone.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], widths  # no sideways scroll
    box = await picker.bounding_box()
    assert box is not None and box["x"] + box["width"] <= 375


async def test_an_empty_sign_up_puts_focus_on_the_first_field_with_its_reason(laptop: Page) -> None:
    await laptop.goto("/")
    submit = laptop.get_by_role("button", name="Зарегистрироваться")
    await submit.press("Enter")
    email = laptop.get_by_label("Электронная почта")
    await expect(email).to_be_focused()
    await expect(email).to_have_attribute("aria-invalid", "true")
    await expect(email).to_have_accessible_description("Введите адрес электронной почты.")
    assert await serious_violations(laptop, "sign-up with its reasons") == []
    await email.fill("anna@example.com")
    await laptop.get_by_label("Пароль").fill("short")
    await submit.press("Enter")
    password = laptop.get_by_label("Пароль")
    await expect(password).to_be_focused()
    await expect(password).to_have_accessible_description("Пароль должен быть не короче 8 символов.")
    await expect(email).not_to_have_attribute("aria-invalid", "true")
    await expect(laptop.locator("#email-problem")).to_have_text("")
