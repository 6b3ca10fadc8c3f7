"""The suppressions page's «добавить» as the fourth walk used it (issue 12): one bad line no longer
rejects the batch — the valid lines are saved, each bad one is listed whole with its line and
reason, kept in the field to correct, and focus goes to that message."""

from __future__ import annotations

import asyncpg
import httpx
from playwright.async_api import expect

from tests.test_a11y import serious_violations
from tests.test_web_imap import RussianPage, ru, sign_up  # noqa: F401  (ru is a fixture)


async def test_partial_adds_the_valid_addresses_and_lists_the_others(
    ru: RussianPage, db: asyncpg.Pool, api: httpx.AsyncClient  # noqa: F811
) -> None:
    auth = await sign_up(ru.page, db)
    emails = ["ann@example.com", "не адрес", "bob@example.com"]
    whole = await api.post("/v1/suppressions", headers=auth, json={"emails": emails})
    assert whole.status_code == 400  # without `partial`, as before: nothing is added
    assert (await api.get("/v1/suppressions", headers=auth)).json()["items"] == []
    part = await api.post("/v1/suppressions", headers={**auth, "Accept-Language": "ru"},
                          json={"emails": emails, "partial": True})
    assert part.status_code == 201, part.text
    assert part.json()["added"] == 2
    assert [(p["index"], p["value"]) for p in part.json()["problems"]] == [(1, "не адрес")]
    none = await api.post("/v1/suppressions", headers=auth, json={"emails": ["не адрес"], "partial": True})
    assert none.status_code == 400 and none.json()["error"]["code"] == "invalid_email"
    wrong = await api.post("/v1/suppressions", headers=auth, json={"emails": [], "partial": "yes"})
    assert wrong.status_code == 400 and wrong.json()["error"]["field"] == "partial"


async def test_adding_by_hand_saves_the_good_lines_and_says_which_were_left_out(
    ru: RussianPage, db: asyncpg.Pool, api: httpx.AsyncClient  # noqa: F811
) -> None:
    page = ru.page
    auth = await sign_up(page, db)
    await page.goto("/#/suppressions")
    field = page.get_by_label("Адреса (по одному в строке)")
    await field.fill("ann@example.com\nне адрес\nbob@example.com, cat@example.com")
    await page.get_by_role("button", name="Сохранить").press("Enter")
    notice = page.locator("#result .notice")
    await expect(notice).to_contain_text("Добавлено: 3.")
    await expect(notice).to_contain_text("Пропущены строки: строка 2 (не адрес):")
    await expect(notice).to_be_focused()
    await expect(page.get_by_label("Адреса (по одному в строке)")).to_have_value("не адрес")
    listed = (await api.get("/v1/suppressions", headers=auth)).json()
    assert sorted(i["email"] for i in listed["items"]) == ["ann@example.com", "bob@example.com", "cat@example.com"]
    # Nothing valid at all: the reason, quoted whole, with focus on it.
    await page.get_by_role("button", name="Сохранить").press("Enter")
    error = page.locator("#result .error")
    await expect(error).to_contain_text("«не адрес»")
    await expect(error).to_be_focused()
    assert await serious_violations(page, "suppressions, lines left out") == []
