"""What the final Russian keyboard walk of issue 12 found on the campaign pages: numbers and
percentages written one way in each language («2 755», «36 %»; "2,755", "36%"); a scheduled
campaign says when it starts without «запланирована Запланирована» and, instead of an empty list,
that its recipients are read from the file then and how many; a recipient skipped for the
suppression list shows no attempt; a search that finds nobody says so with a way back; the list
says where its order comes from; «Осталось меньше минуты», not «примерно меньше минуты».
"""

from __future__ import annotations

import csv
import datetime as dt
import io

import asyncpg
import httpx
from playwright.async_api import Locator, expect

from sendpy.devstack.smtp_sink import SmtpSink
from tests.browser import russian_draft
from tests.test_a11y import serious_violations
from tests.test_web_e2e import shot
from tests.test_web_imap import RussianPage, ru  # noqa: F401  (ru is a fixture)
from tests.test_web_walk12_wizard import SCHOOL
from tests.test_web_wizard_edges import MOSCOW, addresses, russian_date, sending

NBSP = "\u00a0"


async def test_numbers_and_percentages_are_written_one_way_in_each_language(
    ru: RussianPage, db: asyncpg.Pool, api: httpx.AsyncClient, clean_sink: SmtpSink  # noqa: F811
) -> None:
    page = ru.page
    _, _, campaign_id = await russian_draft(page, db, api, clean_sink, addresses("n", 3), {"per_minute": 20,
                                                                                           "per_day": 500})
    await sending(db, campaign_id, [(f"n{n}@example.com", "sent" if n < 1000 else "pending", None, 0)
                                    for n in range(2755)], dt.timedelta(hours=1))
    await page.goto(f"/#/campaign/{campaign_id}")
    await expect(page.locator("#percent")).to_have_text(f"36{NBSP}%")  # 1,000 of 2,755
    await expect(page.locator("#count-sent")).to_have_text(f"1{NBSP}000")
    await expect(page.locator("#count-pending")).to_have_text(f"1{NBSP}755")
    await page.goto("/#/campaigns")
    await expect(page.locator(f'[data-progress="{campaign_id}"]')).to_contain_text(
        f"отправлено 1{NBSP}000 из 2{NBSP}755 (36{NBSP}%)")

    await page.evaluate("localStorage.setItem('sendpy.lang', 'en')")
    await page.goto(f"/#/campaign/{campaign_id}")
    await page.reload()
    await expect(page.locator("#percent")).to_have_text("36%")
    await expect(page.locator("#count-sent")).to_have_text("1,000")
    await page.goto("/#/campaigns")
    await expect(page.locator(f'[data-progress="{campaign_id}"]')).to_contain_text("sent 1,000 of 2,755 (36%)")


async def test_a_scheduled_campaign_says_when_it_starts_once_and_who_it_will_reach(
    ru: RussianPage, db: asyncpg.Pool, api: httpx.AsyncClient, clean_sink: SmtpSink  # noqa: F811
) -> None:
    page = ru.page
    contacts = b"email\nann@example.com\nbob@example.com\ncat@example.com\nANN@example.com\nnot-an-address\n"
    auth, _, campaign_id = await russian_draft(page, db, api, clean_sink, contacts, SCHOOL, name="Напоминание о собрании")
    when = (dt.datetime.now(MOSCOW) + dt.timedelta(days=2)).replace(hour=9, minute=30, second=0, microsecond=0)
    scheduled = await api.post(f"/v1/campaigns/{campaign_id}/schedule", headers=auth, json={"at": when.isoformat()})
    assert scheduled.status_code == 200, scheduled.text
    await page.set_viewport_size({"width": 375, "height": 812})
    await page.goto(f"/#/campaign/{campaign_id}")
    await expect(page.locator("#status")).to_have_text("запланирована")
    line = page.locator("#state-line")
    await expect(line).to_have_text(
        f"запланирована Отправка начнётся {russian_date(when)} (ваш часовой пояс: Москва, стандартное время (UTC+3)).")
    later = page.locator("#recipients-later")
    await expect(later).to_have_text("Получатели будут прочитаны из файла контактов, когда начнётся отправка,"
                                     " и тогда появятся здесь. Писем будет: 3.")
    # No empty table, no «Показано: 0.», no search over nobody.
    await expect(page.locator("#recipient-list")).to_be_hidden()
    await expect(page.get_by_text("Показано: 0.")).to_have_count(0)
    await expect(page.get_by_label("Поиск по адресу")).to_be_hidden()
    assert await page.evaluate("document.documentElement.scrollWidth") <= 375
    assert await serious_violations(page, "a scheduled campaign at 375 px") == []
    await shot(page, "walk12a-375-campaign-scheduled")

    # Sent now, its recipients are listed as usual.
    await page.get_by_role("button", name="Отправить сейчас").press("Enter")
    await page.get_by_role("dialog", name="Отправить рассылку сейчас?").get_by_role(
        "button", name="Отправить сейчас").press("Enter")
    await expect(page.locator("#recipient-list")).to_be_visible()
    await expect(later).to_be_hidden()


async def test_skipped_recipients_show_no_attempts_and_an_empty_search_says_so_with_a_way_back(
    ru: RussianPage, db: asyncpg.Pool, api: httpx.AsyncClient, clean_sink: SmtpSink  # noqa: F811
) -> None:
    page = ru.page
    auth, _, campaign_id = await russian_draft(page, db, api, clean_sink, addresses("r", 3), {"per_minute": 20})
    # As the workers leave them: one suppressed since loading (skipped when claimed, the claim counted),
    # one tried twice, one to go — the last of the campaign, due within seconds.
    await sending(db, campaign_id, [("gone@example.com", "skipped", "suppressed", 1),
                                    ("busy@example.com", "failed", "421 4.7.0 busy", 2),
                                    ("next@example.com", "pending", None, 0)])
    await page.goto(f"/#/campaign/{campaign_id}")
    table = page.locator("#recipients")

    def attempts(email: str) -> Locator:
        return table.locator("tr").filter(has=page.get_by_role("cell", name=email, exact=True)).locator("td").last

    await expect(attempts("gone@example.com")).to_have_text("—")
    await expect(attempts("busy@example.com")).to_have_text("2 попытки")
    await expect(page.locator("#rate")).to_contain_text("Осталось меньше минуты")
    assert "примерно меньше" not in await page.locator("#rate").inner_text()
    export = await api.get(f"/v1/campaigns/{campaign_id}/export.csv?lang=ru", headers=auth)
    rows = {row[1]: row for row in csv.reader(io.StringIO(export.content.decode("utf-8-sig")), delimiter=";")}
    assert (rows["gone@example.com"][4], rows["busy@example.com"][4]) == ("0", "2")
    # Where the order of the list (and of the sending) comes from.
    await expect(page.locator("#order-hint")).to_have_text(
        "# — порядок строк файла (без повторов и строк без адреса). Письма уходят пачками, по нескольку"
        " пачек сразу, поэтому приходят не строго в этом порядке.")

    search = page.get_by_label("Поиск по адресу")
    await search.fill("ivanov")
    shown = page.locator("#shown")
    await expect(shown).to_have_text("Ничего не найдено по запросу «ivanov».")
    await expect(table.locator("tr")).to_have_count(0)
    clear = page.get_by_role("button", name="Сбросить поиск")
    assert await serious_violations(page, "a search that found nobody") == []
    await clear.press("Enter")
    await expect(table.locator("tr")).to_have_count(3)
    await expect(search).to_have_value("")
    await expect(search).to_be_focused()
    await expect(clear).to_be_hidden()
    await expect(shown).to_have_text("Показано 3 из 3.")
    await page.get_by_label("Статус").select_option(label="возврат")
    await expect(shown).to_have_text("Получателей в состоянии «возврат» нет.")
    await expect(clear).to_be_hidden()  # nothing searched: the state is chosen right there
