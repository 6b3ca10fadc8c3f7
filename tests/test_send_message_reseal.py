"""/api/send-message keeps a sender's sealed password while it is the same password (issue 11):
sealed afresh on every call, it changed the fingerprint an IMAP IDLE watch compares
(shared/bounces/idle.py), so every send ended the sender's watch ("IMAP settings changed") and
cost a log-in, and bounces waited for the next poll."""

from __future__ import annotations

import asyncpg
import httpx

from sendpy.devstack.smtp_sink import SmtpSink
from tests.test_send_message_e2e import seed_request

# What an IDLE session's fingerprint is made of (idle.py), per sender.
FINGERPRINT = """SELECT id, md5(concat_ws('|', imap_host, imap_port, coalesce(imap_username, username),
                 encode(coalesce(imap_password_encrypted, password_encrypted), 'hex')))
                 FROM senders WHERE user_id = (SELECT user_id FROM senders WHERE id = $1)"""


async def test_the_same_password_keeps_the_watch_and_a_new_one_changes_it(
    api: httpx.AsyncClient, api_key: str, clean_sink: SmtpSink, db: asyncpg.Pool
) -> None:
    auth = {"Authorization": f"Bearer {api_key}"}
    first = await api.post("/api/send-message", json=seed_request(clean_sink, ["a@example.com"]), headers=auth)
    assert first.status_code == 202, first.text
    sender_id = await db.fetchval("SELECT sender_id FROM campaigns WHERE id = $1::uuid", first.json()["campaign_id"])
    before = dict(await db.fetch(FINGERPRINT, sender_id))
    again = await api.post("/api/send-message", json=seed_request(clean_sink, ["b@example.com"]), headers=auth)
    assert again.status_code == 202, again.text
    assert dict(await db.fetch(FINGERPRINT, sender_id)) == before
    changed = await api.post("/api/send-message", headers=auth,
                             json=seed_request(clean_sink, ["c@example.com"], smtp_password="another one"))
    assert changed.status_code == 202, changed.text
    after = dict(await db.fetch(FINGERPRINT, sender_id))
    assert after.keys() == before.keys() and after[sender_id] != before[sender_id]
