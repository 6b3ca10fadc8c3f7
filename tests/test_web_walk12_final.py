"""What the last Russian keyboard walk of issue 12 found, on the real stack: «Отправить сейчас» asks
with the plan from now; unscheduling keeps the time and says the campaign is a draft again; no badge
and sentence repeat a word; «Показано 200 из 2 755»; a contact file with no valid address stops
«Далее»; the problem counts add up; an encoding and a column changed at once keep the column; a
field is inserted into the subject at the caret; a test address's problem names its own field;
senders say a check failed, are «изменены» when they work, forget an old server answer once edited,
and say before asking that a campaign holds them; tables are cards at 375 px; log-in and password
problems stay at their fields and go as they are typed.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from pathlib import Path
from urllib.parse import unquote

import asyncpg
import httpx
from playwright.async_api import Page, expect

from sendpy.devstack.smtp_sink import SmtpSink
from tests.browser import russian_draft
from tests.test_a11y import serious_violations
from tests.test_web_e2e import shot
from tests.test_web_imap import RussianPage, ru, sign_up  # noqa: F401  (ru is a fixture)
from tests.test_web_walk12_wizard import SCHOOL
from tests.test_web_walk_fixes import defer, draft
from tests.test_web_wizard_edges import MOSCOW, addresses, sending

NBSP = "\u00a0"


async def short_date(page: Page, at: dt.datetime) -> str:
    """«3 дек.»: a day as the plan writes it (plan.js moment)."""
    return str(await page.evaluate("(ms) => new Date(ms).toLocaleDateString('ru', {day: 'numeric', month: 'short'})",
                                   at.timestamp() * 1000))


async def test_send_now_asks_with_the_plan_from_now_and_unscheduling_keeps_the_time(
    ru: RussianPage, db: asyncpg.Pool, api: httpx.AsyncClient, clean_sink: SmtpSink  # noqa: F811
) -> None:
    page = ru.page
    auth, _, campaign_id = await russian_draft(page, db, api, clean_sink, addresses("p", 600), SCHOOL)
    when = (dt.datetime.now(MOSCOW) + dt.timedelta(days=3)).replace(hour=9, minute=0, second=0, microsecond=0)
    assert (await api.post(f"/v1/campaigns/{campaign_id}/schedule", headers=auth,
                           json={"at": when.isoformat()})).status_code == 200
    await page.goto(f"/#/campaign/{campaign_id}")
    await expect(page.locator("#reason")).to_contain_text(await short_date(page, when + dt.timedelta(days=1)))
    await page.get_by_role("button", name="Отправить сейчас").press("Enter")
    question = page.locator("#send-now-text")
    # 600 at 500 a day from now: the last ones tomorrow — not the scheduled plan's days.
    tomorrow = await short_date(page, dt.datetime.now(MOSCOW) + dt.timedelta(days=1))
    await expect(question).to_contain_text("последнее письмо около ")
    await expect(question).to_contain_text(tomorrow)
    for later in (when, when + dt.timedelta(days=1)):
        assert await short_date(page, later) not in await question.inner_text()
    await shot(page, "walk12f-send-now-plan-from-now")
    await page.keyboard.press("Escape")
    await expect(page.get_by_role("button", name="Отправить сейчас")).to_be_focused()

    await page.get_by_role("button", name="Отменить расписание и изменить").press("Enter")
    note = page.locator("#unscheduled")
    await expect(note).to_have_text("Расписание снято: рассылка снова черновик. Время, на которое она была"
                                    " запланирована, осталось в поле ниже — его можно изменить и запланировать снова.")
    await expect(note).to_be_focused()
    await expect(page.get_by_label("Или отправить позже")).to_have_value(when.strftime("%Y-%m-%dT%H:%M"))
    # A review opened again later has nothing to say about it.
    await page.reload()
    await expect(page.get_by_role("heading", name="Сводка")).to_be_visible()
    await expect(note).to_be_hidden()


def repeated(badge: str, sentence: str) -> bool:
    """Whether the sentence starts with a word of the badge («ждёт очереди Ждёт своей очереди»)."""
    first = re.split(r"[\s,:;.—]+", sentence.strip().lower())[0][:4]
    return bool(first) and any(word[:4] == first for word in badge.lower().split())


async def test_no_state_badge_is_repeated_by_its_sentence_and_the_list_says_of_how_many(
    ru: RussianPage, db: asyncpg.Pool, api: httpx.AsyncClient, clean_sink: SmtpSink  # noqa: F811
) -> None:
    page = ru.page
    auth, sender, first = await russian_draft(page, db, api, clean_sink, addresses("a", 3), SCHOOL, name="Осенние")
    await sending(db, first, [(f"a{n}@example.com", "sent" if n < 200 else "pending", None, 0) for n in range(450)],
                  dt.timedelta(minutes=1))
    second = await draft(api, auth, sender, addresses("b", 3), name="Зимние")
    await sending(db, second, [(f"b{n}@example.com", "pending", None, 0) for n in range(3)])
    badge, reason = page.locator("#status"), page.locator("#reason")

    async def check(campaign_id: str, state: str) -> None:
        await page.goto(f"/#/campaign/{campaign_id}")
        await expect(badge).to_have_text(state)
        await expect(reason).not_to_be_empty()
        assert not repeated(state, await reason.inner_text()), (state, await reason.inner_text())

    await check(second, "ждёт очереди")
    await expect(reason).to_contain_text("Через этого же отправителя сначала уходит рассылка «Осенние».")
    # A batch whose emails are still out with the server: what happens, and that nothing is to be done.
    await defer(db, first, sender["id"], dt.timedelta(minutes=3), "retry")
    await check(first, "отправляется")
    await expect(reason).to_contain_text("Часть писем сейчас уже передаётся почтовому серверу; около ")
    await expect(reason).to_contain_text("Делать ничего не нужно.")
    # «Показано 100 из 450», and of the state chosen.
    await expect(page.locator("#shown")).to_have_text("Показано 100 из 450.")
    await page.get_by_label("Статус").select_option(label="отправлено")
    await expect(page.locator("#shown")).to_have_text("Показано 100 из 200.")
    for status, state, why in (("paused", "приостановлена", "Часть рассылки не удалось обработать (x); нажмите"
                                " «Продолжить», чтобы повторить. / Part of it could not be processed."),
                               ("cancelled", "отменена", None), ("finished", "завершена", None)):
        async with db.acquire() as conn:
            await conn.execute("UPDATE campaigns SET status = $2, status_reason = $3 WHERE id = $1",
                               uuid.UUID(second), status, why)
            if status == "finished":
                await conn.execute("UPDATE recipients SET status = 'sent' WHERE campaign_id = $1", uuid.UUID(second))
        await page.goto(f"/#/campaign/{second}")
        await page.reload()  # the same address: the page is drawn again
        await expect(badge).to_have_text(state)
        assert not repeated(state, await reason.inner_text()), (state, await reason.inner_text())
    when = (dt.datetime.now(MOSCOW) + dt.timedelta(days=2)).isoformat()
    scheduled = await draft(api, auth, sender, addresses("c", 3))
    assert (await api.post(f"/v1/campaigns/{scheduled}/schedule", headers=auth, json={"at": when})).status_code == 200
    await check(scheduled, "запланирована")


async def test_contacts_step_numbers_add_up_keep_a_column_and_stop_without_addresses(
    ru: RussianPage, db: asyncpg.Pool, api: httpx.AsyncClient, clean_sink: SmtpSink, tmp_path: Path  # noqa: F811
) -> None:
    page = ru.page
    auth = await sign_up(page, db)
    rows = ["ФИО;Почта;Почта родителя"]
    rows += [f"Ученик {n};pupil{n}@example.ru;parent{n}@example.ru" for n in range(30)]
    rows += [f"Ученик {n};pupil{n}@example.ru;parent{n}@example.ru" for n in range(3)]  # 3 repeated
    rows += [f"Без адреса {n};нет;нет" for n in range(25)]  # 25 rows without one
    contacts = tmp_path / "родители 5-Б.csv"
    contacts.write_bytes("\r\n".join(rows).encode("cp1251") + b"\r\n")
    await page.goto("/#/new")
    await page.locator("#file").set_input_files(str(contacts))
    await expect(page.locator("#stat-valid")).to_have_text("30")
    # 20 listed + «ещё 5» = the 25 rows without an address; the download has the 3 repeats as well.
    await expect(page.locator("#report")).to_contain_text("… и ещё 5.")
    link = page.locator("#problems-link")
    await expect(link).to_have_text("Скачать все проблемные строки (CSV): 28 — эти 25 без адреса и 3 повторов адресов")
    campaign_id = page.url.split("#/wizard/")[1].split("/")[0]
    auth_download = await api.get(str(await link.get_attribute("href")), headers=auth)
    disposition = auth_download.headers["content-disposition"]
    assert unquote(disposition.split("filename*=UTF-8''")[1]) == "проблемные-строки-родители 5-Б.csv", disposition

    # Read as KOI8-R the column names are garbled; the encoding and the column changed in one «Применить»
    # keep the column picked (by its place), and the way back names the column it goes back to.
    await page.get_by_label("Кодировка").select_option("koi8-r")
    await page.get_by_role("button", name="Применить", exact=True).press("Enter")
    await expect(page.locator("#encoding-warning")).to_be_visible()
    await page.get_by_label("Кодировка").select_option("cp1251")
    await page.get_by_label("Столбец с адресами").select_option(index=2)
    await page.get_by_role("button", name="Применить", exact=True).press("Enter")
    await expect(page.get_by_label("Столбец с адресами").locator("option:checked")).to_have_text("Почта родителя")
    await expect(page.locator("#stat-valid")).to_have_text("30")

    # The names' column applied anyway: nobody to send to, and «Далее» says so at the column.
    await page.get_by_label("Столбец с адресами").select_option(label="ФИО")
    await page.get_by_role("button", name="Применить", exact=True).press("Enter")
    warning = page.locator("#dialect-warning")
    await warning.get_by_role("button", name="Всё равно применить").press("Enter")
    await expect(page.locator("#stat-valid")).to_have_text("0")
    await expect(warning.get_by_role("button", name="Вернуть прежние настройки (точка с запятой, Кириллица,"
                                     " Windows (cp1251), столбец «Почта родителя»)", exact=True)).to_be_visible()
    await page.get_by_role("button", name="Далее").press("Enter")
    column = page.get_by_label("Столбец с адресами")
    await expect(page.locator("#contacts-problem")).to_have_text(
        "С этими настройками в файле нет ни одного верного адреса — отправлять некому. Выберите выше столбец"
        " с адресами или загрузите другой файл.")
    await expect(column).to_be_focused()
    await expect(column).to_have_attribute("aria-describedby", re.compile("contacts-problem"))
    assert page.url.endswith(f"#/wizard/{campaign_id}/1")
    assert await serious_violations(page, "contacts with no valid address") == []


async def test_a_field_goes_in_at_the_caret_and_a_test_addresss_problem_names_its_field(
    ru: RussianPage, db: asyncpg.Pool, api: httpx.AsyncClient, clean_sink: SmtpSink  # noqa: F811
) -> None:
    page = ru.page
    _, _, campaign_id = await russian_draft(page, db, api, clean_sink, b"email;fio\nann@example.com;Ann\n")
    await page.goto(f"/#/wizard/{campaign_id}/3")
    subject = page.get_by_label("Тема")
    await page.get_by_label("Название рассылки").focus()
    await page.keyboard.press("Tab")  # into the subject: the browser selects all of it
    await expect(subject).to_be_focused()
    assert await subject.evaluate("s => s.selectionStart === 0 && s.selectionEnd === s.value.length")
    await expect(page.locator("#field-target")).to_have_text("вставится в тему")
    await page.locator("#insert-field").focus()
    await page.keyboard.press("Enter")
    await expect(subject).to_have_value("Новости{{ email }}")
    # A selection the person makes is theirs to replace.
    await subject.press("Shift+Home")
    await page.locator("#insert-field").focus()
    await page.keyboard.press("Enter")
    await expect(subject).to_have_value("{{ email }}")

    test_to = page.get_by_label("Адрес для теста")
    await test_to.fill("ann@localhost")
    await page.get_by_role("button", name="Отправить мне тест").press("Enter")
    problem = page.locator("#test-problem")
    await expect(problem).to_contain_text("«ann@localhost» — не адрес электронной почты")
    assert "эл. почта" not in await problem.inner_text()


async def test_senders_say_a_failed_check_forget_old_answers_and_what_holds_them(
    ru: RussianPage, db: asyncpg.Pool, api: httpx.AsyncClient, clean_sink: SmtpSink  # noqa: F811
) -> None:
    page = ru.page
    auth, held, campaign_id = await russian_draft(page, db, api, clean_sink, addresses("h", 3), name="Собрание")
    async with db.acquire() as conn:
        await conn.execute("UPDATE campaigns SET status = 'paused' WHERE id = $1", uuid.UUID(campaign_id))
    broken = (await api.post("/v1/senders", headers=auth, json={
        "from_email": "broken@example.org", "host": "127.0.0.1", "port": 1, "security": "starttls",
        "password": "x-pass-1"})).json()
    assert (await api.post(f"/v1/senders/{broken['id']}/verify", headers=auth)).status_code == 422
    await page.goto("/#/senders")
    row = page.get_by_role("row").filter(has_text="broken@example.org")
    await expect(row).to_contain_text("проверка не прошла")
    await page.get_by_role("button", name=f"Изменить: {held['from_email']}").press("Enter")
    await expect(page.get_by_role("dialog", name=f"Изменить {held['from_email']}")).to_be_visible()
    await page.keyboard.press("Escape")

    # Held by a paused campaign: said at once, naming it, instead of a question answered by a refusal.
    await page.get_by_role("button", name=f"Удалить: {held['from_email']}").press("Enter")
    result = page.locator("#result")
    await expect(result).to_have_text(
        "Этот адрес пока нельзя удалить. С него отправляется рассылка «Собрание» (приостановлена), и она ещё не"
        " закончена. Отмените её на странице рассылки или дождитесь, пока она закончится, — тогда адрес можно"
        " будет удалить.")
    await expect(page.get_by_role("dialog")).to_have_count(0)
    await expect(result.get_by_role("link", name="«Собрание»")).to_have_attribute("href", f"#/campaign/{campaign_id}")
    refused = await api.delete(f"/v1/senders/{held['id']}", headers={**auth, "Accept-Language": "ru"})
    assert refused.status_code == 409 and "«Собрание»" in refused.json()["error"]["message"], refused.text

    # 375 px: each sender a card, every button on the screen; still a table to a screen reader.
    await page.set_viewport_size({"width": 375, "height": 740})
    assert await page.evaluate("document.documentElement.scrollWidth") <= 375
    for button in await page.locator("#app table button").all():
        box = await button.bounding_box()
        assert box and box["x"] + box["width"] <= 375, await button.inner_text()
    await expect(page.get_by_role("table")).to_have_count(1)
    await expect(page.get_by_role("columnheader")).to_have_count(4)
    assert await serious_violations(page, "senders as cards at 375 px") == []
    await shot(page, "walk12f-375-senders-cards")

    # The wizard's form: a server's refusal goes once the form is corrected.
    await page.set_viewport_size({"width": 1366, "height": 768})
    second = await draft(api, auth, broken, addresses("w", 2))
    await page.goto(f"/#/wizard/{second}/2")
    await expect(page.locator("#sender-list")).to_contain_text("(проверка не прошла)")
    await page.get_by_role("button", name="Изменить: broken@example.org").press("Enter")
    await expect(page.locator("#sender-form-title")).to_have_text("Исправить broken@example.org")
    await page.get_by_role("button", name="Проверить", exact=True).last.press("Enter")
    answer = page.locator("#verify-result .error")
    await expect(answer).to_be_visible(timeout=30_000)
    await page.get_by_label("Порт").fill(str(clean_sink.port))
    await expect(answer).to_have_count(0)


async def test_recipients_are_cards_at_375_px(
    ru: RussianPage, db: asyncpg.Pool, api: httpx.AsyncClient, clean_sink: SmtpSink  # noqa: F811
) -> None:
    page = ru.page
    _, _, campaign_id = await russian_draft(page, db, api, clean_sink, addresses("r", 3))
    await sending(db, campaign_id, [("a-rather-long-address.name@example.com", "failed",
                                     "550 5.1.1 <a-rather-long-address.name@example.com>: Recipient address rejected", 1),
                                    ("b@example.com", "sent", "250 2.0.0 Ok: queued as 4XyZ", 1)])
    await page.set_viewport_size({"width": 375, "height": 740})
    await page.goto(f"/#/campaign/{campaign_id}")
    cell = page.get_by_role("cell", name="550 5.1.1", exact=False)
    await expect(cell).to_be_visible()
    assert await page.evaluate("document.documentElement.scrollWidth") <= 375
    for name in ("ошибка", "550 5.1.1"):
        box = await page.locator("#recipients td").filter(has_text=name).first.bounding_box()
        assert box and box["x"] + box["width"] <= 375, name
    await expect(page.get_by_role("columnheader", name="Ответ сервера")).to_have_count(1)
    assert await serious_violations(page, "recipients as cards at 375 px") == []
    await shot(page, "walk12f-375-recipients-cards")


async def test_log_in_and_password_problems_stay_at_their_fields_until_typed(
    ru: RussianPage, db: asyncpg.Pool, api: httpx.AsyncClient  # noqa: F811
) -> None:
    page = ru.page
    await page.goto("/")
    for mode in ("Зарегистрироваться", "Войти"):
        if mode == "Войти":
            await page.locator("#auth-switch").press("Enter")
        await page.locator("#auth").get_by_role("button", name=mode).press("Enter")
        problem = page.locator("#email-problem")
        await expect(problem).to_have_text("Введите адрес электронной почты.")
        await page.get_by_label("Электронная почта").press_sequentially("ann")
        await expect(problem).to_be_empty()
        await expect(page.get_by_label("Электронная почта")).not_to_have_attribute("aria-invalid", "true")
        await page.get_by_label("Электронная почта").fill("")
    await sign_up(page, db)
    await page.goto("/#/settings")
    await page.get_by_label("Текущий пароль").fill("not the password")
    await page.get_by_label("Новый пароль").fill("another long password")
    await page.get_by_role("button", name="Сохранить").press("Enter")
    problem = page.locator("#current-problem")
    await expect(problem).to_have_text("Текущий пароль указан неверно.")
    await expect(page.get_by_label("Текущий пароль")).to_be_focused()
    await expect(page.locator("#result")).to_be_empty()
    await page.get_by_label("Текущий пароль").press_sequentially("x")
    await expect(problem).to_be_empty()
