"""Debian's Chromium driven by Playwright, one per test module: the browser tests' fixture."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import pytest
from playwright.async_api import Browser, Page, async_playwright

if TYPE_CHECKING:
    import asyncpg
    import httpx

    from sendpy.devstack.smtp_sink import SmtpSink

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    if shutil.which(CHROMIUM) is None:
        pytest.fail("chromium is not installed: scripts/test installs Debian's chromium package")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        await launched.close()


async def russian_draft(page: Page, db: asyncpg.Pool, api: httpx.AsyncClient, sink: SmtpSink, contacts: bytes,
                        sender: dict[str, Any] | None = None, **draft: str) -> tuple[dict[str, str], dict[str, Any], str]:
    """Where the walk tests start: a new account signed up through the Russian page, a verified
    sender of the SMTP sink (`sender`: its limits), and a draft of `contacts` («Новости», "<p>Hi</p>"
    unless `draft` says otherwise). Returns the API's auth header for the same user, the sender and
    the draft's id."""
    # Imported here: this module is a pytest plugin, loaded before the test modules it would import.
    from tests.helpers import make_sender
    from tests.test_web_imap import sign_up
    from tests.test_web_walk_fixes import draft as make_draft

    auth = await sign_up(page, db)
    made = await make_sender(api, auth, sink, **(sender or {}))
    return auth, made, await make_draft(api, auth, made, contacts, **draft)
