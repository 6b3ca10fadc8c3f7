"""The wizard's sender step in Russian: the only sender is chosen for the person, and after
«Проверить» focus lands on the answer."""

from __future__ import annotations

import socket

import asyncpg
import httpx
from playwright.async_api import expect

from tests.test_web_imap import RussianPage, ru, sign_up  # noqa: F401  (ru is a fixture)


async def test_the_only_sender_is_chosen_and_a_check_answers_where_focus_goes(
    ru: RussianPage, db: asyncpg.Pool, api: httpx.AsyncClient  # noqa: F811
) -> None:
    page = ru.page
    auth = await sign_up(page, db)
    with socket.socket() as closed:  # a port nothing listens on: the check fails, with the reason
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    sender = (await api.post("/v1/senders", headers=auth, json={
        "from_email": "only@example.org", "from_name": "Школа", "host": "127.0.0.1", "port": port,
        "security": "starttls", "password": "secret-pass"})).json()
    draft = (await api.post("/v1/campaigns", headers=auth, json={"subject": "Собрание"})).json()
    await page.goto(f"/#/wizard/{draft['id']}/2")
    only = page.get_by_role("radio", name="only@example.org", exact=False)
    await expect(only).to_be_checked()
    chosen = (await api.get(f"/v1/campaigns/{draft['id']}", headers=auth)).json()
    assert chosen["sender_id"] == sender["id"]  # saved, not only ticked

    await page.get_by_role("button", name="Проверить: only@example.org").press("Enter")
    answer = page.locator("#verify-result")
    await expect(answer).to_be_focused()
    await expect(answer).not_to_be_empty()
