"""The campaign wizard as real people use it (issue 12, the last walk's rough edges), in Russian in
a real browser against the real stack: a campaign behind another of the same sender says which and
when it starts; a scheduled one shows who will be sent and when, in the person's zone; the export
keeps phone numbers as written, in the person's zone; the field picker names the file's columns as
written and fills the subject too; API keys' dates in the page's language; attempts as data with
Russian plurals; a correction that does not read keeps the working file.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from playwright.async_api import Locator, expect

from sendpy.devstack.smtp_sink import SmtpSink
from shared.delivery.outcomes import RetryPolicy
from shared.mail.messenger import Reply, ReplyKind
from shared.recipients import Claimed
from tests.helpers import make_sender
from tests.test_a11y import serious_violations
from tests.test_web_e2e import shot
from tests.test_web_imap import RussianPage, ru, sign_up  # noqa: F401  (ru is a fixture)
from tests.test_web_walk_fixes import draft

MOSCOW = dt.timezone(dt.timedelta(hours=3))  # the `ru` fixture's browser runs in Europe/Moscow
MONTHS = ("января", "февраля", "марта", "апреля", "мая", "июня", "июля", "августа", "сентября", "октября",
          "ноября", "декабря")


def russian_date(at: dt.datetime) -> str:
    """«30 ноября 2026, 14:05»: the page's way, in Moscow time."""
    local = at.astimezone(MOSCOW)
    return f"{local.day} {MONTHS[local.month - 1]} {local.year}, {local:%H:%M}"


async def sending(db: asyncpg.Pool, campaign_id: str, recipients: list[tuple[str, str, str | None, int]],
                  started: dt.timedelta = dt.timedelta(0)) -> None:
    """The campaign as the fan-out and the sender workers leave it (no workers run here): sending since
    `started` ago, its recipients (email, status, reply, attempts) written as they write them."""
    async with db.acquire() as conn:
        await conn.execute("UPDATE campaigns SET status = 'sending', started_at = now() - $3::interval,"
                           " recipient_count = $2, recipients_loaded = true WHERE id = $1",
                           uuid.UUID(campaign_id), len(recipients), started)
        await conn.executemany(
            "INSERT INTO recipients (campaign_id, position, email, status, reply, attempts) VALUES ($1, $2, $3, $4, $5, $6)",
            [(uuid.UUID(campaign_id), n, *r) for n, r in enumerate(recipients, start=1)])


def addresses(prefix: str, count: int) -> bytes:
    return b"email\n" + b"".join(b"%s%d@example.com\n" % (prefix.encode(), n) for n in range(count))


async def test_a_campaign_behind_another_of_the_same_sender_says_which_and_when_it_starts(
    ru: RussianPage, db: asyncpg.Pool, api: httpx.AsyncClient, clean_sink: SmtpSink  # noqa: F811
) -> None:
    page = ru.page
    auth = await sign_up(page, db)
    sender = await make_sender(api, auth, clean_sink, per_minute=20, per_day=500)
    first = await draft(api, auth, sender, addresses("a", 3), name="Осенние новости")
    await sending(db, first, [(f"a{n}@example.com", "pending", None, 0) for n in range(450)], dt.timedelta(minutes=1))
    second = await draft(api, auth, sender, addresses("b", 3), name="Зимние новости")
    await sending(db, second, [(f"b{n}@example.com", "pending", None, 0) for n in range(3)])

    shown = (await api.get(f"/v1/campaigns/{second}", headers=auth)).json()
    assert shown["waiting_for"] == {"id": first, "name": "Осенние новости", "subject": "Новости", "others": 0}
    # 450 emails ahead at 20 a minute: its first one in about 22 minutes.
    assert 20 * 60 < shown["plan"]["first_at"] - time.time() < 25 * 60, shown["plan"]
    assert (await api.get(f"/v1/campaigns/{first}", headers=auth)).json()["waiting_for"] is None

    await page.goto(f"/#/campaign/{second}")
    reason = page.locator("#reason")
    await expect(reason).to_contain_text(
        "Через этого же отправителя сначала уходит рассылка «Осенние новости». Первые письма около ")
    clock = re.search(r"Первые письма около (\d\d):(\d\d)", await reason.inner_text())
    assert clock, await reason.inner_text()
    expected = dt.datetime.fromtimestamp(shown["plan"]["first_at"], MOSCOW)
    minutes = (int(clock[1]) * 60 + int(clock[2]) - (expected.hour * 60 + expected.minute)) % 1440
    assert minutes <= 2 or minutes >= 1440 - 2, (clock[0], expected)  # the page polled a little later
    await expect(page.locator("#rate")).not_to_contain_text("в минуту")  # not «Скорость: 0 в минуту»
    await expect(page.locator("#rate")).to_contain_text("Осталось примерно")
    problems = await serious_violations(page, "a campaign waiting its turn")
    assert not problems, problems
    await shot(page, "walk12-campaign-waiting-its-turn")

    # Once the first one is done, nothing holds the second back and nothing says so.
    async with db.acquire() as conn:
        await conn.execute("UPDATE recipients SET status = 'sent' WHERE campaign_id = $1", uuid.UUID(first))
    await expect(reason).not_to_contain_text("сначала уходит рассылка", timeout=10_000)


async def test_a_scheduled_campaign_shows_who_will_be_sent_and_when_in_the_persons_zone(
    ru: RussianPage, db: asyncpg.Pool, api: httpx.AsyncClient, clean_sink: SmtpSink  # noqa: F811
) -> None:
    page = ru.page
    auth = await sign_up(page, db)
    sender = await make_sender(api, auth, clean_sink, per_minute=20, per_day=500)
    added = await api.post("/v1/suppressions", json={"emails": ["gone@example.com"]}, headers=auth)
    assert added.status_code == 201, added.text
    contacts = b"email\nann@example.com\nbob@example.com\ncat@example.com\nANN@example.com\nnot-an-address\ngone@example.com\n"
    campaign_id = await draft(api, auth, sender, contacts)
    when = (dt.datetime.now(MOSCOW) + dt.timedelta(days=2)).replace(hour=9, minute=30, second=0, microsecond=0)
    scheduled = await api.post(f"/v1/campaigns/{campaign_id}/schedule", headers=auth, json={"at": when.isoformat()})
    assert scheduled.status_code == 200, scheduled.text
    shown = (await api.get(f"/v1/campaigns/{campaign_id}", headers=auth)).json()
    assert shown["planned"] == {"recipients": 3, "suppressed": 1, "duplicates": 1, "problems": 1}

    await page.goto(f"/#/campaign/{campaign_id}")
    await expect(page.locator("#status")).to_have_text("запланирована")
    for key, n in [("recipients", "3"), ("suppressed", "1"), ("duplicates", "1"), ("problems", "1")]:
        await expect(page.locator(f"#planned-{key}")).to_have_text(n)
    await expect(page.locator("#counts")).to_contain_text("Будет отправлено")
    await expect(page.locator("#count-sent")).to_have_count(0)  # no row of zeros by state
    await expect(page.locator("#reason")).to_have_text(
        f"Отправка начнётся {russian_date(when)} (ваш часовой пояс: Москва, стандартное время (UTC+3)).")
    problems = await serious_violations(page, "a scheduled campaign")
    assert not problems, problems
    await shot(page, "walk12-campaign-scheduled-counts")


async def test_the_export_keeps_phone_numbers_as_written_and_times_in_the_persons_zone(
    ru: RussianPage, db: asyncpg.Pool, api: httpx.AsyncClient, clean_sink: SmtpSink  # noqa: F811
) -> None:
    page = ru.page
    auth = await sign_up(page, db)
    sender = await make_sender(api, auth, clean_sink)
    contacts = "email;Телефон;Код;Заметка\nann@example.com;+79161234567;0012;=HYPERLINK(\"http://evil\")\n"
    campaign_id = await draft(api, auth, sender, contacts.encode())
    await sending(db, campaign_id, [("ann@example.com", "sent", "250 2.0.0 Ok: queued", 1)])
    async with db.acquire() as conn:
        await conn.execute("UPDATE recipients SET fields = $2, updated_at = $3 WHERE campaign_id = $1",
                           uuid.UUID(campaign_id), '{"телефон": "+79161234567", "код": "0012",'
                           ' "заметка": "=HYPERLINK(\\"http://evil\\")"}', dt.datetime(2026, 11, 30, 11, 5, tzinfo=dt.UTC))

    await page.goto(f"/#/campaign/{campaign_id}")
    link = page.get_by_role("link", name="Скачать результаты (CSV)")
    await expect(link).to_have_attribute("href", re.compile(r"[?&]tz=Europe%2FMoscow(&|$)"))
    href = await link.get_attribute("href")
    assert href
    export = await api.get(href, headers=auth)
    assert export.status_code == 200, export.text
    header, row = list(csv.reader(io.StringIO(export.content.decode("utf-8-sig")), delimiter=";"))
    assert header == ["№", "Эл. почта", "Состояние", "Ответ сервера", "Попыток", "Обновлено (Москва, стандартное время (UTC+3))",
                      "Телефон", "Код", "Заметка"]
    # Excel shows ="…" as exactly the text: no '+' or leading zero lost, no apostrophe, no formula run.
    assert row[5:] == ["2026-11-30 14:05:00", '="+79161234567"', '="0012"', '="=HYPERLINK(""http://evil"")"']
    assert row[:5] == ["1", "ann@example.com", "отправлено", "250 2.0.0 Ok: queued", "1"]
    # Without a zone the times are UTC, and say so; a zone that is none is refused in words.
    plain = await api.get(f"/v1/campaigns/{campaign_id}/export.csv?lang=ru", headers=auth)
    assert "Обновлено (UTC)" in plain.text and "2026-11-30 11:05:00" in plain.text
    wrong = await api.get(f"/v1/campaigns/{campaign_id}/export.csv?lang=ru&tz=Mars/Olympus",
                          headers={**auth, "Accept-Language": "ru"})
    assert wrong.status_code == 400 and wrong.json()["error"]["field"] == "tz"
    assert "Europe/Moscow" in wrong.json()["error"]["message"]


async def test_the_field_picker_names_the_columns_as_written_and_fills_the_subject_too(
    ru: RussianPage, db: asyncpg.Pool, api: httpx.AsyncClient, clean_sink: SmtpSink  # noqa: F811
) -> None:
    page = ru.page
    auth = await sign_up(page, db)
    sender = await make_sender(api, auth, clean_sink)
    contacts = "ФИО;Эл. почта;Город\nИванова Анна;anna@example.ru;Казань\n".encode()
    campaign_id = await draft(api, auth, sender, contacts, subject="")
    await page.goto(f"/#/wizard/{campaign_id}/3")
    picker = page.get_by_label("Вставить поле")
    await expect(picker.locator("option")).to_have_text(
        ["Эл. почта ({{ email }})", "ФИО ({{ фио }})", "Город ({{ город }})"])

    subject = page.get_by_label("Тема")
    await subject.focus()
    await page.keyboard.type("Здравствуйте, !")
    await page.keyboard.press("ArrowLeft")  # the cursor before «!»
    await expect(page.locator("#field-target")).to_have_text("вставится в тему")
    await picker.focus()
    await page.keyboard.press("ArrowDown")  # arrows only choose: ФИО
    await expect(subject).to_have_value("Здравствуйте, !")
    await page.keyboard.press("Enter")
    await expect(subject).to_have_value("Здравствуйте, {{ фио }}!")
    await expect(subject).to_be_focused()  # typing goes on in the subject

    editor = page.get_by_role("textbox", name="Текст письма")
    await editor.click()
    await page.keyboard.type("Город: ")
    await expect(page.locator("#field-target")).to_have_text("вставится в текст письма")
    await picker.focus()
    await page.keyboard.press("ArrowDown")  # Город
    await page.keyboard.press("Enter")
    await expect(editor).to_contain_text("Город: {{ город }}")
    await expect(subject).to_have_value("Здравствуйте, {{ фио }}!")
    await page.get_by_role("button", name="Просмотр", exact=True).click()
    await expect(page.locator("#preview-subject")).to_have_text("Здравствуйте, Иванова Анна!")
    saved = (await api.get(f"/v1/campaigns/{campaign_id}", headers=auth)).json()
    assert saved["subject"] == "Здравствуйте, {{ фио }}!" and "{{ город }}" in saved["html_body"]
    problems = await serious_violations(page, "the message step")
    assert not problems, problems


async def test_api_keys_dates_are_in_the_pages_language(
    ru: RussianPage, db: asyncpg.Pool, api: httpx.AsyncClient  # noqa: F811
) -> None:
    page = ru.page
    auth = await sign_up(page, db)
    made = await api.post("/v1/api-keys", headers=auth, json={"name": "скрипт"})
    assert made.status_code == 201, made.text
    listed = (await api.get("/v1/api-keys", headers=auth)).json()["items"]
    created = dt.datetime.fromisoformat(next(k for k in listed if k["name"] == "скрипт")["created_at"])
    await page.goto("/#/keys")
    row = page.get_by_role("row").filter(has_text="скрипт")
    await expect(row.get_by_role("cell").nth(2)).to_have_text(russian_date(created))  # «30 ноября 2026, 14:05»
    # The same Russian browser with the page in English: the page's language, not the browser's.
    await page.evaluate("localStorage.setItem('sendpy.lang', 'en')")
    await page.reload()
    local = created.astimezone(MOSCOW)
    english = f"{local:%B} {local.day}, {local.year}, {local.hour % 12 or 12}:{local:%M} {local:%p}"
    await expect(page.get_by_role("row").filter(has_text="скрипт").get_by_role("cell").nth(2)).to_have_text(english)


def test_the_last_attempts_reply_is_the_servers_words_and_the_count_is_data() -> None:
    claimed = Claimed(7, "ann@example.com", {}, 10)
    result = RetryPolicy(max_attempts=10).outcome(claimed, Reply(ReplyKind.RETRY, 421, "4.7.0 busy"))
    assert (result.status, result.reply) == ("failed", "421 4.7.0 busy")


async def test_attempts_are_said_with_russian_plurals(
    ru: RussianPage, db: asyncpg.Pool, api: httpx.AsyncClient, clean_sink: SmtpSink  # noqa: F811
) -> None:
    page = ru.page
    auth = await sign_up(page, db)
    sender = await make_sender(api, auth, clean_sink)
    counts = {"one@example.com": 1, "two@example.com": 2, "five@example.com": 5, "ten@example.com": 10,
              "twentyone@example.com": 21, "zero@example.com": 0}
    campaign_id = await draft(api, auth, sender, addresses("x", 1))
    await sending(db, campaign_id, [(email, "failed" if n else "pending", "421 4.7.0 busy" if n else None, n)
                                    for email, n in counts.items()])
    await page.goto(f"/#/campaign/{campaign_id}")
    await expect(page.get_by_role("columnheader", name="Попытки")).to_be_visible()
    table = page.locator("#recipients")
    def row(email: str) -> Locator:
        return table.locator("tr").filter(has=page.get_by_role("cell", name=email, exact=True))

    for email, said in [("one", "1 попытка"), ("two", "2 попытки"), ("five", "5 попыток"), ("ten", "10 попыток"),
                        ("twentyone", "21 попытка"), ("zero", "—")]:
        await expect(row(f"{email}@example.com").locator("td").last).to_have_text(said)
    await expect(row("ten@example.com")).to_contain_text("421 4.7.0 busy")
    await expect(table).not_to_contain_text("gave up")


async def test_a_correction_that_does_not_read_keeps_the_working_file_and_says_why(
    ru: RussianPage, db: asyncpg.Pool, api: httpx.AsyncClient, clean_sink: SmtpSink, tmp_path: Path  # noqa: F811
) -> None:
    page = ru.page
    auth = await sign_up(page, db)
    contacts = tmp_path / "родители.csv"
    contacts.write_bytes("ФИО;Почта\r\nИванова Анна;anna@example.ru\r\nПетров Олег;oleg@example.ru\r\n".encode("cp1251"))
    await page.goto("/#/new")
    await page.locator("#file").set_input_files(str(contacts))
    await expect(page.locator("#stat-valid")).to_have_text("2")
    campaign_id = page.url.split("#/wizard/")[1].split("/")[0]

    await page.get_by_label("Кодировка").select_option("utf-8")
    await page.get_by_role("button", name="Применить").click()
    problem = page.locator("#dialect-error .error")
    await expect(problem).to_have_text(
        "Файл не читается в кодировке utf-8; выберите другую (например, windows-1251 для русского Excel)."
        " Исправление не применено: файл по-прежнему читается с прежними настройками"
        " (точка с запятой, Кириллица, Windows (cp1251)).")
    await expect(problem).to_be_focused()
    await expect(page.get_by_label("Кодировка")).to_have_value("cp1251")  # the settings still in use
    await expect(page.locator("#stat-valid")).to_have_text("2")
    await expect(page.locator("#preview tbody tr").first).to_contain_text("Иванова Анна")
    await shot(page, "walk12-contacts-correction-kept")

    upload_id = (await api.get(f"/v1/campaigns/{campaign_id}", headers=auth)).json()["upload_id"]
    kept: dict[str, Any] = (await api.get(f"/v1/uploads/{upload_id}", headers=auth)).json()
    assert (kept["status"], kept["dialect"]["encoding"], kept["report"]["valid"], kept["error"]) == (
        "ready", "cp1251", 2, None)
    refused = await api.patch(f"/v1/uploads/{upload_id}", headers={**auth, "Accept-Language": "en"},
                              json={"encoding": "utf-8"})
    assert refused.status_code == 400 and refused.json()["error"]["message"].startswith("The file cannot be read")
    assert (await api.get(f"/v1/uploads/{upload_id}", headers=auth)).json()["status"] == "ready"
    preview = await api.post(f"/v1/campaigns/{campaign_id}/preview", headers=auth, json={"row": 2})
    assert preview.status_code == 200 and preview.json()["email"] == "oleg@example.ru", preview.text
