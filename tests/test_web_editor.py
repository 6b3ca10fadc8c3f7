"""The message editor by keyboard: the field picker, the link and image dialogs, the editor's role,
and focus at the new step's heading."""

from __future__ import annotations

from playwright.async_api import Page, expect

from tests.test_web_drafts import open_message_step
from tests.test_web_e2e import page, shot  # noqa: F401  (page is a fixture)


async def test_fields_links_and_images_by_keyboard(page: Page) -> None:  # noqa: F811
    await open_message_step(page)
    await expect(page.get_by_role("heading", name="Message", exact=True)).to_be_focused()  # the step's heading
    editor = page.get_by_role("textbox", name="Message")
    await editor.click()
    await page.keyboard.type("Hello ")

    picker = page.get_by_label("Insert a field")
    await picker.focus()
    await page.keyboard.press("ArrowDown")
    await page.keyboard.press("ArrowUp")
    await expect(editor).not_to_contain_text("{{")  # arrows only choose
    await page.keyboard.press("Enter")
    await expect(editor).to_contain_text("Hello {{ email }}")

    await page.get_by_role("button", name="Link").click()
    dialog = page.get_by_role("dialog", name="Link")
    await expect(dialog).to_be_visible()
    await dialog.get_by_label("Link text").fill("our shop")
    await dialog.get_by_label("Address (URL)").fill("javascript:alert(1)")
    await page.keyboard.press("Enter")
    await expect(dialog.locator(".error")).to_contain_text("https://")
    await dialog.get_by_label("Address (URL)").fill("https://shop.example.ru/sale")
    await page.keyboard.press("Enter")
    await expect(dialog).to_be_hidden()
    await expect(editor.locator('a[href="https://shop.example.ru/sale"]')).to_have_text("our shop")

    await page.evaluate("window.blocked = []; document.addEventListener('securitypolicyviolation',"
                        " (e) => window.blocked.push(e.violatedDirective + ' ' + e.blockedURI))")
    await page.get_by_role("button", name="Image").click()
    image = page.get_by_role("dialog", name="Image")
    await image.get_by_label("Image address (URL)").fill("http://shop.example.ru/logo.png")
    await image.get_by_label("Description for people who cannot see it").fill("Shop logo")
    await page.keyboard.press("Enter")
    await expect(image.locator(".error")).to_contain_text("https://")  # plain http: mail clients block it
    await image.get_by_label("Image address (URL)").fill("https://127.0.0.1:9/logo.png")
    await page.keyboard.press("Enter")
    await expect(editor.locator('img[alt="Shop logo"]')).to_have_attribute("src", "https://127.0.0.1:9/logo.png")
    await page.wait_for_function("document.querySelector('#editor img').complete")  # tried (and failed) to load
    assert await page.evaluate("window.blocked") == []  # the app's policy let the editor fetch it

    await page.get_by_role("button", name="Preview", exact=True).click()
    shown = page.frame_locator("#preview").locator('a[href="https://shop.example.ru/sale"]')
    await expect(shown).to_have_attribute("target", "_blank")
    await expect(shown).to_have_attribute("tabindex", "-1")  # the preview is one Tab stop, not one per link
    async with page.context.expect_page() as opened:
        await shown.click()
    await (await opened.value).close()  # a tab of its own; the preview still shows the email
    await expect(shown).to_have_text("our shop")

    await page.get_by_role("button", name="Link").click()
    await page.keyboard.press("Escape")  # cancelled: focus goes back to the editor, where the caret was
    await expect(editor).to_be_focused()
    await shot(page, "3-message-editor-dialogs")


async def test_the_file_button_shows_keyboard_focus(page: Page) -> None:  # noqa: F811
    await open_message_step(page)
    await page.goto(page.url.removesuffix("/3") + "/1")
    await expect(page.get_by_role("heading", name="Contacts", exact=True)).to_be_focused()
    await page.keyboard.press("Tab")
    await expect(page.locator("#file")).to_be_focused()  # the one Tab stop of the drop area
    outline = await page.locator(".file-button").evaluate("label => getComputedStyle(label).outlineStyle")
    assert outline == "solid"
