"""axe-core on every page and wizard step, in Russian: no serious or critical violation.

axe runs through the DevTools protocol (page.evaluate), so the app's CSP stays as strict as ever.
"""

from __future__ import annotations

import json
from pathlib import Path

import asyncpg
import httpx
from playwright.async_api import Page, expect

from sendpy.devstack.smtp_sink import SmtpSink
from tests.helpers import make_sender, make_upload
from tests.test_web_imap import RussianPage, ru, sign_up  # noqa: F401  (ru is a fixture)

AXE = Path(__file__).resolve().parent.parent / "web" / "node_modules" / "axe-core" / "axe.min.js"


async def serious_violations(page: Page, where: str) -> list[str]:
    await page.evaluate(AXE.read_text())
    found = await page.evaluate("""async () => {
        const result = await axe.run(document, { resultTypes: ["violations"] });
        return result.violations.filter((v) => v.impact === "serious" || v.impact === "critical")
            .map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.slice(0, 3).map((n) => n.target.join(" ")) }));
    }""")
    return [f"{where}: {json.dumps(v, ensure_ascii=False)}" for v in found]


async def test_every_page_and_wizard_step_passes_axe(
    ru: RussianPage, db: asyncpg.Pool, api: httpx.AsyncClient, clean_sink: SmtpSink  # noqa: F811
) -> None:
    page = ru.page
    problems: list[str] = []
    await page.goto("/")
    await expect(page.get_by_role("button", name="Зарегистрироваться")).to_be_visible()
    problems += await serious_violations(page, "landing")
    auth = await sign_up(page, db)
    sender = await make_sender(api, auth, clean_sink, per_minute=20, per_day=500)
    upload = await make_upload(api, auth, b"email;name\nann@example.com;Ann\nbad;Bob\n;Empty\n")
    draft = (await api.post("/v1/campaigns", headers=auth, json={
        "sender_id": sender["id"], "upload_id": upload["id"], "subject": "Новости",
        "html_body": "<p>Здравствуйте, {{ name }}</p>"})).json()
    for step, heading in [(1, "Контакты"), (2, "Отправитель"), (3, "Письмо"), (4, "Сводка")]:
        await page.goto(f"/#/wizard/{draft['id']}/{step}")
        await expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
        problems += await serious_violations(page, f"wizard step {step}")
        if step == 1:  # stored reasons are "ru / en": a Russian page shows the Russian half only
            await expect(page.locator("ul.problems")).to_contain_text("нет знака @")
            await expect(page.locator("ul.problems")).not_to_contain_text("An email address")
    for path, heading in [("#/campaigns", "Рассылки"), ("#/senders", "Отправители"), ("#/suppressions", "сключ"),
                          ("#/guides", "Настройка почтового ящика"), ("#/guides/gmail", "Gmail"), ("#/keys", "API-ключи"),
                          ("#/settings", "Учётная запись")]:
        await page.goto(f"/{path}")
        await expect(page.locator("#app h1").first).to_contain_text(heading)
        problems += await serious_violations(page, path)
    await page.goto("/#/senders")
    await page.get_by_role("button", name=f"Возвраты (IMAP): {sender['from_email']}").click()
    problems += await serious_violations(page, "senders with the IMAP form")
    started = await api.post(f"/v1/campaigns/{draft['id']}/start", headers=auth)
    assert started.status_code == 202
    await page.goto(f"/#/campaign/{draft['id']}")
    await expect(page.locator("#status")).not_to_be_empty()
    problems += await serious_violations(page, "campaign page")
    assert not problems, "\n".join(problems)
