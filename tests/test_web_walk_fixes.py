"""What the Russian keyboard-only walk of the web UI found (issue 12), fixed and kept fixed, in a
real browser against the real stack: the campaign page's next emails in local time and Russian
words, no English on Russian screens and downloads, no raw browser errors, keyboard-scrollable
tables at 375 px, a separator that finds no address column, and the HTML source view's toolbar.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import re
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from playwright.async_api import Route, expect

from sendpy.devstack.smtp_sink import SmtpSink
from tests.helpers import eventually, make_sender, make_upload
from tests.test_a11y import serious_violations
from tests.test_web_e2e import shot
from tests.test_web_imap import RussianPage, ru, sign_up  # noqa: F401  (ru is a fixture)

MOSCOW = dt.timezone(dt.timedelta(hours=3))  # the `ru` fixture's browser runs in Europe/Moscow
# What the system writes itself as a recipient's reply, as a worker stores it.
RECIPIENTS = [
    (1, "ann@example.com", "sent", "250 2.0.0 Ok: queued"),
    (2, "bob@example.com", "skipped", "suppressed"),
    (3, "cat@example.com", "failed", "3 попыток не удались; gave up after 3 attempts: 421 4.7.0 Try again later"),
    (4, "dan@example.com", "skipped", "cancelled"),
    (5, "eve@example.com", "pending", None),
]


async def draft(api: httpx.AsyncClient, auth: dict[str, str], sender: dict[str, Any], data: bytes,
                **fields: str) -> str:
    upload = await make_upload(api, auth, data)
    made = await api.post("/v1/campaigns", headers=auth, json={
        "sender_id": sender["id"], "upload_id": upload["id"], "subject": "Новости", "html_body": "<p>Hi</p>", **fields})
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


async def under_way(api: httpx.AsyncClient, auth: dict[str, str], db: asyncpg.Pool, sender: dict[str, Any]) -> str:
    """A campaign being sent, its recipients as workers leave them (no workers run here: the state
    is written as they write it)."""
    campaign_id = await draft(api, auth, sender, b"email\n" + b"".join(r[1].encode() + b"\n" for r in RECIPIENTS))
    async with db.acquire() as conn:
        await conn.execute("UPDATE campaigns SET status = 'sending', started_at = now(), recipient_count = $2,"
                           " recipients_loaded = true WHERE id = $1", uuid.UUID(campaign_id), len(RECIPIENTS))
        await conn.executemany(
            "INSERT INTO recipients (campaign_id, position, email, status, reply, attempts) VALUES ($1, $2, $3, $4, $5, 1)",
            [(uuid.UUID(campaign_id), *r) for r in RECIPIENTS])
    return campaign_id


async def defer(db: asyncpg.Pool, campaign_id: str, sender_id: int, ahead: dt.timedelta, reason: str) -> dt.datetime:
    """Puts the campaign's next batch off as a sender worker does (deferrals.defer); returns when."""
    at = dt.datetime.now(dt.UTC) + ahead
    async with db.acquire() as conn:
        await conn.execute("DELETE FROM deferred_batches WHERE campaign_id = $1", uuid.UUID(campaign_id))
        await conn.execute(
            "INSERT INTO deferred_batches (campaign_id, sender_id, first_position, last_position, not_before, reason)"
            " VALUES ($1, $2, 5, 5, $3, $4)", uuid.UUID(campaign_id), sender_id, at, reason)
    return at


async def test_the_campaign_page_says_when_the_next_emails_go_and_why_in_local_time(
    ru: RussianPage, db: asyncpg.Pool, api: httpx.AsyncClient, clean_sink: SmtpSink  # noqa: F811
) -> None:
    page = ru.page
    auth = await sign_up(page, db)
    sender = await make_sender(api, auth, clean_sink, per_minute=20, per_day=500)
    campaign_id = await under_way(api, auth, db, sender)
    # The per-minute limit: the rest of the batch waits under a minute.
    at = await defer(db, campaign_id, sender["id"], dt.timedelta(seconds=55), "rate limit")
    shown = (await api.get(f"/v1/campaigns/{campaign_id}", headers=auth)).json()
    assert shown["next_batch"] == {"at": int(at.timestamp()), "reason": "minute_limit", "limit": 20, "detail": None,
                                   "in_status_reason": True}
    # API users keep a sentence in both languages, each whole in its own language.
    russian, english = shown["status_reason"].split(" / ")
    assert "Следующие письма около" in russian and "лимит отправителя" in russian, russian
    assert not re.search(r"[a-z]{3}", russian.replace("UTC", "")), russian
    assert "Next emails around" in english and "rate limit" not in english, english

    await page.goto(f"/#/campaign/{campaign_id}")
    reason = page.locator("#reason")
    clock = at.astimezone(MOSCOW).strftime("%H:%M")
    await expect(reason).to_have_text(f"Следующие письма около {clock} — лимит отправителя: 20 в минуту.")
    await shot(page, "walk12-campaign-next-emails")

    # The day's limit: put off for hours.
    at = await defer(db, campaign_id, sender["id"], dt.timedelta(hours=5), "rate limit")
    clock = at.astimezone(MOSCOW).strftime("%H:%M")
    await expect(reason).to_contain_text(f"Следующие письма около {clock}")
    await expect(reason).to_contain_text("— лимит отправителя: 500 в сутки.")
    # A server's temporary refusal: its own words, the rest in Russian; never "UTC" on the page.
    await defer(db, campaign_id, sender["id"], dt.timedelta(minutes=7), "421 4.7.0 Try again later")
    await expect(reason).to_contain_text("после временной ошибки: 421 4.7.0 Try again later")
    assert "UTC" not in await reason.inner_text()


async def test_replies_the_system_writes_itself_are_in_the_readers_language(
    ru: RussianPage, db: asyncpg.Pool, api: httpx.AsyncClient, clean_sink: SmtpSink  # noqa: F811
) -> None:
    page = ru.page
    auth = await sign_up(page, db)
    sender = await make_sender(api, auth, clean_sink)
    campaign_id = await under_way(api, auth, db, sender)
    await page.goto(f"/#/campaign/{campaign_id}")
    table = page.locator("#recipients")
    await expect(table.locator("tr").filter(has_text="bob@example.com")).to_contain_text("в списке исключений")
    await expect(table.locator("tr").filter(has_text="dan@example.com")).to_contain_text("рассылка отменена")
    await expect(table.locator("tr").filter(has_text="cat@example.com")).to_contain_text(
        "попыток сделано: 3; последний ответ: 421 4.7.0 Try again later")
    for english in ("suppressed", "cancelled", "gave up"):
        await expect(table).not_to_contain_text(english)

    export = await api.get(f"/v1/campaigns/{campaign_id}/export.csv?lang=ru", headers=auth)
    rows = {row[1]: row for row in csv.reader(io.StringIO(export.content.decode("utf-8-sig")), delimiter=";")}
    assert (rows["bob@example.com"][2], rows["bob@example.com"][3]) == ("пропущено", "в списке исключений")
    assert rows["dan@example.com"][3] == "рассылка отменена"
    assert rows["cat@example.com"][3] == "попыток сделано: 3; последний ответ: 421 4.7.0 Try again later"
    assert rows["ann@example.com"][3] == "250 2.0.0 Ok: queued"  # a server's words stay as they are
    english_export = await api.get(f"/v1/campaigns/{campaign_id}/export.csv?lang=en", headers=auth)
    english_rows = {row[1]: row for row in csv.reader(io.StringIO(english_export.content.decode("utf-8-sig")))}
    assert english_rows["bob@example.com"][3] == "on the suppression list"
    assert english_rows["cat@example.com"][3] == "gave up after 3 attempts: 421 4.7.0 Try again later"


async def test_no_connection_and_refused_uploads_are_explained_in_russian(
    ru: RussianPage, db: asyncpg.Pool, api: httpx.AsyncClient, clean_sink: SmtpSink, live_server: str,  # noqa: F811
    tmp_path: Path
) -> None:
    page = ru.page
    auth = await sign_up(page, db)
    sender = await make_sender(api, auth, clean_sink)
    campaign_id = await draft(api, auth, sender, b"email\nann@example.com\n")

    # The file goes to storage, which is another origin: cut off, then refusing.
    contacts = tmp_path / "контакты.csv"
    contacts.write_bytes(b"email\nbob@example.com\n")
    answer: dict[str, Any] = {"status": None}

    async def storage(route: Route) -> None:
        if route.request.url.startswith(live_server):
            await route.continue_()
        elif answer["status"] is None:
            await route.abort("internetdisconnected")
        else:
            await route.fulfill(status=answer["status"], body="<Error><Code>AccessDenied</Code></Error>")

    await page.route("**/*", storage)
    await page.goto(f"/#/wizard/{campaign_id}/1")
    await page.locator("#file").set_input_files(str(contacts))
    problem = page.locator("#report .error")
    await expect(problem).to_have_text(
        "Файл не загрузился: нет связи. Проверьте подключение к интернету и выберите файл ещё раз.")
    await expect(problem).to_be_focused()
    answer["status"] = 403
    await page.locator("#file").set_input_files([])
    await page.locator("#file").set_input_files(str(contacts))
    await expect(problem).to_contain_text("Хранилище файлов отказалось принять файл (код 403)")
    await page.unroute("**/*")

    # The API itself out of reach: what fetch says ("Failed to fetch") is never shown.
    await page.goto(f"/#/wizard/{campaign_id}/3")
    await expect(page.get_by_role("heading", name="Письмо", exact=True)).to_be_visible()
    await page.route("**/v1/**", lambda route: route.abort("internetdisconnected"))
    await page.get_by_role("button", name="Просмотр", exact=True).click()
    offline = "Нет связи с сервером. Всё, что вы ввели, осталось в браузере"
    await expect(page.locator("#undefined")).to_contain_text(offline)
    await page.get_by_label("Тема").fill("Новости недели")
    await expect(page.locator("#save-state")).to_contain_text(offline, timeout=10_000)
    await expect(page.locator("#app")).not_to_contain_text("Failed to fetch")
    await shot(page, "walk12-message-offline")
    # The connection lost between the API's answer and the preview's own page: the browser's error
    # page in the frame is of no origin of ours, and says nothing to the person either.
    await page.unroute("**/v1/**")
    await page.get_by_role("button", name="Просмотр", exact=True).click()
    await expect(page.locator("#undefined")).to_be_empty()
    await page.route("**/preview.html", lambda route: route.abort("internetdisconnected"))
    await page.get_by_role("button", name="Просмотр", exact=True).click()
    await expect(page.locator("#undefined")).to_contain_text(offline)


async def test_a_preview_answering_late_does_not_wipe_what_a_later_one_said(
    ru: RussianPage, db: asyncpg.Pool, api: httpx.AsyncClient, clean_sink: SmtpSink  # noqa: F811
) -> None:
    # CI: the preview the page asks for on opening answered after the person's click had found no
    # connection, and emptied the words «Нет связи…» (the test above failed on it once).
    page = ru.page
    auth = await sign_up(page, db)
    sender = await make_sender(api, auth, clean_sink)
    campaign_id = await draft(api, auth, sender, b"email\nann@example.com\n")
    asked: list[str] = []

    async def previews(route: Route) -> None:
        asked.append(route.request.url)
        if len(asked) == 1:  # the one on opening: answered after the click's
            await asyncio.sleep(1.5)
            await route.continue_()
        else:
            await route.abort("internetdisconnected")

    await page.route("**/v1/campaigns/*/preview", previews)
    async with page.expect_response(lambda response: response.url.endswith("/preview"), timeout=10_000):
        await page.goto(f"/#/wizard/{campaign_id}/3")
        await expect(page.get_by_role("heading", name="Письмо", exact=True)).to_be_visible()
        await page.get_by_role("button", name="Просмотр", exact=True).click()
        offline = "Нет связи с сервером. Всё, что вы ввели, осталось в браузере"
        await expect(page.locator("#undefined")).to_contain_text(offline)
    await page.wait_for_timeout(1_000)  # the late answer's frame has loaded by now, had it been shown
    assert offline in (await page.locator("#undefined").text_content() or "")
    assert len(asked) == 2, asked


async def test_a_preview_still_loading_when_a_later_one_fails_shows_nothing_of_its_row(
    ru: RussianPage, db: asyncpg.Pool, api: httpx.AsyncClient, clean_sink: SmtpSink  # noqa: F811
) -> None:
    # The attack of 2026-12-01: row 2's frame still loading (a slow phone network) when row 3 found
    # no connection — the frame then showed row 2 under row 1's subject, beside «Нет связи…».
    page = ru.page
    auth = await sign_up(page, db)
    sender = await make_sender(api, auth, clean_sink)
    contacts = "email,name\nann@example.com,Аня\nbob@example.com,Боря\ncat@example.com,Вера\n".encode()
    campaign_id = await draft(api, auth, sender, contacts, subject="Тема для {{ name }}",
                              html_body="<p>Привет, {{ name }}!</p>")
    await page.goto(f"/#/wizard/{campaign_id}/3")
    frame = page.frame_locator("#preview").locator("body")
    await expect(frame).to_contain_text("Привет, Аня!")
    await expect(page.locator("#preview-subject")).to_have_text("Тема для Аня")
    loading = asyncio.Event()

    async def slow_frame(route: Route) -> None:
        loading.set()
        await asyncio.sleep(1.5)
        await route.continue_()

    await page.route("**/preview.html", slow_frame)
    row = page.get_by_label("Просмотр для контакта №")
    await row.fill("2")
    await row.press("Enter")
    await asyncio.wait_for(loading.wait(), 10)  # row 2's answer is in, its frame loading
    await page.route("**/v1/**", lambda route: route.abort("internetdisconnected"))
    await row.fill("3")
    await row.press("Enter")
    offline = "Нет связи с сервером. Всё, что вы ввели, осталось в браузере"
    await expect(page.locator("#undefined")).to_contain_text(offline)
    await page.wait_for_timeout(2_500)  # row 2's frame has loaded by now
    assert "Боря" not in (await frame.text_content() or "")
    assert "Аня" not in (await page.locator("#preview-subject").text_content() or "")
    assert offline in (await page.locator("#undefined").text_content() or "")


async def test_a_schedule_time_that_is_no_time_is_explained_and_forgotten_once_corrected(
    ru: RussianPage, db: asyncpg.Pool, api: httpx.AsyncClient, clean_sink: SmtpSink  # noqa: F811
) -> None:
    page = ru.page
    auth = await sign_up(page, db)
    sender = await make_sender(api, auth, clean_sink, per_minute=20, per_day=500)
    campaign_id = await draft(api, auth, sender, b"email\nann@example.com\n")
    await page.goto(f"/#/wizard/{campaign_id}/4")
    later = page.get_by_label("Или отправить позже, в")
    schedule = page.get_by_role("button", name="Запланировать")
    problem = page.locator("#start-error")
    # A five-digit year is a value the date field takes (typed into its year part), yet no date.
    await later.evaluate("(input) => { input.value = '12026-11-12T10:09'; }")
    await schedule.click()
    await expect(problem).to_have_text(
        "Укажите дату и время полностью: день, месяц, год из четырёх цифр, часы и минуты.")
    await expect(later).to_be_focused()
    await expect(later).to_have_attribute("aria-invalid", "true")
    await later.fill("")
    await expect(problem).to_be_empty()  # typing again takes the old complaint away
    await schedule.click()
    await expect(problem).to_contain_text("Укажите дату и время полностью")
    past = (dt.datetime.now(MOSCOW) - dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    await later.fill(past)
    await expect(problem).to_be_empty()
    await schedule.click()
    await expect(problem).to_have_text("Это время уже прошло; выберите время в будущем.")
    await later.fill((dt.datetime.now(MOSCOW) + dt.timedelta(days=3)).strftime("%Y-%m-%dT%H:%M"))
    await expect(problem).to_be_empty()
    # The time zone in people's words, not the database's name for it.
    zone = page.locator("#later .hint")
    await expect(zone).to_contain_text("UTC+3")
    await expect(zone).not_to_contain_text("Europe/Moscow")
    await schedule.click()
    await page.get_by_role("dialog", name="Запланировать рассылку?").get_by_role("button", name="Запланировать").click()
    await expect(page.locator("#status")).to_have_text("запланирована")


async def test_tables_at_375_px_are_regions_the_keyboard_can_scroll(
    ru: RussianPage, db: asyncpg.Pool, api: httpx.AsyncClient, clean_sink: SmtpSink  # noqa: F811
) -> None:
    page = ru.page
    await page.set_viewport_size({"width": 375, "height": 740})
    auth = await sign_up(page, db)
    sender = await make_sender(api, auth, clean_sink)
    campaign_id = await under_way(api, auth, db, sender)
    wide = b"email;first name;last name;city;phone\n" + b"".join(
        b"person%d@example.com;Anastasia;Konstantinopolskaya;Saint Petersburg;+7 900 000-00-%02d\n" % (n, n)
        for n in range(5))
    wizard_id = await draft(api, auth, sender, wide)
    problems: list[str] = []
    for where, heading in [(f"#/campaign/{campaign_id}", "Ход рассылки"), (f"#/wizard/{wizard_id}/1", "Контакты")]:
        await page.goto(f"/{where}")
        await expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
        await expect(page.locator(".scroll table tbody tr").first).to_be_visible()
        problems += await serious_violations(page, where)
    assert not problems, "\n".join(problems)

    # The recipients are cards at this width (test_web_walk12_final.py); the file's preview still scrolls.
    await page.goto(f"/#/wizard/{wizard_id}/1")
    region = page.get_by_role("region", name="Первые строки файла")
    await expect(region.locator("tr").filter(has_text="person1@example.com")).to_be_visible()
    await page.get_by_role("heading", name="Просмотр", exact=True).evaluate("(h) => { h.tabIndex = -1; h.focus(); }")
    await page.keyboard.press("Tab")
    await expect(region).to_be_focused()
    assert await region.evaluate("(el) => getComputedStyle(el).outlineStyle") != "none"  # focus is seen
    await page.keyboard.press("ArrowRight")
    await eventually(lambda: region.evaluate("(el) => el.scrollLeft > 0"), 5, "the arrow key scrolled the table")


async def test_a_separator_that_finds_no_address_column_shows_its_columns_and_the_way_back(
    ru: RussianPage, db: asyncpg.Pool, api: httpx.AsyncClient, clean_sink: SmtpSink, tmp_path: Path  # noqa: F811
) -> None:
    page = ru.page
    auth = await sign_up(page, db)
    contacts = tmp_path / "родители.csv"
    contacts.write_bytes("ФИО;Почта;Класс\r\nИванова, Анна;anna@example.ru;5А\r\nПетров, Олег;oleg@example.ru;6Б\r\n"
                         .encode("cp1251"))
    await page.goto("/#/new")  # the upload makes the draft: its page opens with focus on what was found
    await page.locator("#file").set_input_files(str(contacts))
    report = page.locator("#report")
    await expect(report.get_by_role("heading", name="Что мы нашли: родители.csv")).to_be_focused()
    campaign_id = page.url.split("#/wizard/")[1].split("/")[0]
    await expect(page.locator("#stat-valid")).to_have_text("2")

    await page.get_by_label("Разделитель").select_option(",")
    await page.get_by_role("button", name="Применить").click()
    warning = page.locator("#dialect-warning")
    await expect(warning).to_contain_text("С разделителем «запятая» ни в одном столбце нет адресов")
    await expect(warning.locator("p")).to_be_focused()
    # Refused at first: the reading that works stays (the fourth walk); applied when asked.
    await warning.get_by_role("button", name="Всё равно применить").click()
    await expect(warning).to_contain_text("Ниже столбцы, которые с ним получились")
    await expect(warning.locator("p")).to_be_focused()
    # The columns of this reading, to pick from: not the ones of the separator before.
    column = page.get_by_label("Столбец с адресами")
    await expect(column.locator("option")).to_have_text(["ФИО;Почта;Класс", "Столбец 2"])
    await expect(page.locator("#preview tbody tr").first).to_contain_text("Иванова")
    await shot(page, "walk12-contacts-wrong-separator")

    await warning.get_by_role("button", name="Вернуть прежние настройки (точка с запятой, Кириллица, Windows (cp1251),"
                              " столбец «Почта»)", exact=True).click()
    await expect(page.get_by_label("Разделитель")).to_have_value(";")
    await expect(column.locator("option:checked")).to_have_text("Почта")
    await expect(page.locator("#stat-valid")).to_have_text("2")
    await expect(warning).to_have_count(0)
    await expect(report.get_by_role("heading", name="Что мы нашли: родители.csv")).to_be_focused()
    upload = (await api.get(f"/v1/campaigns/{campaign_id}", headers=auth)).json()["upload_id"]
    assert (await api.get(f"/v1/uploads/{upload}", headers=auth)).json()["status"] == "ready"


async def test_the_html_source_view_turns_the_formatting_buttons_off_and_says_how_back(
    ru: RussianPage, db: asyncpg.Pool, api: httpx.AsyncClient, clean_sink: SmtpSink  # noqa: F811
) -> None:
    page = ru.page
    auth = await sign_up(page, db)
    sender = await make_sender(api, auth, clean_sink)
    campaign_id = await draft(api, auth, sender, b"email;name\nann@example.com;Ann\n")
    await page.goto(f"/#/wizard/{campaign_id}/3")
    toggle = page.get_by_role("button", name="HTML-код")
    formatting = [page.get_by_role("button", name=name) for name in ("Жирный", "Курсив", "Список", "Ссылка", "Картинка")]
    await expect(toggle).to_have_attribute("aria-pressed", "false")
    await toggle.press("Enter")
    await expect(toggle).to_have_attribute("aria-pressed", "true")
    for button in formatting:
        await expect(button).to_be_disabled()
    hint = page.locator("#source-hint")
    await expect(hint).to_have_text("Вы правите HTML-код; кнопки оформления работают в визуальном редакторе."
                                    " Чтобы вернуться к нему, нажмите «HTML-код» ещё раз.")
    await expect(toggle).to_have_attribute("aria-describedby", "source-hint")
    # A field still goes in where the cursor is in the source.
    await page.get_by_label("Вставить поле").select_option("name")
    await page.get_by_role("button", name="Вставить", exact=True).click()
    await expect(page.locator("#source")).to_have_value(re.compile(r"\{\{ name \}\}"))
    await toggle.click()
    await expect(toggle).to_have_attribute("aria-pressed", "false")
    await expect(hint).to_be_hidden()
    for button in formatting:
        await expect(button).to_be_enabled()
    await expect(page.locator("#editor")).to_contain_text("{{ name }}")
