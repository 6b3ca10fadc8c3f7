"""What the final Russian keyboard walk of issue 12 found in the wizard: a reading applied with
«Всё равно применить» keeps its note and its way back over a reload (and without this browser's
memory, a new detection to start over from); the message step says at its fields that a subject and
a text are needed before going on, while the draft still saves; the problem rows download writes
phones as the campaign export does (`="+7…"`); the plan says «меньше минуты» alone, and a small
campaign behind a big one of the same account says so instead of taking the big one's days.
"""

from __future__ import annotations

import csv
import io
import re
import uuid
from pathlib import Path

import asyncpg
import httpx
from playwright.async_api import expect

from sendpy.devstack.smtp_sink import SmtpSink
from tests.browser import russian_draft
from tests.test_a11y import serious_violations
from tests.test_web_e2e import shot
from tests.test_web_imap import RussianPage, ru, sign_up  # noqa: F401  (ru is a fixture)
from tests.test_web_walk_fixes import draft
from tests.test_web_walk_s4 import parents
from tests.test_web_wizard_edges import addresses, sending

NBSP = "\u00a0"
# The walk's sender: a school secretary's Gmail (its limits; the mail goes to the SMTP sink).
SCHOOL = {"from_email": "sekretar.school12@gmail.com", "from_name": "Школа № 12, секретарь", "per_minute": 20,
          "per_day": 500}


async def test_a_reading_applied_anyway_keeps_its_note_and_its_way_back_over_a_reload(
    ru: RussianPage, db: asyncpg.Pool, api: httpx.AsyncClient, clean_sink: SmtpSink, tmp_path: Path  # noqa: F811
) -> None:
    page = ru.page
    await sign_up(page, db)
    contacts = tmp_path / "родители.csv"
    contacts.write_bytes(parents(3000))
    await page.goto("/#/new")
    await page.locator("#file").set_input_files(str(contacts))
    valid = page.locator("#stat-valid")
    await expect(valid).to_have_text(f"3{NBSP}000", timeout=30_000)
    warning = page.locator("#dialect-warning")

    async def apply_the_city_anyway() -> None:
        await page.get_by_label("Столбец с адресами").select_option(label="Город")
        await page.get_by_role("button", name="Применить", exact=True).press("Enter")
        # The server's sentence writes its counts as the page does: «3 000», not «3000».
        await expect(warning.locator("p")).to_have_text(
            f"С этими настройками в столбце адресов «Город» верных адресов 0 на 3{NBSP}000 строк,"
            f" а с нынешними — 3{NBSP}000; настройки не изменены.")
        await warning.get_by_role("button", name="Всё равно применить").press("Enter")
        await expect(warning.locator("p")).to_have_text(f"Применено: верных адресов теперь 0 вместо 3{NBSP}000.")
        await expect(valid).to_have_text("0")

    await apply_the_city_anyway()
    back = warning.get_by_role("button", name="Вернуть прежние настройки (точка с запятой, Кириллица, Windows (cp1251), столбец «")
    await page.reload()
    # The same counts, the same note and the same way back as before the reload.
    await expect(valid).to_have_text("0")
    await expect(page.get_by_label("Столбец с адресами").locator("option:checked")).to_have_text("Город")
    await expect(warning.locator("p")).to_have_text(f"Применено: верных адресов теперь 0 вместо 3{NBSP}000.")
    assert await serious_violations(page, "contacts, a reading applied anyway, reloaded") == []
    await shot(page, "walk12a-contacts-applied-reloaded")
    await back.press("Enter")
    await expect(valid).to_have_text(f"3{NBSP}000")
    await expect(page.get_by_label("Столбец с адресами").locator("option:checked")).to_have_text("Почта")
    await expect(warning).to_have_count(0)
    await page.reload()
    await expect(valid).to_have_text(f"3{NBSP}000")
    await expect(warning).to_have_count(0)  # nothing left over once gone back

    # In another browser (nothing remembered) the step still says why there is nobody and starts over.
    await apply_the_city_anyway()
    await page.evaluate("Object.keys(localStorage).filter((k) => k.startsWith('sendpy.applied.'))"
                        ".forEach((k) => localStorage.removeItem(k))")
    await page.reload()
    await expect(valid).to_have_text("0")
    await expect(warning.locator("p")).to_have_text(
        "С этими настройками в файле нет ни одного верного адреса. Выберите выше столбец с адресами"
        " или дайте Sendpy определить настройки заново.")
    await warning.get_by_role("button", name="Определить настройки заново").press("Enter")
    await expect(valid).to_have_text(f"3{NBSP}000")
    await expect(page.get_by_label("Столбец с адресами").locator("option:checked")).to_have_text("Почта")
    await expect(page.get_by_role("heading", name="Что мы нашли: родители.csv")).to_be_focused()


async def test_the_message_step_says_at_its_fields_what_sending_needs_and_still_saves_the_draft(
    ru: RussianPage, db: asyncpg.Pool, api: httpx.AsyncClient, clean_sink: SmtpSink  # noqa: F811
) -> None:
    page = ru.page
    auth, _, campaign_id = await russian_draft(page, db, api, clean_sink, addresses("m", 2), subject="", html_body="")
    await page.goto(f"/#/wizard/{campaign_id}/3")
    await page.get_by_label("Название рассылки").fill("Весенняя")
    onward = page.get_by_role("button", name="Далее")
    await onward.focus()
    await page.keyboard.press("Enter")
    subject = page.get_by_label("Тема")
    subject_says = "Укажите тему письма — без темы отправить нельзя. Черновик сохранён."
    body_says = "Напишите текст письма — пустое письмо отправить нельзя. Черновик сохранён."
    await expect(page.locator("#subject-problem")).to_have_text(subject_says)
    await expect(page.locator("#body-problem")).to_have_text(body_says)
    await expect(subject).to_be_focused()
    await expect(subject).to_have_accessible_description(subject_says)
    await expect(subject).to_have_attribute("aria-invalid", "true")
    assert page.url.endswith(f"#/wizard/{campaign_id}/3")
    # Saved as it is: a draft may lack anything.
    saved = (await api.get(f"/v1/campaigns/{campaign_id}", headers=auth)).json()
    assert (saved["name"], saved["subject"]) == ("Весенняя", "")
    assert await serious_violations(page, "the message step, nothing to send") == []
    await shot(page, "walk12a-message-needs-subject")

    await page.keyboard.type("Собрание в пятницу")
    await expect(page.locator("#subject-problem")).to_have_text("")  # typing answers it
    await onward.press("Enter")
    editor = page.get_by_role("textbox", name="Текст письма")
    await expect(editor).to_be_focused()
    await expect(editor).to_have_accessible_description(body_says)
    await page.keyboard.type("Здравствуйте!")
    await expect(page.locator("#body-problem")).to_have_text("")
    await onward.press("Enter")
    await expect(page.get_by_role("heading", name="Сводка")).to_be_visible()
    saved = (await api.get(f"/v1/campaigns/{campaign_id}", headers=auth)).json()
    assert saved["subject"] == "Собрание в пятницу" and "Здравствуйте!" in saved["html_body"]

    # A step link past it goes on, and the review says before Send what it would be refused for.
    emptied = await api.patch(f"/v1/campaigns/{campaign_id}", headers=auth,
                              json={"subject": " ", "html_body": "<p><br></p>"})
    assert emptied.status_code == 200, emptied.text
    await page.reload()
    await expect(page.locator("#review-lacking")).to_contain_text(
        "Перед отправкой укажите тему письма (шаг 3). Перед отправкой напишите текст письма (шаг 3).")
    await page.locator("#review-lacking").get_by_role("link", name="Письмо").press("Enter")
    await expect(page.get_by_label("Тема")).to_be_visible()


async def test_the_problem_rows_download_writes_cells_as_the_campaign_export_does(
    ru: RussianPage, db: asyncpg.Pool, api: httpx.AsyncClient, clean_sink: SmtpSink  # noqa: F811
) -> None:
    page = ru.page
    contacts = ("ФИО;Почта;Телефон\r\nАнна;anna@example.ru;+79161234567\r\nОлег;+7 903 555-01-01;0012\r\n"
                'Ира;=HYPERLINK("http://evil");@SUM(A1)\r\nПётр;-2+3;+79160000000\r\n').encode("cp1251")
    auth, _, campaign_id = await russian_draft(page, db, api, clean_sink, contacts)
    await page.goto(f"/#/wizard/{campaign_id}/1")
    link = page.locator("#problems-link")
    await expect(link).to_have_text("Скачать все проблемные строки: 3 (CSV)")
    href = await link.get_attribute("href")
    assert href
    answer = await api.get(href, headers=auth)
    assert answer.status_code == 200, answer.text
    table = list(csv.reader(io.StringIO(answer.content.decode("utf-8-sig")), delimiter=";"))
    assert table[0] == ["Строка файла", "Значение", "Что не так", "ФИО", "Телефон"]
    rows = {row[3]: row for row in table[1:]}
    # Excel shows ="…" as exactly the text: no apostrophe in sight, no '+' or leading zero lost, no formula run.
    assert (rows["Олег"][1], rows["Олег"][4]) == ('="+7 903 555-01-01"', '="0012"')
    assert (rows["Ира"][1], rows["Ира"][4]) == ('="=HYPERLINK(""http://evil"")"', '="@SUM(A1)"')
    assert (rows["Пётр"][1], rows["Пётр"][4]) == ('="-2+3"', '="+79160000000"')
    assert not [cell for row in table for cell in row if cell.startswith("'")]


async def test_the_plan_says_under_a_minute_alone_and_a_small_campaign_behind_a_big_one_says_so(
    ru: RussianPage, db: asyncpg.Pool, api: httpx.AsyncClient, clean_sink: SmtpSink  # noqa: F811
) -> None:
    page = ru.page
    auth, sender, alone = await russian_draft(page, db, api, clean_sink, addresses("s", 3),
                                              {"per_minute": 20, "per_day": 500})
    await page.goto(f"/#/wizard/{alone}/4")
    plan = page.locator("#review-plan")
    await expect(plan).to_have_text(re.compile(r"^меньше минуты; последнее письмо около \d\d:\d\d$"))

    # 2,755 emails of the same account already going out at 500 a day: about 6 days of them first.
    big = await draft(api, auth, sender, addresses("b", 3), name="Осенняя")
    await sending(db, big, [(f"b{n}@example.com", "pending", None, 0) for n in range(2755)])
    small = await draft(api, auth, sender, addresses("s", 3), name="Зимняя")
    await page.goto(f"/#/wizard/{small}/4")
    moment = r"\d\d:\d\d, \d+ [а-я]+\.?"
    await expect(plan).to_have_text(re.compile(
        rf"^сначала закончится рассылка «Осенняя» этого же отправителя, затем эта: меньше минуты,"
        rf" начало около {moment}(; последнее письмо около {moment})?$"))
    await page.get_by_role("button", name="Отправить", exact=True).press("Enter")
    await expect(page.locator("#confirm-text")).to_contain_text("Уйдёт писем: 3; сначала закончится рассылка «Осенняя»")
    await page.keyboard.press("Escape")

    # Under way behind it, the campaign page counts its own mail apart from the wait: not 6 days.
    async with db.acquire() as conn:
        await conn.execute("UPDATE campaigns SET started_at = now() - interval '1 hour' WHERE id = $1", uuid.UUID(big))
    await sending(db, small, [(f"s{n}@example.com", "pending", None, 0) for n in range(3)])
    await page.goto(f"/#/campaign/{small}")
    rate = page.locator("#rate")
    await expect(rate).to_contain_text("меньше минуты; первые письма около ")
    assert "дней" not in await rate.inner_text() and "примерно меньше" not in await rate.inner_text()
    await expect(page.locator("#reason")).to_contain_text("сначала уходит рассылка «Осенняя»")


def school_export() -> bytes:
    """The walk's file: 3,000 rows of a school's Excel export, 80 repeated and 165 without an address."""
    rows = [f"Родитель {n};parent{n}@example.ru" for n in range(2755)]
    rows += [f"Родитель {n} (повтор);PARENT{n}@example.ru" for n in range(80)]
    rows += [f"Без почты {n};" if n % 2 else f"Опечатка {n};parent{n}.example.ru" for n in range(165)]
    return ("ФИО;Эл. почта\r\n" + "\r\n".join(rows) + "\r\n").encode("cp1251")


async def test_the_review_of_a_gmail_sized_campaign_at_375_px(
    ru: RussianPage, db: asyncpg.Pool, api: httpx.AsyncClient, clean_sink: SmtpSink  # noqa: F811
) -> None:
    page = ru.page
    _, _, campaign_id = await russian_draft(
        page, db, api, clean_sink, school_export(), SCHOOL, name="Собрание 5 декабря",
        subject="Приглашение на родительское собрание, {{ фио }}", html_body="<p>Здравствуйте, {{ фио }}!</p>")
    await page.set_viewport_size({"width": 375, "height": 812})
    await page.goto(f"/#/wizard/{campaign_id}/4")
    await expect(page.locator("#review-count")).to_have_text(f"2{NBSP}755")
    await expect(page.locator("#review-skipped")).to_have_text(
        "в списке исключений: 0; повторов: 80; строк без верного адреса: 165")
    await expect(page.locator("#review-plan")).to_contain_text("примерно 6 дней, по 500 в день; последнее письмо около ")
    assert await page.evaluate("document.documentElement.scrollWidth") <= 375  # nothing wider than the phone
    await shot(page, "walk12a-375-review-plan")
