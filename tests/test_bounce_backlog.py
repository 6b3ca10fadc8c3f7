"""A bounce behind a backlog of other mail (issue 11): a look reads at most 1,000 messages, and a
watched (IDLE) sender's next look came only with new mail or the 25-minute IDLE re-issue, so a
bounce behind 8,000 old messages waited hours. Turning bounce reading off and on again with the
same mailbox read it all again from its first message. And each batch searched "UID n:*", which
answers with the whole backlog every time: over 130,000 messages that is more than a megabyte, the
look failed as "too large" (and quadratic before that); now a bounded window of UIDs at a time,
across deleted stretches too."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import asyncpg
import httpx
import imapclient
import pytest

from functions import resources
from sendpy.devstack.imap import DovecotServer
from sendpy.devstack.smtp_sink import SmtpSink
from shared import imap_connection, imap_mailbox
from shared.bounces.reader import MAX_BATCHES, check_sender
from shared.imap_accounts import FETCH_BATCH
from shared.mail.messenger import ConnectPolicy
from shared.settings import get_settings
from shared.unsubscribe import signing_key
from tests.conftest import Workers
from tests.helpers import make_sender
from tests.imap import ImapUser
from tests.sent_mail import message_id_to
from tests.test_bounces import bounced_within, campaign_to, dsn, logged, statuses


@pytest.fixture
def auth(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


def fill(dovecot: DovecotServer, user: ImapUser, count: int) -> None:
    """`count` ordinary messages in the user's INBOX, over one IMAP session."""
    client = dovecot.login(user.name, timeout=120)
    try:
        for n in range(count):
            client.append("INBOX", None, None, (f"From: someone{n}@example.com\r\nTo: {user.name}\r\n"
                                                f"Subject: note {n}\r\n\r\nHello {n}\r\n").encode())
    finally:
        client.logout()


async def test_a_bounce_behind_a_backlog_is_read_at_once_and_the_place_survives_off_and_on(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink, workers: Workers, dovecot: DovecotServer,
    imap_user: ImapUser, db: asyncpg.Pool,
) -> None:
    sender = await make_sender(api, auth, clean_sink, from_email=imap_user.name)
    imap = {"imap_host": "127.0.0.1", "imap_port": dovecot.port, "imap_username": imap_user.name,
            "imap_password": imap_user.password}
    assert (await api.put(f"/v1/senders/{sender['id']}/imap", headers=auth, json=imap)).json()["verified"]
    campaign_id = await campaign_to(api, auth, sender["id"], ["gone@example.com"])
    message_id = message_id_to(clean_sink, "gone@example.com", imap_user.name)
    backlog = MAX_BATCHES * FETCH_BATCH + 300  # one look's worth and more
    await asyncio.to_thread(fill, dovecot, imap_user, backlog)
    await asyncio.to_thread(dovecot.append, imap_user.name, dsn(
        imap_user.name, "gone@example.com", message_id, "5.1.1", "failed", "550 5.1.1 no such user"))

    marks = workers.log_marks()
    # Polled once in ten minutes and watched with IDLE, where no new mail comes: only a look that
    # follows the capped one at once reaches the bounce.
    reader = workers.start("bounce", SENDPY_BOUNCE_POLL_SECONDS="600")
    try:
        await logged(workers, "watching a mailbox (IDLE)", sender["id"], marks, timeout=60)
        await bounced_within(api, auth, campaign_id, "gone@example.com", 90)
        place = await db.fetchrow("SELECT imap_next_uid, imap_uidvalidity FROM senders WHERE id = $1", sender["id"])
        assert place["imap_next_uid"] == backlog + 2, dict(place)
    finally:
        workers.kill(reader)

    # Off, then on again with the same mailbox: the place reached is kept (the reader compares
    # UIDVALIDITY), so the mailbox is not read again from its first message.
    off = await api.put(f"/v1/senders/{sender['id']}/imap", headers=auth, json={"imap_enabled": False})
    assert off.status_code == 200, off.text
    on = await api.put(f"/v1/senders/{sender['id']}/imap", headers=auth, json=imap)
    assert on.json()["verified"], on.text
    kept = await db.fetchrow("SELECT imap_next_uid, imap_uidvalidity FROM senders WHERE id = $1", sender["id"])
    assert dict(kept) == dict(place)
    # Another login on the same server is another mailbox: read afresh.
    other = await api.put(f"/v1/senders/{sender['id']}/imap", headers=auth,
                          json={**imap, "imap_username": "someone-else@example.org"})
    assert other.status_code in (200, 422), other.text
    assert await db.fetchval("SELECT imap_next_uid FROM senders WHERE id = $1", sender["id"]) is None


async def test_turning_reading_off_keeps_the_place_only_for_the_same_mailbox(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink, dovecot: DovecotServer,
    new_imap_user: Callable[..., ImapUser], db: asyncpg.Pool,
) -> None:
    first = new_imap_user()
    sender = await make_sender(api, auth, clean_sink, from_email=first.name)
    imap = {"imap_host": "127.0.0.1", "imap_port": dovecot.port, "imap_username": first.name,
            "imap_password": first.password}
    assert (await api.put(f"/v1/senders/{sender['id']}/imap", headers=auth, json=imap)).json()["verified"]
    await db.execute("UPDATE senders SET imap_next_uid = 77, imap_uidvalidity = 5 WHERE id = $1", sender["id"])
    await api.put(f"/v1/senders/{sender['id']}/imap", headers=auth, json={"imap_enabled": False})
    second = new_imap_user()
    moved = await api.put(f"/v1/senders/{sender['id']}/imap", headers=auth,
                          json={**imap, "imap_username": second.name, "imap_password": second.password})
    assert moved.json()["verified"], moved.text
    assert await db.fetchval("SELECT imap_next_uid FROM senders WHERE id = $1", sender["id"]) is None


def expunge(dovecot: DovecotServer, user: ImapUser, uids: str) -> int:
    """Delete the messages `uids` ("a:b") from the user's INBOX for good; returns its UIDVALIDITY."""
    client = dovecot.login(user.name, timeout=120)
    try:
        client.select("INBOX")
        uidvalidity = int(client.untagged_responses["UIDVALIDITY"][0])
        assert client.uid("STORE", uids, "+FLAGS", "(\\Deleted)")[0] == "OK"
        assert client.expunge()[0] == "OK"
        return uidvalidity
    finally:
        client.logout()


@pytest.mark.parametrize("searches_a_call", [imap_mailbox.MAX_SEARCHES, 1], ids=["crossed-in-one-call", "window-a-call"])
async def test_the_backlog_is_searched_a_window_at_a_time_across_a_deleted_stretch(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink, workers: Workers, dovecot: DovecotServer,
    imap_user: ImapUser, db: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch, searches_a_call: int,
) -> None:
    # 1,000 messages, of which UIDs 201–800 are deleted, then a bounce (UID 1,001). An answer
    # line may be 1 KB here instead of 1 MB: "UID SEARCH UID 1:*" (401 UIDs, 1.5 KB) reads as too
    # large, as 130,000 UIDs do in real life; windows must get through, and the deleted stretch
    # must not end the look before the bounce.
    monkeypatch.setattr(imap_connection, "MAX_LINE_BYTES", 1024)
    # With one search a call, the empty windows come back to the reader as batches with nothing
    # in them: the look must go on past them, not take them for the mailbox's end.
    monkeypatch.setattr(imap_mailbox, "MAX_SEARCHES", searches_a_call)
    sender = await make_sender(api, auth, clean_sink, from_email=imap_user.name)
    imap = {"imap_host": "127.0.0.1", "imap_port": dovecot.port, "imap_username": imap_user.name,
            "imap_password": imap_user.password}
    assert (await api.put(f"/v1/senders/{sender['id']}/imap", headers=auth, json=imap)).json()["verified"]
    campaign_id = await campaign_to(api, auth, sender["id"], ["gone@example.com"])
    message_id = message_id_to(clean_sink, "gone@example.com", imap_user.name)
    await asyncio.to_thread(fill, dovecot, imap_user, 1000)
    uidvalidity = await asyncio.to_thread(expunge, dovecot, imap_user, "201:800")
    assert await asyncio.to_thread(dovecot.append, imap_user.name, dsn(
        imap_user.name, "gone@example.com", message_id, "5.1.1", "failed", "550 5.1.1 no such user")) == 1001
    # The place: the mailbox's first message (so the look does not begin with a SEARCH SINCE).
    await db.execute("UPDATE senders SET imap_next_uid = 1, imap_uidvalidity = $2 WHERE id = $1",
                     sender["id"], uidvalidity)

    searches: list[tuple[str, int]] = []
    search = imapclient.IMAPClient.search

    def counted(self: imapclient.IMAPClient, criteria: Any = "ALL", charset: str | None = None) -> Any:
        found = search(self, criteria, charset)
        searches.append((" ".join(str(c) for c in criteria), len(found)))
        return found

    monkeypatch.setattr(imapclient.IMAPClient, "search", counted)
    policy = ConnectPolicy.from_settings(get_settings())
    marked = await check_sender(db, resources.keys(), policy, sender["id"], signing_key=signing_key(get_settings()))
    problem = await db.fetchval("SELECT imap_problem FROM senders WHERE id = $1", sender["id"])
    assert marked == 1 and problem is None, (problem, searches)
    assert (await statuses(api, auth, campaign_id))["gone@example.com"]["status"] == "bounced"
    assert await db.fetchval("SELECT imap_next_uid FROM senders WHERE id = $1", sender["id"]) == 1002
    assert all("*" not in criteria for criteria, _ in searches), searches
    # About one search a batch of 50, and the deleted stretch crossed in a few doubling windows.
    assert len(searches) <= 401 // FETCH_BATCH + 8, searches
