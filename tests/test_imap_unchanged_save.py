"""A sender's settings saved unchanged, password included, change nothing the bounce worker looks at
(issue 11, the last attack): the password was sealed afresh on every save, so the IDLE watch saw
"IMAP settings changed", ended, and logged in again — and the SMTP form's save also un-verified
the sender. Real Dovecot, the real bounce worker. Also: secrets compared as bytes, in constant
time, whatever their alphabet."""

from __future__ import annotations

import asyncio
import base64
import os
import time
from collections.abc import Callable
from typing import Any

import asyncpg
import httpx
import pytest

from sendpy.devstack.imap import DovecotServer
from sendpy.devstack.smtp_sink import SmtpSink
from shared.crypto import LocalKeyProvider, holds, same_secret, seal
from tests.conftest import Workers
from tests.helpers import make_sender
from tests.imap import ImapUser
from tests.test_bounces import logged, sender_lines
from tests.test_send_message_reseal import FINGERPRINT


@pytest.fixture
def auth(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


async def worker_view(db: asyncpg.Pool, sender_id: int) -> tuple[Any, ...]:
    """What the bounce worker goes by: the watch's fingerprint and the place reached in INBOX."""
    fingerprint = dict(await db.fetch(FINGERPRINT, sender_id))[sender_id]
    place = await db.fetchrow("SELECT imap_place, imap_uidvalidity, imap_next_uid FROM senders WHERE id = $1",
                              sender_id)
    return fingerprint, tuple(place)


async def looked(db: asyncpg.Pool, sender_id: int) -> tuple[Any, ...]:
    """`worker_view` once the watch's first look has written the place it reached."""
    deadline = time.monotonic() + 60
    while (await db.fetchval("SELECT imap_next_uid FROM senders WHERE id = $1", sender_id)) is None:
        assert time.monotonic() < deadline, "the watch never looked at the mailbox"
        await asyncio.sleep(0.1)
    return await worker_view(db, sender_id)


async def renewals_pass(db: asyncpg.Pool, sender_id: int, count: int = 3) -> None:
    """Wait until the watch's claim was renewed `count` times: each renewal compares the settings."""
    seen: set[Any] = set()
    deadline = time.monotonic() + 60
    while len(seen) <= count:
        assert time.monotonic() < deadline, "the watch's claim was not renewed"
        seen.add(await db.fetchval("SELECT imap_claimed_until FROM senders WHERE id = $1", sender_id))
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.5)  # a session ended by the last renewal has logged it by now


async def test_settings_saved_unchanged_keep_the_watch_and_its_place(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink, workers: Workers, dovecot: DovecotServer,
    new_imap_user: Callable[..., ImapUser], db: asyncpg.Pool,
) -> None:
    user = new_imap_user()
    # The SMTP password is the mailbox's too, as with a provider's app password.
    sender = await make_sender(api, auth, clean_sink, from_email=user.name, password=user.password)
    sender_id = sender["id"]
    imap = f"/v1/senders/{sender_id}/imap"
    form = {"imap_host": "127.0.0.1", "imap_port": dovecot.port, "imap_username": user.name,
            "imap_password": user.password, "imap_move_bounces": False}
    assert (await api.put(imap, headers=auth, json=form)).json()["verified"]

    marks = workers.log_marks()
    reader = workers.start("bounce", SENDPY_BOUNCE_POLL_SECONDS="600", SENDPY_BOUNCE_IDLE_LEASE_SECONDS="2")
    try:
        await logged(workers, "watching a mailbox (IDLE)", sender_id, marks)
        before = await looked(db, sender_id)
        marks = workers.log_marks()
        for _ in range(2):  # the IMAP form saved as it is, its password typed again
            again = await api.put(imap, headers=auth, json=form)
            assert again.status_code == 200 and again.json()["verified"], again.text
        await renewals_pass(db, sender_id)
        assert not sender_lines(workers, "stopped watching a mailbox", sender_id, marks)
        assert await worker_view(db, sender_id) == before

        # Reading through the SMTP password instead is a change: the watch follows it.
        marks = workers.log_marks()
        smtp = await api.put(imap, headers=auth, json={**form, "imap_password": None})
        assert smtp.status_code == 200 and smtp.json()["verified"], smtp.text
        ended = await logged(workers, "stopped watching a mailbox", sender_id, marks)
        assert ended["reason"] == "IMAP settings changed"
        await logged(workers, "watching a mailbox (IDLE)", sender_id, marks)

        # The SMTP form saved as it is, password included: still verified, the watch left be.
        before = await looked(db, sender_id)
        marks = workers.log_marks()
        edited = await api.patch(f"/v1/senders/{sender_id}", headers=auth,
                                 json={"from_name": sender["from_name"], "password": user.password})
        assert edited.status_code == 200 and edited.json()["verified"], edited.text
        await renewals_pass(db, sender_id)
        assert not sender_lines(workers, "stopped watching a mailbox", sender_id, marks)
        assert await worker_view(db, sender_id) == before

        # Another SMTP password is a change: sealed anew, the sender to be verified again.
        changed = await api.patch(f"/v1/senders/{sender_id}", headers=auth, json={"password": "another one"})
        assert changed.status_code == 200 and not changed.json()["verified"], changed.text
        assert (await worker_view(db, sender_id))[0] != before[0]
        assert reader.alive()
    finally:
        workers.kill(reader)


async def test_secrets_compare_as_bytes_whatever_their_alphabet() -> None:
    # hmac.compare_digest refuses a str that is not ASCII (TypeError): a Cyrillic app password,
    # or a CSRF header decoded as Latin-1, would have been a 500.
    assert same_secret("пароль-приложения", "пароль-приложения")
    assert not same_secret("пароль-приложения", "пароль-приложениЯ")
    assert not same_secret("Ð¿", "csrf-token")
    keys = LocalKeyProvider(os.urandom(32))
    sealed = await seal(keys, "пароль", "user:1")
    assert await holds(keys, sealed, "user:1", "пароль")
    assert not await holds(keys, sealed, "user:1", "пароль ")
    assert not await holds(keys, sealed, "user:2", "пароль")  # another context does not open it
    assert not await holds(LocalKeyProvider(os.urandom(32)), sealed, "user:1", "пароль")  # nor another key
    assert not await holds(keys, None, "user:1", "пароль")


async def test_a_csrf_header_outside_ascii_is_refused_in_words(api: httpx.AsyncClient) -> None:
    email = f"csrf-{base64.b32encode(os.urandom(5)).decode().lower()}@example.com"
    made = await api.post("/v1/auth/register", json={"email": email, "password": "correct horse 1"})
    assert made.status_code == 201, made.text
    odd = await api.post("/v1/api-keys", json={"name": "x"}, headers={"X-CSRF-Token": "\u00d0\u00bf".encode("latin-1")})
    assert odd.status_code == 403 and odd.json()["error"]["code"] == "csrf", odd.text
    good = await api.post("/v1/api-keys", json={"name": "x"}, headers={"X-CSRF-Token": made.json()["csrf_token"]})
    assert good.status_code == 201, good.text
