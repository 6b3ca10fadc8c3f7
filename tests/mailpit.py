"""Mailpit, a real third-party SMTP server, as pytest fixtures (a plugin: `-p tests.mailpit`).

`mailpit` is the server, started once per session on free loopback ports with STARTTLS and AUTH
required for one user (MAILPIT_USER / MAILPIT_PASSWORD). `mailpit_inbox` empties it before a
test and reads what arrived through Mailpit's HTTP API.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest

from sendpy.devstack.mailpit import MailpitServer
from sendpy.devstack.tls import LocalCertificates

MAILPIT_USER = "owner@example.org"
MAILPIT_PASSWORD = "mailpit app-pass: Zq81 ключ"  # spaces, a colon and non-ASCII on purpose


class MailpitInbox:
    """Mailpit's API (https://mailpit.axllent.org/docs/api-v1/): list, read, check, delete."""

    def __init__(self, server: MailpitServer, client: httpx.AsyncClient) -> None:
        self.server = server
        self.client = client

    async def _json(self, path: str, **params: Any) -> Any:
        answer = await self.client.get(path, params=params)
        answer.raise_for_status()
        return answer.json()

    async def messages(self) -> list[dict[str, Any]]:
        """Summaries of every stored message (ID, MessageID, From, To, Subject, …), newest first."""
        found: list[dict[str, Any]] = []
        while True:
            page = await self._json("/api/v1/messages", start=len(found), limit=500)
            found += page["messages"]
            if not page["messages"] or len(found) >= page["messages_count"]:
                return found

    async def message(self, message_id: str) -> dict[str, Any]:
        """One message parsed by Mailpit: Text, HTML, ListUnsubscribe, Username, …"""
        found: dict[str, Any] = await self._json(f"/api/v1/message/{message_id}")
        return found

    async def headers(self, message_id: str) -> dict[str, list[str]]:
        found: dict[str, list[str]] = await self._json(f"/api/v1/message/{message_id}/headers")
        return found

    async def raw(self, message_id: str) -> bytes:
        answer = await self.client.get(f"/api/v1/message/{message_id}/raw")
        answer.raise_for_status()
        return answer.content

    async def parsed(self, message_id: str) -> EmailMessage:
        """The source as received, parsed by Python's email package."""
        message = message_from_bytes(await self.raw(message_id), policy=policy.default)
        assert isinstance(message, EmailMessage)
        return message

    async def html_check(self, message_id: str) -> dict[str, Any] | None:
        """Mailpit's HTML compatibility report (Total.Supported etc. in percent), None if absent."""
        answer = await self.client.get(f"/api/v1/message/{message_id}/html-check")
        if answer.status_code == 404:
            return None
        answer.raise_for_status()
        found: dict[str, Any] = answer.json()
        return found

    async def delete_all(self) -> None:
        answer = await self.client.request("DELETE", "/api/v1/messages", json={"IDs": []})
        answer.raise_for_status()

    async def wait_for(self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 90,
                       what: str = "the expected messages") -> list[dict[str, Any]]:
        """Poll until `predicate(summaries)` holds; fail with what arrived after `timeout` s."""
        deadline = time.monotonic() + timeout
        while True:
            found = await self.messages()
            if predicate(found):
                return found
            if time.monotonic() > deadline:
                seen = [(m["To"], m["Subject"]) for m in found]
                raise AssertionError(f"Mailpit did not receive {what} within {timeout:.0f}s; it has {seen}\n"
                                     f"{self.server.tail()}")
            await asyncio.sleep(0.3)


def recipients_of(summary: dict[str, Any]) -> list[str]:
    """The To addresses of a message summary, lower-cased."""
    return [str(a["Address"]).lower() for a in summary.get("To") or []]


@pytest.fixture(scope="session")
def mailpit(certs: LocalCertificates, workdir: Path) -> Iterator[MailpitServer]:
    server = MailpitServer(workdir / "mailpit", certs, MAILPIT_USER, MAILPIT_PASSWORD)
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def mailpit_inbox(mailpit: MailpitServer) -> AsyncIterator[MailpitInbox]:
    """Mailpit emptied for this test; fails the test if Mailpit died under it."""
    async with httpx.AsyncClient(base_url=mailpit.api_url, timeout=30) as client:
        inbox = MailpitInbox(mailpit, client)
        await inbox.delete_all()
        yield inbox
    assert mailpit.alive(), f"Mailpit exited during the test:\n{mailpit.tail()}"
