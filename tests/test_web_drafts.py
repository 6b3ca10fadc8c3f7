"""A draft's message is never lost: autosaved while typing, kept in the browser while the server
refuses it, and restored after a reload, the browser's Back or a jump through the step links."""

from __future__ import annotations

import re

from playwright.async_api import Page, expect

from tests.test_web_e2e import page, shot, sign_up  # noqa: F401  (page is a fixture)


async def open_message_step(page: Page) -> str:  # noqa: F811
    await sign_up(page)
    await page.get_by_role("link", name="New campaign").first.click()
    await expect(page.locator("#file")).to_be_attached()
    await page.get_by_role("button", name="Next").click()  # the draft is made when the person goes on
    await expect(page.get_by_role("heading", name="Sender", exact=True)).to_be_visible()
    step3 = page.url.removesuffix("/2") + "/3"
    await page.goto(step3)
    await expect(page.get_by_label("Subject")).to_be_visible()
    return step3


async def test_typed_text_survives_a_reload_and_a_jump_to_the_review(page: Page) -> None:  # noqa: F811
    step3 = await open_message_step(page)
    await page.get_by_label("Subject").fill("Spring sale")
    await page.locator("#editor").click()
    await page.keyboard.type("Dear customers, everything is 20% off.")
    await expect(page.locator("#save-state")).to_have_text("Saved.")  # autosaved, nobody pressed Next
    await page.reload()
    await expect(page.get_by_label("Subject")).to_have_value("Spring sale")
    await expect(page.locator("#editor")).to_contain_text("everything is 20% off")
    await page.get_by_label("Subject").fill("Spring sale — last days")
    await page.get_by_role("link", name=re.compile("Review")).click()  # the step pill, straight after typing
    await expect(page.locator(".summary")).to_contain_text("Spring sale — last days")
    await shot(page, "4-review-after-pill")
    await page.go_back()
    await expect(page.get_by_label("Subject")).to_have_value("Spring sale — last days")
    assert page.url == step3


async def test_text_the_server_refuses_for_now_is_kept_in_the_browser(page: Page) -> None:  # noqa: F811
    await open_message_step(page)
    await page.get_by_label("Subject").fill("Hello {{ name")  # half-typed: the server refuses it
    await expect(page.locator("#save-state")).to_contain_text("Not saved on the server")
    await page.reload()
    await expect(page.get_by_label("Subject")).to_have_value("Hello {{ name")
    await expect(page.locator("#restored")).to_contain_text("Restored")
    await page.get_by_label("Subject").fill("Hello {{ name }}")
    await expect(page.locator("#save-state")).to_have_text("Saved.")
    await page.reload()
    await expect(page.get_by_label("Subject")).to_have_value("Hello {{ name }}")
    await page.wait_for_timeout(1500)  # longer than the autosave delay: nothing is saved again …
    await expect(page.locator("#save-state")).to_have_text("")
    await expect(page.locator("#restored")).to_have_text("")  # … and nothing was left over to restore


async def test_new_campaign_makes_no_draft_until_the_person_does_something(page: Page) -> None:  # noqa: F811
    await sign_up(page)
    for _ in range(3):  # clicked, looked at, left
        await page.get_by_role("link", name="New campaign").first.click()
        await expect(page.locator("#file")).to_be_attached()
        await page.get_by_role("link", name="Campaigns").first.click()
        await expect(page.get_by_role("heading", name="Campaigns")).to_be_visible()
    await expect(page.locator("#app table")).to_have_count(0)  # no drafts listed
    await page.get_by_role("link", name="New campaign").first.click()
    await page.locator("#file").set_input_files(files=[{"name": "contacts.csv", "mimeType": "text/csv",
                                                        "buffer": b"email\nann@example.com\n"}])
    await expect(page.locator("#stat-valid")).to_have_text("1")
    assert "/wizard/" in page.url and page.url.endswith("/1")  # the draft exists now, with the file
    await page.get_by_role("link", name="Campaigns").first.click()
    await expect(page.locator("#app table tbody tr")).to_have_count(1)
