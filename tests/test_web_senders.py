"""The senders page in Russian: a sender is edited in place and checked again (a wrong port is
explained, focused, and fixed in the same dialog), and deleted only after a confirmation."""

from __future__ import annotations

import re

import asyncpg
import httpx
from playwright.async_api import expect

from sendpy.devstack.smtp_sink import SmtpSink
from tests.helpers import make_sender
from tests.test_web_e2e import shot
from tests.test_web_imap import RussianPage, ru, sign_up  # noqa: F401  (ru is a fixture)


async def test_edit_in_place_and_delete_with_a_confirmation(
    ru: RussianPage, db: asyncpg.Pool, api: httpx.AsyncClient, clean_sink: SmtpSink  # noqa: F811
) -> None:
    page = ru.page
    auth = await sign_up(page, db)
    sender = await make_sender(api, auth, clean_sink)
    await page.goto("/#/senders")
    await page.get_by_role("button", name=f"Изменить: {sender['from_email']}").click()
    dialog = page.get_by_role("dialog", name=f"Изменить {sender['from_email']}")
    await expect(dialog.get_by_label("Ваш адрес электронной почты")).to_be_focused()
    await dialog.get_by_label("Порт").fill("1")  # nothing listens there
    await page.keyboard.press("Enter")
    # Another port is another server: the saved password is not sent there until typed again.
    password = dialog.get_by_label("Пароль (для Gmail, Яндекса, Mail.ru — пароль приложения)")
    await expect(password).to_be_focused()
    await expect(password).to_have_accessible_description(re.compile("введите пароль ещё раз"))
    await password.fill("secret-pass")
    await page.keyboard.press("Enter")
    problem = dialog.locator("#edit-result .error")
    await expect(problem).to_be_focused(timeout=30_000)
    await expect(problem).to_contain_text("127.0.0.1")
    await shot(page, "senders-edit-failed-ru")
    await dialog.get_by_label("Порт").fill(str(clean_sink.port))
    await dialog.get_by_role("button", name="Сохранить и проверить").click()
    await expect(page.locator("#result .notice")).to_contain_text("Проверено")
    # The final walk: after saving, focus was on <body> and the next Tab started from the top.
    await expect(page.get_by_role("button", name=f"Изменить: {sender['from_email']}")).to_be_focused()
    listed = (await api.get("/v1/senders", headers=auth)).json()["items"]
    assert len(listed) == 1 and listed[0]["port"] == clean_sink.port and listed[0]["verified"]

    await page.get_by_role("button", name=f"Удалить: {sender['from_email']}").click()
    confirm = page.get_by_role("dialog", name="Удалить отправителя?")
    await expect(confirm).to_contain_text("в истории отправленных рассылок он останется")
    await confirm.get_by_role("button", name="Отмена").click()
    await expect(page.get_by_role("button", name=f"Удалить: {sender['from_email']}")).to_be_focused()
    assert len((await api.get("/v1/senders", headers=auth)).json()["items"]) == 1
    await page.get_by_role("button", name=f"Удалить: {sender['from_email']}").click()
    await confirm.get_by_role("button", name="Удалить").click()
    await expect(page.get_by_text("Отправителей пока нет.")).to_be_visible()
    assert (await api.get("/v1/senders", headers=auth)).json()["items"] == []
