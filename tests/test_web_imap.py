"""The senders page's bounce reading (IMAP) in a real browser, in Russian and by keyboard only,
against the real stack (API + web in uvicorn, Postgres) and the fixture Dovecot: open the form,
enter the company server, save and check it live, a wrong password explained in Russian, the
status, and the warning when a sender's 30-day bounce rate reaches 5 %. Any Content-Security-Policy
violation the browser reports fails the test.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import pytest
from playwright.async_api import Browser, ConsoleMessage, Locator, Page, expect

from sendpy.devstack.imap import DovecotServer
from sendpy.devstack.smtp_sink import SmtpSink
from tests.conftest import new_api_key
from tests.helpers import make_sender
from tests.imap import ImapUser
from tests.test_csp_e2e import REPORT_VIOLATIONS, VIOLATION
from tests.test_web_e2e import shot

LIVE = 20_000  # ms: a live IMAP check answers in well under a second here; this is the ceiling
OK = "Проверка пройдена: сервер принял логин и пароль, папка «Входящие» открывается."
WRONG_LOGIN = "IMAP-сервер не принял логин или пароль"


@dataclass
class RussianPage:
    page: Page
    problems: list[str] = field(default_factory=list)

    def on_console(self, message: ConsoleMessage) -> None:
        if VIOLATION in message.text:
            self.problems.append(message.text)


@pytest.fixture
async def ru(browser: Browser, live_server: str) -> AsyncIterator[RussianPage]:
    context = await browser.new_context(base_url=live_server, locale="ru-RU", timezone_id="Europe/Moscow",
                                        viewport={"width": 1200, "height": 900})
    await context.add_init_script(REPORT_VIOLATIONS)
    page = await context.new_page()
    watched = RussianPage(page)
    page.on("console", watched.on_console)
    page.on("pageerror", lambda error: watched.problems.append(str(error)))
    yield watched
    await context.close()
    assert not watched.problems, watched.problems


async def sign_up(page: Page, db: asyncpg.Pool) -> dict[str, str]:
    """A new account, signed up through the Russian page; an API key of the same user for the setup."""
    email = f"imap-web-{uuid.uuid4().hex[:8]}@example.com"
    await page.goto("/")
    await page.get_by_label("Электронная почта").fill(email)
    await page.get_by_label("Пароль").fill("a good long password")
    await page.get_by_role("button", name="Зарегистрироваться").click()
    await expect(page.get_by_role("heading", name="Рассылки", exact=True)).to_be_visible()
    return {"Authorization": f"Bearer {await new_api_key(db, email)}"}


async def open_by_keyboard(page: Page, from_email: str) -> Locator:
    """Tab from the page's heading to the sender's «Возвраты (IMAP)» button, Enter: the form, focused."""
    await page.goto("/#/senders")
    await expect(page.get_by_role("heading", name="Отправители", exact=True)).to_be_visible()
    trigger = page.get_by_role("button", name=f"Возвраты (IMAP): {from_email}")
    await page.locator("#app").focus()
    for _ in range(10):
        await page.keyboard.press("Tab")
        if await trigger.evaluate("button => button === document.activeElement"):
            break
    await expect(trigger).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name=f"Возвраты (IMAP): {from_email}", exact=True)).to_be_visible()
    await expect(page.get_by_label("Почтовый сервис")).to_be_focused()
    await expect(trigger).to_have_attribute("aria-expanded", "true")
    return trigger


async def press_for(page: Page, key: str, method: str, path_end: str) -> int:
    """Press `key` and return the status of the API call it must make."""
    async with page.expect_response(lambda r: r.request.method == method and r.url.endswith(path_end),
                                    timeout=LIVE) as answered:
        await page.keyboard.press(key)
    return (await answered.value).status


async def test_the_imap_form_by_keyboard_saves_checks_and_explains_in_russian(
    ru: RussianPage, db: asyncpg.Pool, api: httpx.AsyncClient, clean_sink: SmtpSink, dovecot: DovecotServer,
    imap_user: ImapUser,
) -> None:
    page = ru.page
    auth = await sign_up(page, db)
    # The mailbox's address is its IMAP login and the SMTP password is the mailbox's, as at most
    # providers: the form's defaults (the SMTP login and password) are then right.
    sender = await make_sender(api, auth, clean_sink, from_email=imap_user.name, password=imap_user.password)
    imap = f"/v1/senders/{sender['id']}/imap"

    trigger = await open_by_keyboard(page, imap_user.name)
    form = page.locator("#imap-panel")
    result = form.locator("#imap-result")
    await expect(page.get_by_label("Почтовый сервис")).to_have_value("custom")  # example.org: a company server
    await expect(page.locator("#imap-reading")).to_have_text("не настроено")
    await expect(page.get_by_label("Тот же пароль, что и для SMTP")).to_be_checked()
    await expect(page.get_by_label("Пароль IMAP")).to_be_hidden()

    # A server name with a port in it: the API refuses it; the reason sits next to the form, focused.
    await page.keyboard.press("Tab")
    host = page.get_by_label("IMAP-сервер")
    await expect(host).to_be_focused()
    await page.keyboard.type("127.0.0.1:993")
    assert await press_for(page, "Enter", "PUT", imap) == 400
    problem = page.locator("#imap-error")
    await expect(problem).to_contain_text("не похоже на имя сервера")
    await expect(problem).to_be_focused()
    await expect(host).to_have_attribute("aria-invalid", "true")

    # The fixture Dovecot (the test stack allows private hosts). «Проверить» on settings not yet
    # stored saves them, and the API checks them live.
    await host.focus()
    await page.keyboard.press("Control+A")
    await page.keyboard.type("127.0.0.1")
    await page.keyboard.press("Tab")
    await expect(page.get_by_label("Порт (SSL/TLS)")).to_be_focused()
    await page.keyboard.press("Control+A")
    await page.keyboard.type(str(dovecot.port))
    for label in ("Логин", "Тот же пароль, что и для SMTP", "Переносить распознанные возвраты в папку «Возвраты Sendpy (bounces)»",
                  "Сохранить", "Проверить"):
        await page.keyboard.press("Tab")
        await expect(form.get_by_label(label, exact=True).or_(form.get_by_role("button", name=label))).to_be_focused()
    assert await press_for(page, "Enter", "PUT", imap) == 200
    await expect(result).to_have_text(f"Настройки сохранены. {OK}")
    await expect(host).not_to_have_attribute("aria-invalid", "true")
    await expect(page.locator("#imap-verified")).to_have_text("пройдена")

    # Stored now: «Проверить» checks them live again (the verify call).
    await form.get_by_role("button", name="Проверить").focus()
    assert await press_for(page, "Enter", "POST", f"{imap}/verify") == 200
    await expect(result).to_have_text(OK)
    await shot(page, "imap-verified-ru")

    # A password of its own, a wrong one: saved, and the server's refusal explained in Russian.
    await page.keyboard.press("Shift+Tab")  # Сохранить
    await page.keyboard.press("Shift+Tab")  # Переносить …
    await page.keyboard.press("Shift+Tab")  # Тот же пароль …
    await expect(page.get_by_label("Тот же пароль, что и для SMTP")).to_be_focused()
    await page.keyboard.press("Space")
    await page.keyboard.press("Tab")
    password = page.get_by_label("Пароль IMAP")
    await expect(password).to_be_focused()
    await page.keyboard.type("not it")
    assert await press_for(page, "Enter", "PUT", imap) == 422
    await expect(problem).to_contain_text(f"Настройки сохранены, но проверка не пройдена: {WRONG_LOGIN}")
    await expect(problem).to_contain_text("включить в настройках ящика")
    await expect(problem).to_be_focused()
    await expect(page.locator("#imap-verified")).to_have_text("не пройдена")
    await shot(page, "imap-wrong-password-ru")

    # «Проверить» on what is stored: the same problem, from the verify call.
    await form.get_by_role("button", name="Проверить").focus()
    assert await press_for(page, "Enter", "POST", f"{imap}/verify") == 422
    await expect(problem).to_contain_text(WRONG_LOGIN)
    await expect(problem).not_to_contain_text("Настройки сохранены")
    await expect(problem).to_be_focused()
    await expect(page.locator("#imap-problem")).to_contain_text(WRONG_LOGIN)
    await expect(page.locator("#imap-problem")).not_to_contain_text("did not accept")  # the Russian half only

    # The right password, Enter: saved and checked; the status says so.
    await password.focus()
    await page.keyboard.press("Control+A")
    await page.keyboard.type(imap_user.password)
    assert await press_for(page, "Enter", "PUT", imap) == 200
    await expect(result).to_have_text(f"Настройки сохранены. {OK}")
    await expect(page.locator("#imap-reading")).to_have_text(f"включено, 127.0.0.1:{dovecot.port}")
    await expect(page.locator("#imap-verified")).to_have_text("пройдена")
    await expect(page.locator("#imap-checked")).to_have_text("ещё не было")
    await expect(page.locator("#imap-problem")).to_have_count(0)
    await expect(page.locator("#imap-sent")).to_have_text("0")
    await expect(page.locator("#imap-bounced")).to_have_text("0")
    await expect(page.locator("#imap-rate")).to_have_text(re.compile(r"^0\s?%$"))
    await expect(page.locator(".callout")).to_have_count(0)

    # Escape closes the form and gives focus back to its button.
    await page.keyboard.press("Escape")
    await expect(page.locator("#imap-panel")).to_be_hidden()
    await expect(trigger).to_be_focused()
    await expect(trigger).to_have_attribute("aria-expanded", "false")

    stored = (await api.get(imap, headers=auth)).json()
    assert (stored["host"], stored["port"], stored["username"], stored["verified"]) == (
        "127.0.0.1", dovecot.port, None, True), stored

    # Opened again, the form shows what is stored; «Закрыть» by keyboard also returns focus.
    await page.keyboard.press("Enter")
    await expect(page.get_by_label("Почтовый сервис")).to_be_focused()
    await expect(host).to_have_value("127.0.0.1")
    await expect(page.get_by_label("Порт (SSL/TLS)")).to_have_value(str(dovecot.port))
    await expect(page.locator("#imap-verified")).to_have_text("пройдена")
    await form.get_by_role("button", name="Закрыть").focus()
    await page.keyboard.press("Enter")
    await expect(page.locator("#imap-panel")).to_be_hidden()
    await expect(trigger).to_be_focused()

    # Another server: a saved password goes to no server but its own, so the form asks for it
    # again — for the IMAP password before sending anything, for the SMTP one when the API says so.
    await page.keyboard.press("Enter")
    await host.focus()
    await page.keyboard.press("Control+A")
    await page.keyboard.type("localhost")
    await page.keyboard.press("Enter")
    await expect(problem).to_contain_text("Сервер изменён: введите пароль IMAP ещё раз")
    await expect(password).to_have_attribute("aria-invalid", "true")
    same = page.get_by_label("Тот же пароль, что и для SMTP")
    await same.focus()
    await page.keyboard.press("Space")  # the SMTP password, sent to a server other than the SMTP one
    await host.focus()
    assert await press_for(page, "Enter", "PUT", imap) == 400
    await expect(problem).to_contain_text(f"IMAP-сервер изменён на localhost:{dovecot.port}: введите пароль IMAP")
    await expect(same).not_to_be_checked()
    await expect(password).to_be_visible()
    await expect(password).to_have_attribute("aria-invalid", "true")
    stored = (await api.get(imap, headers=auth)).json()
    assert (stored["host"], stored["verified"]) == ("127.0.0.1", True), stored  # nothing stored meanwhile
    await password.focus()
    await page.keyboard.type(imap_user.password)
    assert await press_for(page, "Enter", "PUT", imap) == 200
    await expect(result).to_have_text(f"Настройки сохранены. {OK}")
    await expect(page.locator("#imap-reading")).to_have_text(f"включено, localhost:{dovecot.port}")


async def finished_campaign(db: asyncpg.Pool, sender: dict[str, Any], sent: int, bounced: int) -> None:
    """A campaign of this sender's that went out today, `bounced` of its recipients bounced."""
    campaign_id = uuid.uuid4()
    async with db.acquire() as conn:
        user_id = await conn.fetchval("SELECT user_id FROM senders WHERE id = $1", sender["id"])
        await conn.execute(
            "INSERT INTO campaigns (id, user_id, sender_id, subject, html_body, status, recipient_count)"
            " VALUES ($1, $2, $3, 'Новости', '<p>Привет</p>', 'finished', $4)",
            campaign_id, user_id, sender["id"], sent + bounced)
        await conn.executemany(
            "INSERT INTO recipients (campaign_id, position, email, status, attempts) VALUES ($1, $2, $3, $4, 1)",
            [(campaign_id, n, f"r{n}@example.com", "bounced" if n <= bounced else "sent")
             for n in range(1, sent + bounced + 1)])


async def test_a_bounce_rate_of_five_percent_or_more_is_a_plain_warning(
    ru: RussianPage, db: asyncpg.Pool, api: httpx.AsyncClient, clean_sink: SmtpSink,
) -> None:
    page = ru.page
    auth = await sign_up(page, db)
    risky = await make_sender(api, auth, clean_sink)
    fine = await make_sender(api, auth, clean_sink)
    await finished_campaign(db, risky, sent=56, bounced=4)  # 4 of 60: 6.7 %
    await finished_campaign(db, fine, sent=58, bounced=2)  # 2 of 60: 3.3 %

    trigger = await open_by_keyboard(page, risky["from_email"])
    warning = page.locator(".callout")
    await expect(warning.get_by_role("heading", name="Слишком много возвратов")).to_be_visible()
    await expect(warning).to_contain_text("вернулось 6,7")
    await expect(warning).to_contain_text("блокируют ящики")
    await expect(warning).to_contain_text("почистите список контактов")
    await expect(warning.get_by_role("link", name="Открыть список исключений")).to_be_visible()
    await expect(page.locator("#imap-sent")).to_have_text("60")
    await expect(page.locator("#imap-bounced")).to_have_text("4")
    await expect(page.locator("#imap-rate")).to_have_text(re.compile(r"^6,7\s?%$"))
    await shot(page, "imap-bounce-warning-ru")
    await page.set_viewport_size({"width": 375, "height": 740})  # a phone: the page does not scroll sideways
    assert await page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
    await shot(page, "imap-bounce-warning-ru-phone")
    await page.keyboard.press("Escape")
    await expect(trigger).to_be_focused()

    await open_by_keyboard(page, fine["from_email"])
    await expect(page.locator("#imap-rate")).to_have_text(re.compile(r"^3,3\s?%$"))
    await expect(page.locator(".callout")).to_have_count(0)
