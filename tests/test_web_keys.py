"""API keys in Russian with the keyboard: a key needs a name, is shown once with a copy button,
and is revoked only after a confirmation that names it."""

from __future__ import annotations

import asyncpg
import httpx
from playwright.async_api import expect

from tests.test_web_imap import RussianPage, ru, sign_up  # noqa: F401  (ru is a fixture)


async def test_keys_are_named_copied_and_revoked_after_asking(ru: RussianPage, db: asyncpg.Pool) -> None:  # noqa: F811
    page = ru.page
    await page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    await sign_up(page, db)
    await page.goto("/#/keys")
    name = page.get_by_label("Название ключа")
    await name.press("Enter")  # no name: said, and the field is where to type it
    await expect(page.locator("#create-error")).to_contain_text("Назовите ключ")
    await expect(name).to_be_focused()
    await name.fill("скрипт отчётов")
    await name.press("Enter")
    notice = page.locator("#new-key")
    await expect(notice).to_be_focused()
    key = await page.locator("#new-key-value").inner_text()
    assert key.startswith("sp_")
    await page.keyboard.press("Tab")
    await expect(page.get_by_role("button", name="Скопировать")).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(page.locator("#copy-status")).to_have_text("Скопировано.")
    assert await page.evaluate("navigator.clipboard.readText()") == key
    row = page.get_by_role("row").filter(has_text="скрипт отчётов")
    await expect(row).to_contain_text("не использовался")

    await page.get_by_role("button", name="Отозвать ключ скрипт отчётов").press("Enter")
    asked = page.get_by_role("dialog", name="Отозвать API-ключ?")  # the page's own, not confirm()
    await expect(asked).to_contain_text("скрипт отчётов")
    await expect(asked).to_contain_text(key[:11])
    await asked.get_by_role("button", name="Отмена").press("Enter")
    await expect(row).to_be_visible()  # «Отмена»: nothing revoked
    await page.get_by_role("button", name="Отозвать ключ скрипт отчётов").press("Enter")
    await asked.get_by_role("button", name="Отозвать").press("Enter")
    await expect(row).to_have_count(0)
    await expect(page.get_by_role("heading", name="API-ключи")).to_be_focused()
    async with httpx.AsyncClient(base_url=page.url.split("/#")[0]) as client:
        assert (await client.get("/v1/campaigns", headers={"Authorization": f"Bearer {key}"})).status_code == 401


async def test_a_key_without_a_name_is_refused_by_the_api(api: httpx.AsyncClient, api_key: str) -> None:
    refused = await api.post("/v1/api-keys", json={"name": "   "}, headers={"Authorization": f"Bearer {api_key}",
                                                                            "Accept-Language": "ru"})
    assert refused.status_code == 400 and refused.json()["error"]["field"] == "name"
