"""A soft bounce counts once per message, however many reports of it arrive and whether or not its
campaign still exists (issue 11, the last attack: a second report of a deleted campaign's message
made a third soft bounce "in a row" and suppressed a live mailbox). Real Dovecot, the campaigns'
real messages, the bounce reader's own look (check_sender)."""

from __future__ import annotations

import asyncio

import asyncpg
import httpx
import pytest

from functions import resources
from sendpy.devstack.imap import DovecotServer
from sendpy.devstack.smtp_sink import SmtpSink
from shared.bounces.reader import check_sender
from shared.mail.messenger import ConnectPolicy
from shared.settings import get_settings
from shared.unsubscribe import signing_key
from tests.conftest import Workers
from tests.helpers import make_sender
from tests.imap import ImapUser
from tests.test_bounces import campaign_to, dsn

ADDRESS = "full@example.com"


@pytest.fixture
def auth(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


async def test_a_repeated_report_of_a_deleted_campaigns_soft_bounce_counts_nothing(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink, workers: Workers, dovecot: DovecotServer,
    imap_user: ImapUser, db: asyncpg.Pool,
) -> None:
    sender = await make_sender(api, auth, clean_sink, from_email=imap_user.name)
    put = await api.put(f"/v1/senders/{sender['id']}/imap", headers=auth, json={
        "imap_host": "127.0.0.1", "imap_port": dovecot.port, "imap_username": imap_user.name,
        "imap_password": imap_user.password})
    assert put.json()["verified"], put.text
    campaigns: list[str] = []
    ids: list[str] = []

    async def send() -> None:
        clean_sink.clear()
        campaigns.append(await campaign_to(api, auth, sender["id"], [ADDRESS]))
        ids.append(clean_sink.messages[0].parsed()["Message-ID"])

    policy = ConnectPolicy.from_settings(get_settings())

    async def report(n: int) -> None:
        """A report of campaign n's message (each with a Message-ID of its own, as a server's
        second notice has), read by the bounce reader's look."""
        await asyncio.to_thread(dovecot.append, imap_user.name, dsn(
            imap_user.name, ADDRESS, ids[n], "4.2.2", "failed", "452 4.2.2 Mailbox full"))
        assert await check_sender(db, resources.keys(), policy, sender["id"],
                                  signing_key=signing_key(get_settings())) is not None

    async def count() -> int:
        found = await db.fetchval("SELECT s.count FROM soft_bounces s JOIN senders d ON d.user_id = s.user_id"
                                  " WHERE d.id = $1 AND s.address = $2", sender["id"], ADDRESS)
        return int(found or 0)

    async def suppressed() -> bool:
        items = (await api.get(f"/v1/suppressions?q={ADDRESS}", headers=auth)).json()["items"]
        return any(i["email"] == ADDRESS for i in items)

    await send()
    await send()
    await report(0)
    await report(1)
    assert await count() == 2
    # The first campaign is deleted; its message is reported again (and the second's, whose
    # campaign is still there), and then the first's once more.
    assert (await api.delete(f"/v1/campaigns/{campaigns[0]}", headers=auth)).status_code == 204
    await report(0)
    await report(1)
    await report(0)
    assert await count() == 2 and not await suppressed()
    # A third message that soft-bounces is a third in a row: now the mailbox is suppressed.
    await send()
    await report(2)
    assert await count() == 3 and await suppressed()
