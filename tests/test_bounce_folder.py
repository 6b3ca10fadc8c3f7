"""The folder bounces are moved to is named so that a Russian reader recognises it too
(«Возвраты Sendpy (bounces)»), and a mailbox that has the English-only «Sendpy bounces» of before
keeps its bounces there. Real Dovecot, the bounce reader's own look (check_sender)."""

from __future__ import annotations

import asyncio
import imaplib
import re

import asyncpg
import httpx
import pytest
from imapclient import imap_utf7

from functions import resources
from sendpy.devstack.imap import DovecotServer
from sendpy.devstack.smtp_sink import SmtpSink
from sendpy.devstack.tls import LocalCertificates
from shared.bounces.reader import BOUNCE_FOLDER, OLD_BOUNCE_FOLDER, check_sender
from shared.mail.messenger import ConnectPolicy
from shared.settings import get_settings
from shared.unsubscribe import signing_key
from tests.conftest import Workers
from tests.helpers import make_sender
from tests.imap import ImapUser
from tests.sent_mail import message_id_to
from tests.test_bounce_matching import folder_count
from tests.test_bounces import campaign_to, dsn


@pytest.fixture
def auth(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


def folders(dovecot: DovecotServer, certs: LocalCertificates, user: ImapUser, create: str | None = None) -> set[str]:
    """The mailbox's folder names as a mail client shows them (after creating `create`)."""
    client = imaplib.IMAP4_SSL(dovecot.host, dovecot.port, ssl_context=certs.client_context(), timeout=30)
    try:
        client.login(user.name, user.password)
        if create:
            client.create(f'"{imap_utf7.encode(create).decode()}"')
        _, listed = client.list()
        # (\HasNoChildren) "/" "Sendpy bounces", or … "/" INBOX
        names = [re.sub(rb'^\([^)]*\) (?:"[^"]*"|NIL) ', b"", line) for line in listed if isinstance(line, bytes)]
        return {imap_utf7.decode(name.strip(b'"')) for name in names}
    finally:
        client.logout()


@pytest.mark.parametrize("had_old_folder", [False, True])
async def test_bounces_go_to_a_folder_named_in_both_languages_or_to_the_one_of_before(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink, workers: Workers, dovecot: DovecotServer,
    imap_user: ImapUser, db: asyncpg.Pool, certs: LocalCertificates, had_old_folder: bool,
) -> None:
    assert BOUNCE_FOLDER == "Возвраты Sendpy (bounces)"
    if had_old_folder:
        await asyncio.to_thread(folders, dovecot, certs, imap_user, OLD_BOUNCE_FOLDER)
    sender = await make_sender(api, auth, clean_sink, from_email=imap_user.name)
    put = await api.put(f"/v1/senders/{sender['id']}/imap", headers=auth, json={
        "imap_host": "127.0.0.1", "imap_port": dovecot.port, "imap_username": imap_user.name,
        "imap_password": imap_user.password, "imap_move_bounces": True})
    assert put.status_code == 200 and put.json()["verified"], put.text
    await campaign_to(api, auth, sender["id"], ["gone@example.com"])
    await asyncio.to_thread(dovecot.append, imap_user.name, dsn(
        imap_user.name, "gone@example.com", message_id_to(clean_sink, "gone@example.com", imap_user.name), "5.1.1", "failed",
        "550 5.1.1 no such user"))
    policy = ConnectPolicy.from_settings(get_settings())
    assert await check_sender(db, resources.keys(), policy, sender["id"], signing_key=signing_key(get_settings())) == 1

    moved_to, other = (OLD_BOUNCE_FOLDER, BOUNCE_FOLDER) if had_old_folder else (BOUNCE_FOLDER, OLD_BOUNCE_FOLDER)
    names = await asyncio.to_thread(folders, dovecot, certs, imap_user)
    assert moved_to in names and other not in names, names
    assert await asyncio.to_thread(folder_count, dovecot, certs, imap_user, moved_to) == 1
    assert await asyncio.to_thread(folder_count, dovecot, certs, imap_user, "INBOX") == 0
