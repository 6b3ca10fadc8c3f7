"""What the fourth Russian keyboard-only walk found on the contacts step (issue 12): a correction
that leaves no valid address, or far fewer, is not applied silently — the server keeps the last good
reading, durably, says why, and applies it only when asked — and a preview read in the wrong
encoding is said to look garbled.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import asyncpg
import httpx
import pytest
from playwright.async_api import expect

from sendpy.devstack.smtp_sink import SmtpSink
from shared import uploads
from shared.contacts import detect
from shared.errors import InputError
from tests.helpers import make_upload
from tests.test_web_e2e import shot
from tests.test_web_imap import RussianPage, ru, sign_up  # noqa: F401  (ru is a fixture)


@pytest.fixture
def auth(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


CITIES = ("Москва", "Казань", "Тверь", "Пермь", "Самара")


def parents(rows: int) -> bytes:
    """A Russian Excel export: `;`, Windows-1251, the address in the second of three columns."""
    lines = ["ФИО;Почта;Город"] + [f"Иванова Анна {n};anna{n}@example.ru;{CITIES[n % 5]}" for n in range(rows)]
    return ("\r\n".join(lines) + "\r\n").encode("cp1251")


async def test_a_correction_that_loses_the_addresses_is_refused_and_the_reading_kept(
    api: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    upload = await make_upload(api, auth, parents(300))
    assert upload["report"]["valid"] == 300 and upload["dialect"]["email_column"] == 1
    city = await api.patch(f"/v1/uploads/{upload['id']}", json={"email_column": 2},
                           headers={**auth, "Accept-Language": "ru"})
    assert city.status_code == 400, city.text
    error = city.json()["error"]
    assert error["code"] == "correction_loses_addresses"
    assert error["message"] == ("С этими настройками в столбце адресов «Город» верных адресов 0 на 300 строк,"
                                " а с нынешними — 300; настройки не изменены.")
    kept = (await api.get(f"/v1/uploads/{upload['id']}", headers=auth)).json()
    assert kept["status"] == "ready" and kept["dialect"] == upload["dialect"] and kept["report"]["valid"] == 300
    # Asked for, it is applied; a correction that keeps the addresses needs no asking.
    forced = await api.patch(f"/v1/uploads/{upload['id']}", json={"email_column": 2, "accept_fewer": True},
                             headers=auth)
    assert forced.status_code == 200 and forced.json()["report"]["valid"] == 0
    back = await api.patch(f"/v1/uploads/{upload['id']}", json={"email_column": 1}, headers=auth)
    assert back.status_code == 200 and back.json()["report"]["valid"] == 300
    wrong = await api.patch(f"/v1/uploads/{upload['id']}", json={"accept_fewer": "yes"}, headers=auth)
    assert wrong.status_code == 400 and wrong.json()["error"]["field"] == "accept_fewer"


async def test_the_problem_rows_download_has_the_rows_other_columns_and_the_repeats(
    api: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    data = ("ФИО;Почта;Город\r\nАнна;anna@example.ru;Тверь\r\nОлег;не адрес;Казань\r\n"
            "Анна Ивановна;ANNA@example.ru;Пермь\r\n").encode("cp1251")
    upload = await make_upload(api, auth, data)
    answer = await api.get(f"/v1/uploads/{upload['id']}/problems.csv?lang=ru", headers=auth)
    table = list(csv.reader(io.StringIO(answer.content.decode("utf-8-sig")), delimiter=";"))
    assert table[0] == ["Строка файла", "Значение", "Что не так", "ФИО", "Город"]
    assert table[1][:2] + table[1][3:] == ["3", "не адрес", "Олег", "Казань"]
    assert table[2] == ["4", "ANNA@example.ru", "повтор строки 2", "Анна Ивановна", "Пермь"]
    english = await api.get(f"/v1/uploads/{upload['id']}/problems.csv?lang=en", headers=auth)
    assert list(csv.reader(io.StringIO(english.content.decode("utf-8-sig"))))[2][2] == "repeats row 2"


def test_a_file_counted_by_a_worker_is_judged_on_its_first_rows() -> None:
    sample = parents(50)
    good = detect(sample, complete=False)
    before = {"status": "ready", "report": None, "columns": [c.__dict__ for c in good.columns],
              "dialect": good.dialect.__dict__}
    with pytest.raises(InputError) as refused:
        uploads._refuse_a_loss(before, sample, detect(sample, complete=False, overrides={"email_column": 2}), None)
    assert refused.value.params["before"] == 50 and refused.value.params["valid"] == 0
    uploads._refuse_a_loss(before, sample, detect(sample, complete=False, overrides={"has_header": True}), None)


async def test_the_contacts_step_keeps_the_working_reading_and_says_why_over_a_reload(
    ru: RussianPage, db: asyncpg.Pool, api: httpx.AsyncClient, clean_sink: SmtpSink, tmp_path: Path  # noqa: F811
) -> None:
    page = ru.page
    await sign_up(page, db)
    contacts = tmp_path / "родители.csv"
    contacts.write_bytes(parents(3000))
    await page.goto("/#/new")
    await page.locator("#file").set_input_files(str(contacts))
    await expect(page.locator("#stat-valid")).to_have_text("3\u00a0000", timeout=30_000)
    await expect(page.locator("#encoding-warning")).to_have_count(0)
    column = page.get_by_label("Столбец с адресами")

    # The column «Город»: refused, said why, focus on the reason; the addresses stay.
    await column.select_option(label="Город")
    await page.get_by_role("button", name="Применить").press("Enter")
    warning = page.locator("#dialect-warning")
    await expect(warning.locator("p")).to_have_text(
        "С этими настройками в столбце адресов «Город» верных адресов 0 на 3\u00a0000 строк, а с нынешними — 3\u00a0000;"
        " настройки не изменены.")
    await expect(warning.locator("p")).to_be_focused()
    await expect(column.locator("option:checked")).to_have_text("Почта")
    await expect(page.locator("#stat-valid")).to_have_text("3\u00a0000")
    await shot(page, "walk-s4-contacts-column-refused")
    await page.reload()
    await expect(page.get_by_label("Столбец с адресами").locator("option:checked")).to_have_text("Почта")
    await expect(page.locator("#stat-valid")).to_have_text("3\u00a0000")

    # The separator «,»: no address column; refused in its own words, and still there after a reload.
    await page.get_by_label("Разделитель").select_option(",")
    await page.get_by_role("button", name="Применить").press("Enter")
    await expect(warning.locator("p")).to_have_text(
        "С разделителем «запятая» ни в одном столбце нет адресов — скорее всего, разделитель не тот."
        " Исправление не применено: файл по-прежнему читается с прежними настройками"
        " (точка с запятой, Кириллица, Windows (cp1251)).")
    await expect(warning.locator("p")).to_be_focused()
    await page.reload()
    await expect(page.get_by_label("Разделитель")).to_have_value(";")
    await expect(page.locator("#stat-valid")).to_have_text("3\u00a0000")

    # Asked for, the column is applied, with the way back.
    await page.get_by_label("Столбец с адресами").select_option(label="Город")
    await page.get_by_role("button", name="Применить").press("Enter")
    await warning.get_by_role("button", name="Всё равно применить").press("Enter")
    await expect(warning.locator("p")).to_have_text("Применено: верных адресов теперь 0 вместо 3\u00a0000.")
    await expect(page.locator("#stat-valid")).to_have_text("0")
    await warning.get_by_role("button", name="Вернуть прежние настройки (точка с запятой, Кириллица, Windows (cp1251), столбец «").press("Enter")
    await expect(page.locator("#stat-valid")).to_have_text("3\u00a0000")

    # KOI-8 for a Windows-1251 file: the addresses are all there, but the preview is garbled.
    await page.get_by_label("Кодировка").select_option("koi8-r")
    await page.get_by_role("button", name="Применить").press("Enter")
    garbled = page.locator("#encoding-warning")
    await expect(garbled).to_contain_text("Большинство слов в образце выглядят как набор странных букв")
    await expect(garbled).to_contain_text("кодировка Кириллица, КОИ-8 (koi8-r) не подходит этому файлу")
    await expect(garbled).to_be_focused()
    await shot(page, "walk-s4-contacts-garbled")
    await page.get_by_label("Кодировка").select_option("cp1251")
    await page.get_by_role("button", name="Применить").press("Enter")
    await expect(page.locator("#preview tbody tr").first).to_contain_text("Иванова Анна 0")
    await expect(garbled).to_have_count(0)
