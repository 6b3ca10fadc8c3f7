"""The web frontend in a real browser (Debian's Chromium driven by Playwright) against the real
stack: API + web in uvicorn, Kafka, Postgres, moto S3, workers and the SMTP sink.

Screenshots of every wizard step go to test-artifacts/screenshots/.
"""

from __future__ import annotations

import html
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect

from sendpy.devstack.smtp_sink import SmtpSink
from tests.conftest import ROOT, Workers

SHOTS = ROOT / "test-artifacts" / "screenshots"
# Windows-1251, semicolons, as Excel in a Russian locale saves it. "Почта" is a column the
# detection recognises as the address column; the addresses the user wants are in the first one.
CONTACTS = (
    "E-mail руководителя;Имя;Почта\r\n"
    "ivan@example.ru;Иван;office@example.ru\r\n"
    "olga@example.ru;Ольга;office@example.ru\r\n"
    "petr@example.ru;Пётр;office@example.ru\r\n"
).encode("cp1251")


@pytest.fixture
async def page(browser: Browser, live_server: str) -> AsyncIterator[Page]:
    context = await browser.new_context(base_url=live_server, locale="en-US", viewport={"width": 1200, "height": 900})
    opened = await context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    yield opened
    await context.close()
    assert not errors, errors


async def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


async def sign_up(page: Page) -> None:
    await page.goto("/")
    await page.get_by_label("Email").fill(f"web-{uuid.uuid4().hex[:8]}@example.com")
    await page.get_by_label("Password").fill("a good long password")
    await page.get_by_role("button", name="Create account").click()
    await expect(page.get_by_role("heading", name="Campaigns")).to_be_visible()


async def add_sender(page: Page, sink: SmtpSink, password: str) -> None:
    form = page.locator("#new-sender")
    await form.get_by_label("Your email address").fill("news@example.org")
    await form.get_by_label("Your name").fill("Новости магазина")
    await form.get_by_label("SMTP server").fill("127.0.0.1")
    await form.get_by_label("Port").fill(str(sink.port))
    await form.get_by_label("Encryption").select_option("starttls")
    await form.get_by_label("Password").fill(password)
    await form.get_by_role("button", name="Verify").click()


async def test_a_campaign_from_sign_up_to_every_inbox(
    page: Page, clean_sink: SmtpSink, workers: Workers, tmp_path: Path
) -> None:
    await sign_up(page)
    await page.get_by_role("link", name="New campaign").first.click()
    await expect(page.get_by_role("heading", name="New campaign")).to_be_visible()

    csv_file = tmp_path / "kontakty.csv"
    csv_file.write_bytes(CONTACTS)
    await page.locator("#file").set_input_files(str(csv_file))
    await expect(page.locator("#stat-rows")).to_have_text("3")
    await expect(page.get_by_label("Encoding")).to_have_value("cp1251")
    selected = page.get_by_label("Encoding").locator("option:checked")
    await expect(selected).to_have_text("Cyrillic, Windows (cp1251)")  # the name people know, codec after
    await expect(page.get_by_label("Separator")).to_have_value(";")
    await expect(page.get_by_label("Email column")).to_have_value("2")  # detected "Почта" …
    await expect(page.locator("#stat-valid")).to_have_text("1")  # … where everyone shares one address
    await shot(page, "1-contacts-detected")
    await page.get_by_label("Email column").select_option("0")  # the user fixes it
    await page.get_by_role("button", name="Apply").click()
    await expect(page.locator("#stat-valid")).to_have_text("3")
    await shot(page, "1-contacts-fixed")

    await page.get_by_role("button", name="Next").click()
    await expect(page.get_by_role("heading", name="Sender")).to_be_visible()
    clean_sink.faults.rejected_passwords.add("wrong-password")
    await add_sender(page, clean_sink, "wrong-password")
    await expect(page.locator("#verify-result .error")).to_contain_text("did not accept the login or password")
    await shot(page, "2-sender-failed-verification")
    await expect(page.locator("#verify-result .error")).to_be_focused()
    # The failed sender is listed (with its server) and the form now corrects it: fixing the
    # password and checking again never makes a second one.
    await expect(page.locator("#sender-list")).to_contain_text(f"127.0.0.1:{clean_sink.port}")
    await expect(page.locator("#sender-form-title")).to_contain_text("news@example.org")
    await page.locator("#new-sender").get_by_label("Password").fill("the-right-app-password")
    await page.locator("#new-sender").get_by_role("button", name="Verify").click()
    await expect(page.locator("#verify-result .notice")).to_contain_text("Verified")
    await expect(page.locator('input[name="sender"]')).to_have_count(1)
    await expect(page.locator('input[name="sender"]:checked')).to_have_count(1)
    await expect(page.locator("#sender-list")).to_contain_text("✓")
    await shot(page, "2-sender-verified")

    await page.get_by_role("button", name="Next").click()
    await page.get_by_label("Subject").fill("Привет, {{ имя }}!")
    editor = page.locator("#editor")
    await editor.click()
    await page.keyboard.type("Здравствуйте, ")
    await page.get_by_label("Insert a field").select_option("имя")
    await page.get_by_role("button", name="Insert", exact=True).click()
    await page.keyboard.type("! Осенняя распродажа уже началась.")
    await page.get_by_label("Preview for contact no.").fill("2")
    await page.get_by_role("button", name="Preview", exact=True).click()
    preview = page.frame_locator("#preview")
    await expect(preview.locator("body")).to_contain_text("Здравствуйте, Ольга!")
    await expect(page.locator("#preview-subject")).to_have_text("Привет, Ольга!")
    await shot(page, "3-message-preview")

    await page.get_by_role("button", name="Next").click()
    await expect(page.locator("#review-count")).to_have_text("3")
    await shot(page, "4-review")
    await page.get_by_role("button", name="Send now").click()
    await page.get_by_role("dialog").get_by_role("button", name="Send now").click()  # the confirmation

    await expect(page.locator("#percent")).to_have_text("100%", timeout=60_000)
    await expect(page.locator("#status")).to_have_text("finished")
    await expect(page.locator("#count-sent")).to_have_text("3")
    await shot(page, "5-campaign-finished")

    # "sent" is recorded only after the server accepted the message, so the sink has all three.
    mails = {m.rcpt_tos[0]: m.parsed() for m in clean_sink.messages}
    assert set(mails) == {"ivan@example.ru", "olga@example.ru", "petr@example.ru"}
    assert mails["olga@example.ru"]["Subject"] == "Привет, Ольга!"
    body = html.unescape(mails["petr@example.ru"].get_body(("html",)).get_content()).replace("\xa0", " ")
    assert "Здравствуйте, Пётр!" in body and "Осенняя распродажа" in body
    assert mails["ivan@example.ru"]["From"].addresses[0].display_name == "Новости магазина"


async def test_a_file_that_is_not_csv_is_refused_in_plain_words(page: Page, tmp_path: Path) -> None:
    await sign_up(page)
    await page.get_by_role("link", name="New campaign").first.click()
    picture = tmp_path / "photo.png"
    picture.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(300))
    await page.locator("#file").set_input_files(str(picture))
    await expect(page.locator("#report .error")).to_contain_text("not a text (CSV) file")
    await shot(page, "1-contacts-not-csv")


async def test_a_step_that_cannot_be_saved_says_why_and_stays(page: Page) -> None:
    await sign_up(page)
    await page.get_by_role("link", name="New campaign").first.click()
    await expect(page.locator("#file")).to_be_attached()
    await page.get_by_role("button", name="Next").click()  # the draft is made when the person goes on
    await expect(page.get_by_role("heading", name="Sender", exact=True)).to_be_visible()
    await page.goto(page.url.removesuffix("/2") + "/3")
    await page.get_by_label("Subject").fill("Hello {{ name")
    await page.get_by_role("button", name="Next").click()
    problem = page.locator("#nav-error .error")
    await expect(problem).to_contain_text("subject template has an error")
    await expect(problem).to_be_focused()
    assert page.url.endswith("/3")
    await shot(page, "3-message-broken-template")


async def test_russian_interface_and_guides(page: Page) -> None:
    await page.goto("/")
    await page.get_by_label("Language").select_option("ru")
    await expect(page.get_by_role("heading", name="Отправляйте рассылки через свою почту")).to_be_visible()
    await page.get_by_role("link", name="Инструкции").click()
    await page.get_by_role("link", name="Yandex Mail / Яндекс Почта").click()
    await expect(page.locator("ol.guide svg")).to_have_count(3)
    await expect(page.locator("ol.guide")).to_contain_text("Пароли приложений")
    await shot(page, "guide-yandex-ru")
    await page.get_by_role("link", name="Настройка почтового ящика").click()
    await page.get_by_role("link", name="Почтовый сервер компании (SMTP)").click()
    await expect(page.get_by_role("heading", name="Почтовый сервер компании (SMTP)")).to_be_visible()


async def test_phone_width_has_no_sideways_scrolling(browser: Browser, live_server: str) -> None:
    context = await browser.new_context(base_url=live_server, viewport={"width": 375, "height": 740})
    phone = await context.new_page()
    await phone.goto("/")
    await expect(phone.get_by_role("button", name="Create account")).to_be_visible()
    # The sign-up form is on the first screen, not three screens down.
    assert await phone.get_by_role("button", name="Create account").evaluate(
        "button => button.getBoundingClientRect().bottom <= window.innerHeight")
    overflow = await phone.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    await shot(phone, "landing-phone")
    await context.close()
    assert overflow <= 0


async def test_at_phone_width_the_menu_folds_behind_one_button(browser: Browser, live_server: str) -> None:
    context = await browser.new_context(base_url=live_server, viewport={"width": 375, "height": 740})
    phone = await context.new_page()
    await sign_up(phone)
    header = await phone.locator("header").bounding_box()
    assert header is not None and header["height"] < 80, header  # the open menu took 270 px
    await expect(phone.get_by_role("link", name="Senders")).to_be_hidden()
    menu = phone.get_by_role("button", name="Menu")
    await menu.press("Enter")
    await expect(menu).to_have_attribute("aria-expanded", "true")
    await expect(phone.get_by_role("link", name="Campaigns")).to_be_focused()
    await expect(phone.get_by_role("link", name="Senders")).to_be_visible()
    await shot(phone, "menu-phone-open")
    await phone.keyboard.press("Escape")
    await expect(menu).to_be_focused()
    await expect(phone.get_by_role("link", name="Senders")).to_be_hidden()
    await menu.click()
    await phone.get_by_role("link", name="Senders").click()
    await expect(phone.get_by_role("heading", name="Senders", exact=True)).to_be_visible()
    await expect(phone.get_by_role("link", name="Campaigns")).to_be_hidden()  # folded again on the new page
    overflow = await phone.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    await context.close()
    assert overflow <= 0
