"""What the final Russian keyboard walk left of issue 12: forms answer in the page's own words next
to the field (the test address, the password change), revoking a key and removing a suppressed
address ask in the page's dialog (focus kept inside, Escape cancels, focus back on the button),
the link dialog gives focus back to the editor at the link (or at the caret, cancelled) and drops
its reason once retyped, a saved sender's password rule is said where the password is typed, and
limits above the provider's own are warned about but saved as typed.
"""

from __future__ import annotations

import re

import asyncpg
import httpx
from playwright.async_api import Dialog, Page, expect

from sendpy.devstack.smtp_sink import SmtpSink
from shared.smtp_presets import PRESETS
from tests.helpers import make_sender
from tests.test_a11y import serious_violations
from tests.test_web_imap import RussianPage, ru, sign_up  # noqa: F401  (ru is a fixture)
from tests.test_web_walk_fixes import draft


def no_native_dialogs(page: Page) -> list[str]:
    """The browser's own alert/confirm, had one opened (dismissed, so that the test goes on)."""
    opened: list[str] = []

    async def dismiss(dialog: Dialog) -> None:
        opened.append(dialog.message)
        await dialog.dismiss()

    page.on("dialog", dismiss)
    return opened


async def test_the_test_address_and_the_password_change_answer_next_to_the_field(
    ru: RussianPage, db: asyncpg.Pool, api: httpx.AsyncClient, clean_sink: SmtpSink  # noqa: F811
) -> None:
    page = ru.page
    auth = await sign_up(page, db)
    sender = await make_sender(api, auth, clean_sink)
    campaign_id = await draft(api, auth, sender, b"email\nann@example.com\n")
    await page.goto(f"/#/wizard/{campaign_id}/3")
    address = page.get_by_label("Адрес для теста")
    await address.press("Enter")  # empty: no English bubble, the page's reason, focus on the field
    problem = page.locator("#test-problem")
    await expect(problem).to_have_text("Введите адрес, на который отправить тест.")
    await expect(address).to_be_focused()
    await expect(address).to_have_attribute("aria-invalid", "true")
    await expect(address).to_have_accessible_description("Введите адрес, на который отправить тест.")
    assert await serious_violations(page, "test address with its reason") == []
    await page.keyboard.type("не адрес")
    await expect(problem).to_have_text("")  # typing again answers it
    await expect(address).not_to_have_attribute("aria-invalid", "true")
    await page.keyboard.press("Enter")
    await expect(problem).to_have_text("Это не адрес электронной почты: нужны имя, @ и домен.")
    await address.fill("me@example.org")
    await address.press("Enter")
    await expect(page.locator("#test-result .notice")).to_contain_text("Тест отправлен на me@example.org")

    await page.goto("/#/settings")
    await page.get_by_role("button", name="Сохранить").press("Enter")
    current, new = page.get_by_label("Текущий пароль"), page.get_by_label("Новый пароль")
    await expect(current).to_be_focused()
    await expect(current).to_have_accessible_description("Введите текущий пароль.")
    await expect(new).to_have_accessible_description("Введите новый пароль.")
    assert await serious_violations(page, "password change with its reasons") == []
    await page.keyboard.type("a good long password")
    await expect(current).not_to_have_attribute("aria-invalid", "true")
    await new.fill("short")
    await new.press("Enter")
    await expect(new).to_be_focused()
    await expect(new).to_have_accessible_description("Пароль должен быть не короче 8 символов.")
    await new.fill("an even longer password")
    await new.press("Enter")
    await expect(page.locator("#result .notice")).to_have_text("Пароль изменён.")


async def test_a_key_and_a_suppressed_address_go_only_after_the_pages_own_question(
    ru: RussianPage, db: asyncpg.Pool, api: httpx.AsyncClient  # noqa: F811
) -> None:
    page = ru.page
    native = no_native_dialogs(page)
    auth = await sign_up(page, db)
    made = await api.post("/v1/api-keys", headers=auth, json={"name": "скрипт отчётов"})
    assert made.status_code == 201, made.text
    prefix = made.json()["key"][:11]
    await page.goto("/#/keys")
    revoke = page.get_by_role("button", name="Отозвать ключ скрипт отчётов")
    await revoke.press("Enter")
    asked = page.get_by_role("dialog", name="Отозвать API-ключ?")
    await expect(asked).to_contain_text(f"Отозвать ключ «скрипт отчётов» ({prefix}…)?")
    cancel, confirm = asked.get_by_role("button", name="Отмена"), asked.get_by_role("button", name="Отозвать")
    await expect(cancel).to_be_focused()  # Enter alone revokes nothing
    assert await serious_violations(page, "revoke dialog") == []
    for key, then in [("Tab", confirm), ("Tab", cancel), ("Shift+Tab", confirm), ("Shift+Tab", cancel)]:
        await page.keyboard.press(key)
        await expect(then).to_be_focused()  # focus stays inside the question
    await page.keyboard.press("Escape")
    await expect(asked).to_be_hidden()
    await expect(revoke).to_be_focused()
    assert len((await api.get("/v1/api-keys", headers=auth)).json()["items"]) == 2  # the setup key and this one
    await revoke.press("Enter")
    await confirm.press("Enter")
    await expect(revoke).to_have_count(0)
    await expect(page.get_by_role("heading", name="API-ключи")).to_be_focused()

    added = await api.post("/v1/suppressions", headers=auth, json={"emails": ["ann@example.com"]})
    assert added.status_code == 201, added.text
    await page.goto("/#/suppressions")
    remove = page.get_by_role("button", name="Удалить ann@example.com")
    await remove.press("Enter")
    asked = page.get_by_role("dialog", name="Убрать адрес из списка исключений?")
    await expect(asked).to_contain_text("Убрать ann@example.com из списка?")
    await page.keyboard.press("Escape")
    await expect(remove).to_be_focused()
    await remove.press("Enter")
    await asked.get_by_role("button", name="Убрать из списка").press("Enter")
    await expect(page.locator("#result .notice")).to_have_text("ann@example.com убран из списка.")
    assert (await api.get("/v1/suppressions", headers=auth)).json()["items"] == []
    assert native == []


async def test_the_link_dialog_gives_focus_back_to_the_editor_and_drops_an_answered_reason(
    ru: RussianPage, db: asyncpg.Pool, api: httpx.AsyncClient, clean_sink: SmtpSink  # noqa: F811
) -> None:
    page = ru.page
    auth = await sign_up(page, db)
    sender = await make_sender(api, auth, clean_sink)
    campaign_id = await draft(api, auth, sender, b"email\nann@example.com\n", html_body="<p>Скоро</p>")
    await page.goto(f"/#/wizard/{campaign_id}/3")
    editor = page.locator("#editor")
    await editor.click()
    await page.keyboard.press("Control+End")
    await page.keyboard.type(" ")
    link_button = page.get_by_role("button", name="Ссылка")
    await link_button.press("Enter")
    dialog = page.get_by_role("dialog", name="Ссылка")
    await dialog.get_by_label("Текст ссылки").fill("распродажа")
    url = dialog.get_by_label("Адрес")
    await url.fill("shop.example.ru")
    await url.press("Enter")
    problem = dialog.locator("#link-error")
    await expect(problem).to_have_text("Введите полный адрес, начиная с https:// (или mailto:).")
    assert await serious_violations(page, "link dialog with its reason") == []
    await url.press("Home")
    await page.keyboard.type("h")  # retyping: the old reason goes
    await expect(problem).to_have_text("")
    await expect(url).not_to_have_attribute("aria-invalid", "true")
    await url.fill("https://shop.example.ru/sale")
    await url.press("Enter")
    await expect(dialog).to_be_hidden()
    await expect(editor).to_be_focused()  # not the toolbar's «Ссылка»
    await page.keyboard.type(" сегодня")  # goes on right after the link
    await expect(editor).to_contain_text("Скоро распродажа сегодня")
    await expect(editor.locator('a[href="https://shop.example.ru/sale"]')).to_have_text("распродажа")

    await page.keyboard.press("Control+Home")  # the caret at the start, then a dialog cancelled
    await link_button.press("Enter")
    await expect(dialog).to_be_visible()
    await expect(problem).to_have_text("")  # a new dialog, no reason from before
    await page.keyboard.press("Escape")
    await expect(editor).to_be_focused()
    await page.keyboard.type("Ура! ")
    await expect(editor).to_contain_text("Ура! Скоро распродажа сегодня")  # typed where the caret was
    await page.get_by_role("button", name="Картинка").press("Enter")
    await page.get_by_role("dialog", name="Картинка").get_by_role("button", name="Отмена").press("Enter")
    await expect(editor).to_be_focused()


async def test_a_saved_senders_password_rule_is_said_where_the_password_is_typed(
    ru: RussianPage, db: asyncpg.Pool, api: httpx.AsyncClient, clean_sink: SmtpSink  # noqa: F811
) -> None:
    page = ru.page
    auth = await sign_up(page, db)
    sender = await make_sender(api, auth, clean_sink)
    await page.goto("/#/senders")
    await page.get_by_role("button", name=f"Изменить: {sender['from_email']}").press("Enter")
    dialog = page.get_by_role("dialog", name=f"Изменить {sender['from_email']}")
    password = dialog.get_by_label("Пароль (для Gmail, Яндекса, Mail.ru — пароль приложения)")
    await expect(password).to_have_attribute("placeholder", "оставьте пустым, чтобы не менять")
    await expect(password).to_have_accessible_description(
        "Оставьте пустым — останется сохранённый пароль. Если смените сервер или порт, введите пароль заново:"
        " сохранённый пароль отправляется только на тот сервер, для которого его ввели.")
    port = dialog.get_by_label("Порт")
    await port.fill("1")  # another server: the same field now says the saved password does not go there
    await expect(password).to_have_attribute("placeholder", "")
    await expect(password).to_have_accessible_description(
        "Сервер изменён на 127.0.0.1:1: введите пароль ещё раз. Сохранённый пароль отправляется только на тот"
        " сервер, для которого его ввели.")
    await port.press("Enter")
    await expect(password).to_be_focused()
    await expect(dialog.locator("#edit-problem-password")).to_have_text("Введите пароль для 127.0.0.1:1.")
    assert await serious_violations(page, "sender dialog, password asked for") == []
    assert (await api.get(f"/v1/senders/{sender['id']}", headers=auth)).json()["port"] == clean_sink.port
    await port.fill(str(clean_sink.port))  # the saved server again: nothing to type, the reason goes
    await expect(dialog.locator("#edit-problem-password")).to_have_text("")
    await expect(password).to_have_attribute("placeholder", "оставьте пустым, чтобы не менять")
    await dialog.get_by_label("Ваше имя").fill("Новости школы")
    await dialog.get_by_label("Ваше имя").press("Enter")
    await expect(page.locator("#result .notice")).to_contain_text("Проверено")  # kept, as the hint said
    assert (await api.get(f"/v1/senders/{sender['id']}", headers=auth)).json()["from_name"] == "Новости школы"

    draft_id = (await api.post("/v1/campaigns", headers=auth, json={"sender_id": sender["id"]})).json()["id"]
    await page.goto(f"/#/wizard/{draft_id}/2")  # the wizard's form says the same
    # (the senders page had a button of the same name: the step is drawn first)
    await expect(page.get_by_role("heading", name="Отправитель", exact=True)).to_be_visible()
    await page.get_by_role("button", name=f"Изменить: {sender['from_email']}").press("Enter")
    form = page.locator("#new-sender")
    await expect(form.get_by_label("Ваш адрес электронной почты")).to_be_focused()  # the form opened on it
    password = form.get_by_label("Пароль (для Gmail, Яндекса, Mail.ru — пароль приложения)")
    await expect(password).to_have_accessible_description(re.compile("^Оставьте пустым — останется сохранённый пароль\\."))
    await form.get_by_label("SMTP-сервер").fill("smtp.example.org")
    await form.get_by_role("button", name="Проверить").press("Enter")
    await expect(password).to_be_focused()
    await expect(form.locator("#sender-problem-password")).to_have_text(
        f"Введите пароль для smtp.example.org:{clean_sink.port}.")
    assert (await api.get(f"/v1/senders/{sender['id']}", headers=auth)).json()["host"] == "127.0.0.1"


async def test_limits_above_the_providers_are_warned_about_and_saved_as_typed(
    ru: RussianPage, db: asyncpg.Pool, api: httpx.AsyncClient, clean_sink: SmtpSink  # noqa: F811
) -> None:
    # The documented ceilings (shared/smtp_presets.py names the sources), as the API serves them.
    served = {p["key"]: (p["per_minute"], p["per_day"]) for p in (await api.get("/v1/presets")).json()["items"]}
    assert {k: served[k][1] for k in ("gmail", "google_workspace", "yandex", "mailru", "outlook", "office365")} == {
        "gmail": 500, "google_workspace": 2000, "yandex": 500, "mailru": 500, "outlook": 300, "office365": 10000}
    assert served["gmail"][0] == 20 and all(PRESETS[k].per_minute == v[0] for k, v in served.items())
    page = ru.page
    auth = await sign_up(page, db)
    gmail = await make_sender(api, auth, clean_sink, preset="gmail")  # Gmail's limits, the local sink's server
    yandex = await make_sender(api, auth, clean_sink, preset="yandex")
    assert (gmail["per_minute"], gmail["per_day"]) == (20, 500)
    await page.goto("/#/senders")
    await page.get_by_role("button", name=f"Изменить: {gmail['from_email']}").press("Enter")
    dialog = page.get_by_role("dialog", name=f"Изменить {gmail['from_email']}")
    warning = dialog.locator("#edit-limits-warning")
    per_day = dialog.get_by_label("в сутки")
    await expect(per_day).to_have_value("500")
    await expect(warning).to_have_text("")
    await per_day.fill("2000")
    expected = ("Gmail разрешает не больше 500 писем в сутки и 20 в минуту. Если отправлять больше (или без"
                " ограничения), Gmail заблокирует отправку с этого ящика — обычно на сутки, и остаток рассылки"
                " будет ждать. Если ваш тариф позволяет больше, оставьте свои числа: они сохранятся как введены.")
    await expect(warning).to_have_text(expected)
    await expect(per_day).to_have_accessible_description(expected)
    assert await serious_violations(page, "sender dialog, limits warned about") == []
    await per_day.press("Enter")  # a warning, not a refusal
    await expect(page.locator("#result .notice")).to_contain_text("Проверено")
    saved = (await api.get(f"/v1/senders/{gmail['id']}", headers=auth)).json()
    assert (saved["per_minute"], saved["per_day"]) == (20, 2000)  # as typed, not lowered to Gmail's
    await page.get_by_role("button", name=f"Изменить: {gmail['from_email']}").press("Enter")
    await expect(warning).to_have_text(expected)  # said again on the next visit
    await dialog.get_by_role("button", name="Отмена").press("Enter")

    await page.get_by_role("button", name=f"Изменить: {yandex['from_email']}").press("Enter")
    dialog = page.get_by_role("dialog", name=f"Изменить {yandex['from_email']}")
    await expect(dialog.get_by_label("в минуту")).to_have_value("20")
    await dialog.get_by_label("в минуту").fill("")  # no limit at all is over the provider's too
    await expect(dialog.locator("#edit-limits-warning")).to_contain_text(
        "Яндекс Почта разрешает не больше 500 писем в сутки и 20 в минуту.")
    await dialog.get_by_label("в минуту").fill("20")
    await expect(dialog.locator("#edit-limits-warning")).to_have_text("")
