"""The Content-Security-Policy holds for the real UI: Chromium walks every page of the web app
(served by the app as in the local stack, with the headers CloudFront also sends) and the test
fails on any violation the browser reports — in the page, in the preview frame, on the
unsubscribe page. The policy itself: functions/security_headers.py.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import re
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, expect

from functions.security_headers import PREVIEW_CONTENT_SECURITY_POLICY, content_security_policy, upload_origins
from sendpy.devstack.smtp_sink import SmtpSink
from tests.conftest import Workers
from tests.test_web_e2e import CONTACTS, add_sender, sign_up

# Logged by the page (the init script below) and by Chromium itself for every blocked load or
# inline script/style, in any frame.
VIOLATION = "Content Security Policy"
REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  console.error(`Content Security Policy violation: ${event.effectiveDirective} blocked ${event.blockedURI || "inline"}`
    + ` in ${event.documentURI} (${event.sourceFile || "?"}:${event.lineNumber})`);
});
"""
# A 1×1 PNG, served from another origin: an image in the user's email.
PIXEL = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")


def upload_origins_now() -> tuple[str, ...]:
    from shared.settings import get_settings

    return upload_origins(get_settings())


@dataclass
class Watched:
    page: Page
    violations: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def on_console(self, message: ConsoleMessage) -> None:
        if VIOLATION in message.text:
            self.violations.append(f"{message.location.get('url', '?')}: {message.text}")


@pytest.fixture
async def watched(browser: Browser, live_server: str) -> AsyncIterator[Watched]:
    context = await browser.new_context(base_url=live_server, locale="en-US", viewport={"width": 1200, "height": 900})
    await context.add_init_script(REPORT_VIOLATIONS)
    page = await context.new_page()
    result = Watched(page)
    page.on("console", result.on_console)
    page.on("pageerror", lambda error: result.errors.append(str(error)))
    yield result
    await context.close()


@pytest.fixture(scope="module")
def remote_image() -> Iterator[str]:
    """An image on another origin, as a user's email links its logo."""

    class Pixel(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(PIXEL)))
            self.end_headers()
            self.wfile.write(PIXEL)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Pixel)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/logo.png"
    server.shutdown()
    server.server_close()


def styled_email(image_url: str) -> str:
    """What users paste into the HTML source: a <style> block, style attributes, a remote image."""
    return f"""<html><head><style>.banner {{ background-color: rgb(10, 120, 60); }}</style></head>
<body><div class="banner"><img id="logo" src="{image_url}" alt="Logo" width="1" height="1"></div>
<p id="greeting" style="color: rgb(200, 30, 30); font-family: Georgia, serif">Здравствуйте, {{{{ имя }}}}!</p>
<p>Осенняя распродажа уже началась.</p></body></html>"""


async def test_every_page_of_the_ui_keeps_to_the_content_security_policy(
    watched: Watched, clean_sink: SmtpSink, workers: Workers, remote_image: str, tmp_path: Path
) -> None:
    page = watched.page
    email, password = f"csp-{uuid.uuid4().hex[:8]}@example.com", "a good long password"

    # Landing and a guide (drawn SVG), signed out.
    landing = await page.goto("/")
    assert landing is not None
    assert landing.headers["content-security-policy"] == content_security_policy(upload_origins_now())
    await expect(page.get_by_role("button", name="Create account")).to_be_visible()
    await page.locator("#nav").get_by_role("link", name="Guides").click()
    await page.locator("main a[href^='#/guides/']").first.click()
    await expect(page.locator("ol.guide svg").first).to_be_visible()

    # Sign up, log out, log in.
    await page.get_by_role("link", name="Sendpy").click()
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Create account").click()
    await expect(page.get_by_role("heading", name="Campaigns")).to_be_visible()
    await page.get_by_role("button", name="Log out").click()
    await expect(page.get_by_role("button", name="Log in")).to_be_visible()
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Log in").click()
    await expect(page.get_by_role("heading", name="Campaigns")).to_be_visible()

    # Wizard 1: contacts, posted straight to the uploads bucket (connect-src).
    await page.get_by_role("link", name="New campaign").first.click()
    csv_file = tmp_path / "kontakty.csv"
    csv_file.write_bytes(CONTACTS)
    await page.locator("#file").set_input_files(str(csv_file))
    await expect(page.locator("#stat-rows")).to_have_text("3")
    await page.get_by_label("Email column").select_option("0")
    await page.get_by_role("button", name="Apply").click()
    await expect(page.locator("#stat-valid")).to_have_text("3")

    # Wizard 2: a sender, verified live.
    await page.get_by_role("button", name="Next").click()
    await add_sender(page, clean_sink, "the-right-app-password")
    await expect(page.locator("#verify-result .notice")).to_contain_text("Verified")

    # Wizard 3: the rich-text editor (Squire), a merge field, the preview.
    await page.get_by_role("button", name="Next").click()
    await page.get_by_label("Subject").fill("Привет, {{ имя }}!")
    await page.locator("#editor").click()
    await page.get_by_role("button", name="Bold").click()
    await page.keyboard.type("Здравствуйте, ")
    await page.get_by_label("Insert a field").select_option("имя")
    await page.get_by_role("button", name="Insert", exact=True).click()
    await page.keyboard.type("!")
    await page.get_by_role("button", name="List").click()
    await page.keyboard.type("Осенняя распродажа")
    await page.get_by_label("Preview for contact no.").fill("2")
    await page.get_by_role("button", name="Preview", exact=True).click()
    preview = page.frame_locator("#preview")
    await expect(preview.locator("body")).to_contain_text("Здравствуйте, Ольга!")
    await expect(preview.locator("b")).to_contain_text("Здравствуйте")

    # The HTML source of a designed email: its styles and its remote image show in the preview.
    await page.get_by_role("button", name="HTML source").click()
    await page.locator("#source").fill(styled_email(remote_image))
    await page.get_by_role("button", name="Preview", exact=True).click()
    await expect(preview.locator("#greeting")).to_have_text("Здравствуйте, Ольга!")
    await expect(preview.locator("#greeting")).to_have_css("color", "rgb(200, 30, 30)")
    await expect(preview.locator(".banner")).to_have_css("background-color", "rgb(10, 120, 60)")
    await expect(preview.locator("#logo")).to_have_js_property("naturalWidth", 1)  # loaded, not broken

    # Wizard 4 and the campaign page, to the end.
    await page.get_by_role("button", name="Next").click()
    await expect(page.locator("#review-count")).to_have_text("3")
    await page.get_by_role("button", name="Send now").click()
    await page.get_by_role("dialog").get_by_role("button", name="Send now").click()  # the confirmation
    await expect(page.locator("#percent")).to_have_text("100%", timeout=60_000)
    await expect(page.locator("#status")).to_have_text("finished")

    # The unsubscribe page the email links to (served by the API, its <style> allowed by hash).
    mails = {m.rcpt_tos[0]: m.parsed() for m in clean_sink.messages}
    link = re.search(r"<https?://[^/>]+(/u/[^>]+)>", str(mails["olga@example.ru"]["List-Unsubscribe"]))
    assert link, mails["olga@example.ru"]["List-Unsubscribe"]
    app_url = page.url
    await page.goto(link[1])  # the workers' links point at their own base URL; the path is the link
    await page.get_by_role("button", name="Unsubscribe").click()
    await expect(page.locator("body")).to_contain_text("olga@example.ru will not receive emails")

    # The other pages: campaigns, senders and their suppressions, API keys, account.
    await page.goto(app_url)
    await page.get_by_role("link", name="Campaigns").click()
    await expect(page.get_by_role("heading", name="Campaigns")).to_be_visible()
    await page.get_by_role("link", name="Senders").click()
    await expect(page.get_by_role("heading", name="Senders")).to_be_visible()
    await page.get_by_role("link", name="Suppressions").click()
    await expect(page.locator("main")).to_contain_text("olga@example.ru")
    await page.get_by_role("link", name="API keys").click()
    await page.get_by_label("Key name").fill("csp")
    await page.get_by_role("button", name="Create key").click()
    await expect(page.locator("main")).to_contain_text("Copy this key now")
    await page.get_by_role("link", name="Account").click()
    await expect(page.get_by_role("heading", name="Change password")).to_be_visible()
    await page.get_by_label("Language").select_option("ru")
    await expect(page.get_by_role("link", name="Рассылки")).to_be_visible()

    assert not watched.errors, watched.errors
    assert not watched.violations, "\n".join(watched.violations)


# An email that tries to run code: a script, an event handler, a javascript: link, a form.
HOSTILE_EMAIL = """<p id="marker">still here</p>
<script>parent.pwned = "script"; document.body.textContent = "pwned";</script>
<img src="data:," onerror="parent.pwned = 'handler'">
<p><a id="js-link" href="javascript:parent.pwned='link'">a link</a></p>
<form action="https://evil.example/" method="post"><button id="send-form">send</button></form>"""


async def test_nothing_in_an_email_can_run_in_the_preview(watched: Watched, tmp_path: Path) -> None:
    """The preview frame's looser policy is for display only: scripts, handlers, javascript:
    links and forms in the email all stay dead (sandbox without allow-scripts/forms, and a
    policy without script-src or form-action)."""
    page = watched.page
    await sign_up(page)
    await page.get_by_role("link", name="New campaign").first.click()
    csv_file = tmp_path / "contacts.csv"
    csv_file.write_bytes(CONTACTS)
    await page.locator("#file").set_input_files(str(csv_file))
    await expect(page.locator("#stat-rows")).to_have_text("3")
    await page.get_by_role("link", name="3. Message").click()
    await page.get_by_role("button", name="HTML source").click()
    await page.locator("#source").fill(HOSTILE_EMAIL)
    await page.get_by_role("button", name="Preview", exact=True).click()
    preview = page.frame_locator("#preview")
    await expect(preview.locator("#marker")).to_have_text("still here")
    await preview.locator("#js-link").click()
    await preview.locator("#send-form").click()
    await page.wait_for_timeout(500)
    await expect(preview.locator("#marker")).to_have_text("still here")  # the frame stayed put
    assert await page.evaluate("window.pwned") is None
    preview_url = page.url.split("#")[0] + "preview.html"
    assert await preview.locator("body").evaluate("body => body.ownerDocument.URL") == preview_url
    # What the browser reports is the email's own code being refused, in the preview document only.
    assert all(v.startswith(f"{preview_url}: ") for v in watched.violations), watched.violations
    assert not watched.errors, watched.errors


@pytest.mark.parametrize(("path", "status"), [
    ("/", 200), ("/js/app.js", 200), ("/vendor/squire.js", 200), ("/api/health", 200), ("/v1/openapi.json", 200),
    ("/v1/me", 401), ("/v1/nothing-here", 404), ("/u/not-a-token", 404),
])
def test_every_answer_carries_the_security_headers(live_server: str, path: str, status: int) -> None:
    answer = httpx.get(live_server + path)
    assert answer.status_code == status
    assert answer.headers["content-security-policy"] == content_security_policy(upload_origins_now())
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["referrer-policy"] == "no-referrer"


def test_the_preview_document_has_its_own_policy_and_only_the_site_may_frame_it(live_server: str) -> None:
    answer = httpx.get(live_server + "/preview.html")
    assert answer.status_code == 200
    assert answer.headers["content-security-policy"] == PREVIEW_CONTENT_SECURITY_POLICY
    assert "script-src" not in PREVIEW_CONTENT_SECURITY_POLICY and "default-src 'none'" in PREVIEW_CONTENT_SECURITY_POLICY
    assert answer.headers["x-frame-options"] == "SAMEORIGIN"
    assert answer.headers["x-content-type-options"] == "nosniff"


def test_the_unsubscribe_page_style_is_the_one_the_policy_allows(live_server: str) -> None:
    page = httpx.get(live_server + "/u/not-a-token").text
    styles = re.findall(r"<style>(.*?)</style>", page, re.S)
    assert len(styles) == 1
    digest = base64.b64encode(hashlib.sha256(styles[0].encode()).digest()).decode()
    assert f"'sha256-{digest}'" in content_security_policy(())
