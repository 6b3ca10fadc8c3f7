"""The smaller findings of the Russian keyboard-only walk (issue 12), in a real browser: column
names without a header, «Отправить сейчас» asking first, the delete dialog starting on «Отмена»,
errors that go once they are answered, the suppressions page's search and import, an empty
senders page that says where senders come from, the preview row by Enter, and the wording.
"""

from __future__ import annotations

import datetime as dt
import re

import asyncpg
import httpx
from playwright.async_api import expect

from sendpy.devstack.smtp_sink import SmtpSink
from tests.helpers import eventually, make_sender
from tests.test_web_imap import RussianPage, ru, sign_up  # noqa: F401  (ru is a fixture)
from tests.test_web_walk_fixes import draft


async def test_columns_without_a_header_are_named_in_russian_and_the_report_gets_focus(
    ru: RussianPage, db: asyncpg.Pool, api: httpx.AsyncClient, clean_sink: SmtpSink  # noqa: F811
) -> None:
    page = ru.page
    auth = await sign_up(page, db)
    sender = await make_sender(api, auth, clean_sink)
    campaign_id = await draft(api, auth, sender, b"ann@example.com;Ann\nbob@example.com;Bob\n")
    await page.goto(f"/#/wizard/{campaign_id}/1")
    await expect(page.locator("#preview thead th")).to_have_text(["Столбец 1", "Столбец 2"])
    await expect(page.get_by_label("Столбец с адресами").locator("option")).to_have_text(["Столбец 1", "Столбец 2"])
    await expect(page.get_by_role("region", name="Первые строки файла")).to_have_attribute("tabindex", "0")


async def test_send_now_on_a_scheduled_campaign_asks_first_and_keeps_focus(
    ru: RussianPage, db: asyncpg.Pool, api: httpx.AsyncClient, clean_sink: SmtpSink  # noqa: F811
) -> None:
    page = ru.page
    auth = await sign_up(page, db)
    sender = await make_sender(api, auth, clean_sink, per_minute=20, per_day=500)
    campaign_id = await draft(api, auth, sender, b"email\nann@example.com\nbob@example.com\n")
    at = (dt.datetime.now(dt.UTC) + dt.timedelta(days=2)).isoformat()
    assert (await api.post(f"/v1/campaigns/{campaign_id}/schedule", headers=auth, json={"at": at})).status_code == 200
    await page.goto(f"/#/campaign/{campaign_id}")
    send_now = page.get_by_role("button", name="Отправить сейчас")
    await send_now.press("Enter")
    dialog = page.get_by_role("dialog", name="Отправить рассылку сейчас?")
    await expect(dialog).to_contain_text("Уйдёт писем: 2; ")
    await expect(dialog.get_by_role("button", name="Отмена")).to_be_focused()  # Enter alone sends nothing
    await page.keyboard.press("Escape")
    await expect(send_now).to_be_focused()
    assert (await api.get(f"/v1/campaigns/{campaign_id}", headers=auth)).json()["status"] == "scheduled"
    await send_now.press("Enter")
    await dialog.get_by_role("button", name="Отправить сейчас").press("Enter")
    await expect(page.locator("#status")).not_to_have_text("запланирована")
    await expect(page.locator("#state-line")).to_be_focused()  # not <body>: the button is gone
    assert (await api.get(f"/v1/campaigns/{campaign_id}", headers=auth)).json()["status"] != "scheduled"


async def test_the_delete_sender_dialog_starts_on_cancel_and_the_page_names_things_as_the_wizard(
    ru: RussianPage, db: asyncpg.Pool, api: httpx.AsyncClient, clean_sink: SmtpSink  # noqa: F811
) -> None:
    page = ru.page
    auth = await sign_up(page, db)
    await page.goto("/#/senders")
    await expect(page.locator("#no-senders")).to_have_text(
        "Отправителей пока нет. Почтовый ящик добавляется и проверяется в мастере рассылки, на шаге 2 «Отправитель».")
    await expect(page.get_by_role("link", name="Начать рассылку")).to_have_attribute("href", "#/new")

    sender = await make_sender(api, auth, clean_sink, per_minute=20, per_day=3000)
    async with db.acquire() as conn:  # as a sender on port 465 is stored (the sink speaks STARTTLS)
        await conn.execute("UPDATE senders SET security = 'tls' WHERE id = $1", sender["id"])
    await page.reload()
    row = page.get_by_role("row").filter(has_text=sender["from_email"])
    await expect(row).to_contain_text("(SSL/TLS)")
    await expect(row).to_contain_text("20 в минуту, 3\u00a0000 в сутки")
    delete = page.get_by_role("button", name=f"Удалить: {sender['from_email']}")
    await delete.press("Enter")
    dialog = page.get_by_role("dialog", name="Удалить отправителя?")
    await expect(dialog.get_by_role("button", name="Отмена")).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(dialog).to_be_hidden()
    await expect(delete).to_be_focused()
    assert (await api.get(f"/v1/senders/{sender['id']}", headers=auth)).status_code == 200


async def test_errors_go_once_they_are_answered(
    ru: RussianPage, db: asyncpg.Pool, api: httpx.AsyncClient, clean_sink: SmtpSink  # noqa: F811
) -> None:
    page = ru.page
    auth = await sign_up(page, db)
    await page.goto("/#/settings")
    await page.get_by_label("Текущий пароль").fill("not my password")
    await page.get_by_label("Новый пароль").fill("another long password")
    await page.get_by_role("button", name="Сохранить").click()
    result = page.locator("#current-problem")  # at the field (test_web_walk12_final.py)
    await expect(result).to_have_text("Текущий пароль указан неверно.")
    await expect(page.get_by_label("Текущий пароль")).to_be_focused()
    await page.keyboard.type("x")
    await expect(result).to_be_empty()

    sender = await make_sender(api, auth, clean_sink)
    campaign_id = await draft(api, auth, sender, b"email;name\nann@example.com;Ann\n")
    await page.goto(f"/#/wizard/{campaign_id}/3")
    subject = page.get_by_label("Тема")
    await subject.fill("Привет, {{ name")
    # The server's words end with a full stop before «Текст хранится…», as a sentence does.
    await expect(page.locator("#save-state")).to_have_text(re.compile(r"[.!?…] Текст хранится в этом браузере\.$"))
    await page.get_by_role("button", name="Далее").click()
    problem = page.locator("#nav-error")
    await expect(problem).to_contain_text("}}")
    await subject.fill("Привет, {{ name }}")
    await expect(page.locator("#save-state")).to_have_text("Сохранено.")
    await expect(problem).to_be_empty()


async def test_suppressions_search_keeps_focus_an_import_shows_the_whole_list_and_buttons_name_the_address(
    ru: RussianPage, db: asyncpg.Pool, api: httpx.AsyncClient  # noqa: F811
) -> None:
    page = ru.page
    auth = await sign_up(page, db)
    assert (await api.post("/v1/suppressions", headers=auth, json={"emails": ["old@example.com"]})).status_code == 201
    await page.goto("/#/suppressions")
    search = page.get_by_label("Найти адрес")
    await search.fill("zzz")
    await search.press("Enter")
    await expect(page.locator("#app")).to_contain_text("Ничего не найдено.")
    await expect(page.get_by_label("Найти адрес")).to_be_focused()
    await expect(page.get_by_label("Найти адрес")).to_have_value("zzz")

    await page.get_by_label("Загрузить CSV или текстовый файл", exact=False).set_input_files(files=[{
        "name": "list.csv", "mimeType": "text/csv", "buffer": b"new1@example.com\nnew2@example.com\n"}])
    await page.get_by_role("button", name="Загрузить", exact=True).click()
    await expect(page.locator("#result .notice")).to_contain_text("Загружено новых: 2")
    await expect(page.locator("#app")).not_to_contain_text("Ничего не найдено.")
    await expect(page.get_by_label("Найти адрес")).to_have_value("")
    await expect(page.get_by_role("button", name="Удалить new1@example.com")).to_be_visible()
    await expect(page.get_by_role("button", name="Удалить old@example.com")).to_be_visible()


async def test_enter_in_the_preview_row_shows_that_contact_and_the_test_goes_to_the_one_shown(
    ru: RussianPage, db: asyncpg.Pool, api: httpx.AsyncClient, clean_sink: SmtpSink  # noqa: F811
) -> None:
    page = ru.page
    auth = await sign_up(page, db)
    sender = await make_sender(api, auth, clean_sink)
    campaign_id = await draft(api, auth, sender, b"email;name\nann@example.com;Ann\nbob@example.com;Bob\n",
                              html_body="<p>Hello, {{ name }}!</p>")
    await page.goto(f"/#/wizard/{campaign_id}/3")
    frame = page.frame_locator("#preview")
    await expect(frame.locator("body")).to_contain_text("Hello, Ann!")
    await page.get_by_role("button", name="Просмотр", exact=True).focus()
    await page.keyboard.press("Tab")  # into the frame: it is seen to have focus
    outline = "(frame) => getComputedStyle(frame).outlineStyle"
    await eventually(lambda: page.locator("#preview").evaluate(f"{outline} === 'solid'"), 5, "the frame's focus ring")
    await page.keyboard.press("Tab")
    await expect(page.get_by_label("Адрес для теста")).to_be_focused()
    assert await page.locator("#preview").evaluate(outline) == "none"
    row = page.get_by_label("Просмотр для контакта №")
    await row.fill("2")
    await row.press("Enter")
    await expect(frame.locator("body")).to_contain_text("Hello, Bob!")
    await row.fill("99")
    await row.press("Enter")
    await expect(page.locator("#undefined")).to_have_text("Контактов в файле: 2. Введите номер от 1 до 2.")
    await expect(row).to_be_focused()

    before = len(clean_sink.messages)
    await page.get_by_label("Адрес для теста").fill("me@example.org")
    await page.get_by_role("button", name="Отправить мне тест").click()
    await expect(page.locator("#test-result")).to_contain_text("Тест отправлен на me@example.org")
    test = await eventually(lambda: clean_sink.messages[before:], 20, "the test arrived")
    body = test[-1].parsed().get_body(preferencelist=("html",))
    assert body is not None and "Hello, Bob!" in body.get_content()


async def test_the_review_speaks_plain_russian(
    ru: RussianPage, db: asyncpg.Pool, api: httpx.AsyncClient, clean_sink: SmtpSink  # noqa: F811
) -> None:
    page = ru.page
    auth = await sign_up(page, db)
    sender = await make_sender(api, auth, clean_sink, per_minute=20, per_day=500)
    campaign_id = await draft(api, auth, sender, b"email\n" + b"".join(b"p%d@example.com\n" % n for n in range(3000)),
                              subject="")
    await page.goto(f"/#/wizard/{campaign_id}/4")
    await expect(page.locator("#review-count")).to_have_text("3\u00a0000")
    await page.get_by_role("button", name="Отправить", exact=True).click()
    text = await page.locator("#confirm-text").inner_text()
    assert ".." not in text and text.startswith("Уйдёт писем: 3\u00a0000; примерно 6 дней"), text
    await page.get_by_role("dialog").get_by_role("button", name="Отправить").click()
    await expect(page.locator("#start-error")).to_have_text("Перед отправкой укажите тему письма (шаг 3).")

    await page.goto(f"/#/wizard/{campaign_id}/2")
    await page.locator("#sender-details summary").click()
    await expect(page.get_by_label("Почтовый сервис").locator("option", has_text="Яндекс")).to_have_text("Яндекс Почта")
