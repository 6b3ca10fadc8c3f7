"""The suppressions page's search in a real browser, in Russian: the hint says what a search can
be (the start of an address, or a domain after @), a domain finds its addresses, and too short a
search gets the server's words, not an empty list."""

from __future__ import annotations

import asyncpg
import httpx
from playwright.async_api import expect

from tests.test_web_imap import RussianPage, ru, sign_up

__all__ = ["ru"]  # the fixture


async def test_the_search_hint_a_domain_search_and_a_search_too_short(
    ru: RussianPage, db: asyncpg.Pool, api: httpx.AsyncClient,
) -> None:
    page = ru.page
    auth = await sign_up(page, db)
    added = await api.post("/v1/suppressions", headers=auth, json={
        "emails": ["anna@mail.ru", "boris@mail.ru", "ivan.petrov@gmail.com", "olga@example.com"]})
    assert added.status_code == 201, added.text
    await page.goto("/#/suppressions")
    field = page.get_by_role("searchbox", name="Найти адрес")
    await expect(field).to_have_accessible_description(
        "Введите начало адреса (ivan.petrov) или домен после @ (@mail.ru), не меньше 2 символов.")
    await expect(page.get_by_text("Адресов: 4")).to_be_visible()

    await field.fill("@mail.ru")
    await field.press("Enter")
    rows = page.get_by_role("row")
    await expect(rows.filter(has_text="anna@mail.ru")).to_be_visible()
    await expect(rows.filter(has_text="boris@mail.ru")).to_be_visible()
    await expect(rows.filter(has_text="olga@example.com")).to_have_count(0)
    await expect(page.get_by_text("Адресов:")).to_have_count(0)  # a search is not counted

    field = page.get_by_role("searchbox", name="Найти адрес")
    await field.fill("@m")
    await field.press("Enter")
    await expect(page.get_by_role("alert")).to_have_text(
        "Введите хотя бы 2 символа адреса или домена после @ (например, @mail.ru).")
