"""The suppressions page in a real browser, in Russian: an import's bad lines named by number and
reason, an address with a "/" removed, the export in the page's language."""

from __future__ import annotations

import asyncpg
import httpx
from playwright.async_api import expect

from tests.test_web_imap import RussianPage, ru, sign_up

__all__ = ["ru"]  # the fixture, shared with the IMAP page's tests


async def test_import_problems_by_line_removing_a_slash_address_and_a_russian_export(
    ru: RussianPage, db: asyncpg.Pool, api: httpx.AsyncClient,
) -> None:
    page = ru.page
    auth = await sign_up(page, db)
    added = await api.post("/v1/suppressions", headers=auth, json={"emails": ["a/b@example.com"]})
    assert added.status_code == 201, added.text
    await page.goto("/#/suppressions")
    await expect(page.get_by_role("heading", name="Список исключений")).to_be_visible()

    await page.get_by_label("Загрузить CSV или текстовый файл", exact=False).set_input_files(files=[{
        "name": "list.csv", "mimeType": "text/csv",
        "buffer": b"email\nann@example.com\nnot an address\nbob@exa mple.com\n"}])
    await page.get_by_role("button", name="Загрузить", exact=True).click()
    notice = page.locator("#result .notice")
    await expect(notice).to_contain_text("Загружено новых: 1")
    await expect(notice).to_contain_text("строка 3 (not an address): в строке нет адреса электронной почты")
    await expect(notice).to_contain_text("строка 4 (bob@exa mple.com): неправильный адрес электронной почты")

    row = page.get_by_role("row").filter(has_text="a/b@example.com")
    await row.get_by_role("button", name="Удалить").click()
    await page.get_by_role("dialog").get_by_role("button", name="Убрать из списка").click()  # the page's question
    await expect(notice).to_contain_text("a/b@example.com убран из списка.")
    listed = (await api.get("/v1/suppressions", headers=auth)).json()
    assert [i["email"] for i in listed["items"]] == ["ann@example.com"]

    link = page.get_by_role("link", name="Скачать CSV")
    assert (await link.get_attribute("href") or "").endswith("?lang=ru")
    async with page.expect_download() as downloading:
        await link.click()
    path = await (await downloading.value).path()
    assert path is not None
    assert path.read_bytes().decode("utf-8-sig").startswith("Эл. почта;Причина;")
