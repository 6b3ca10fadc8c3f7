"""Bounces read back from the sender's own INBOX: a real Dovecot, the real bounce worker, the
campaign's real messages. Every non-bounce is left as it was; nothing is deleted."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
import httpx
import pytest

from sendpy.devstack.bounce_mail import BounceMailboxes, delivery_status_notification
from sendpy.devstack.imap import DovecotServer
from sendpy.devstack.ports import free_port
from sendpy.devstack.smtp_sink import SmtpSink
from tests.conftest import Workers
from tests.helpers import make_sender, make_upload, wait_status
from tests.imap import ImapUser


@pytest.fixture
def auth(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


def dsn(from_email: str, recipient: str, message_id: str, status: str, action: str, diagnostic: str) -> bytes:
    return delivery_status_notification(from_email, recipient, message_id, status=status, action=action,
                                        diagnostic=diagnostic)


async def campaign_to(api: httpx.AsyncClient, auth: dict[str, str], sender_id: int, emails: list[str]) -> str:
    upload = await make_upload(api, auth, ("email\n" + "\n".join(emails) + "\n").encode())
    draft = (await api.post("/v1/campaigns", headers=auth, json={
        "sender_id": sender_id, "upload_id": upload["id"], "subject": "Hello", "html_body": "<p>Hi</p>"})).json()
    assert (await api.post(f"/v1/campaigns/{draft['id']}/start", headers=auth)).status_code == 202
    await wait_status(api, auth, draft["id"], {"finished"})
    return str(draft["id"])


async def statuses(api: httpx.AsyncClient, auth: dict[str, str], campaign_id: str) -> dict[str, dict[str, Any]]:
    items = (await api.get(f"/v1/campaigns/{campaign_id}/recipients", headers=auth)).json()["items"]
    return {item["email"]: item for item in items}


async def test_bounces_in_the_inbox_are_recorded_and_nothing_else_is_touched(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink, workers: Workers, dovecot: DovecotServer,
    imap_user: ImapUser, db: asyncpg.Pool,
) -> None:
    from_email = imap_user.name  # the IMAP login is the mailbox address, as at most providers
    sender = await make_sender(api, auth, clean_sink, from_email=from_email)
    imap = {"imap_host": "127.0.0.1", "imap_port": dovecot.port, "imap_username": imap_user.name}

    wrong = await api.put(f"/v1/senders/{sender['id']}/imap", headers={**auth, "Accept-Language": "ru"},
                          json={**imap, "imap_password": "not it"})
    assert wrong.status_code == 422 and wrong.json()["error"]["code"] == "imap_auth", wrong.text
    assert "не принял логин или пароль" in wrong.json()["error"]["message"]
    still_wrong = await api.post(f"/v1/senders/{sender['id']}/imap/verify", headers=auth)
    assert still_wrong.status_code == 422 and still_wrong.json()["imap"]["problem"]
    ok = await api.put(f"/v1/senders/{sender['id']}/imap", headers=auth, json={**imap, "imap_password": imap_user.password})
    assert ok.status_code == 200 and ok.json()["verified"] is True, ok.text

    emails = ["hard@example.com", "soft@example.com", "fine@example.com"]
    campaign_id = await campaign_to(api, auth, sender["id"], emails)
    ids = {m.rcpt_tos[0]: m.parsed()["Message-ID"] for m in clean_sink.messages}
    inbox = [
        dsn(from_email, "hard@example.com", ids["hard@example.com"], "5.1.1", "failed",
            "550 5.1.1 <hard@example.com>: Recipient address rejected: User unknown"),
        dsn(from_email, "soft@example.com", ids["soft@example.com"], "4.2.2", "delayed",
            "452 4.2.2 Mailbox full"),
        dsn(from_email, "never@example.com", "<not-ours@example.org>", "5.1.1", "failed", "550 no such user"),
        (f"From: Fine <fine@example.com>\r\nTo: {from_email}\r\nSubject: Re: Hello\r\n"
         "Message-ID: <reply@example.com>\r\n\r\nThanks, got it!\r\n").encode(),
        (f"From: Boss <boss@example.com>\r\nTo: {from_email}\r\nSubject: Out of Office\r\n"
         "Auto-Submitted: auto-replied\r\n\r\nI am away until Monday.\r\n").encode(),
        b"Content-Type: multipart/report; boundary=\r\n\r\n--\x00\xff broken",
        (f"From: big@example.com\r\nTo: {from_email}\r\nSubject: big\r\n\r\n").encode() + b"x" * (50 * 1024 * 1024),
    ]
    for raw in inbox:
        await asyncio.to_thread(dovecot.append, imap_user.name, raw)

    reader = workers.start("bounce", SENDPY_BOUNCE_POLL_SECONDS="1")
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            found = await statuses(api, auth, campaign_id)
            if found["hard@example.com"]["status"] == "bounced" and found["soft@example.com"]["status"] == "bounced":
                break
            await asyncio.sleep(0.5)
        assert found["hard@example.com"]["status"] == "bounced", found
        assert found["hard@example.com"]["reply"].startswith("5.1.1"), found
        assert found["soft@example.com"]["status"] == "bounced" and found["soft@example.com"]["reply"].startswith("4.2.2")
        assert found["fine@example.com"]["status"] == "sent"
        progress = (await api.get(f"/v1/campaigns/{campaign_id}", headers=auth)).json()
        assert (progress["counts"]["sent"], progress["counts"]["bounced"]) == (1, 2)

        suppressed = {i["email"]: i for i in (await api.get("/v1/suppressions", headers=auth)).json()["items"]}
        assert set(suppressed) == {"hard@example.com"}  # the soft bounce is counted, not yet suppressed
        assert suppressed["hard@example.com"]["reason"] == "hard_bounce"
        assert suppressed["hard@example.com"]["campaign_id"] == campaign_id

        status = (await api.get(f"/v1/senders/{sender['id']}/imap", headers=auth)).json()
        assert status["problem"] is None and status["checked_at"] and status["bounced_30d"] == 2

        # Nothing deleted, nothing marked read: the user's INBOX is as it was.
        def inbox_state() -> tuple[int, bool]:
            client = dovecot.login(imap_user.name)
            try:
                client.select("INBOX", readonly=True)
                _, all_ids = client.search(None, "ALL")
                _, unseen = client.search(None, "UNSEEN")
                return len(all_ids[0].split()), all_ids == unseen
            finally:
                client.logout()

        assert await asyncio.to_thread(inbox_state) == (len(inbox), True)

        # A second look changes nothing (each bounce message is recorded once).
        await db.execute("UPDATE senders SET imap_next_uid = 1, imap_checked_at = NULL WHERE id = $1", sender["id"])
        await asyncio.sleep(3)
        assert await db.fetchval("SELECT count FROM soft_bounces WHERE address = 'soft@example.com'") == 1

        # The server goes away: the problem is shown on the sender, in both languages.
        await db.execute("UPDATE senders SET imap_port = $2, imap_checked_at = NULL WHERE id = $1",
                         sender["id"], free_port())
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            status = (await api.get(f"/v1/senders/{sender['id']}/imap", headers=auth)).json()
            if status["problem"]:
                break
            await asyncio.sleep(0.5)
        assert "отклонил подключение" in status["problem"] and "refused the IMAP connection" in status["problem"]
    finally:
        workers.kill(reader)


async def test_mail_to_the_test_domain_bounces_into_the_senders_mailbox_and_is_recorded(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink, workers: Workers, dovecot: DovecotServer,
) -> None:
    # The run command's stack: its SMTP sink accepts mail to @bounce.example.net and delivers a DSN into
    # the sender's own mailbox in Dovecot (the SMTP login and password), as a real server would.
    clean_sink.bounces = BounceMailboxes(dovecot)
    reader = None
    try:
        sender = await make_sender(api, auth, clean_sink)
        campaign_id = await campaign_to(api, auth, sender["id"], ["nobody@bounce.example.net", "someone@example.com"])
        # IMAP settings: only the server; login and password are the SMTP ones.
        settings = await api.put(f"/v1/senders/{sender['id']}/imap", headers=auth,
                                 json={"imap_host": "127.0.0.1", "imap_port": dovecot.port})
        assert settings.status_code == 200 and settings.json()["verified"], settings.text
        reader = workers.start("bounce", SENDPY_BOUNCE_POLL_SECONDS="1")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            found = await statuses(api, auth, campaign_id)
            if found["nobody@bounce.example.net"]["status"] == "bounced":
                break
            await asyncio.sleep(0.5)
        assert found["nobody@bounce.example.net"]["status"] == "bounced", found
        assert found["someone@example.com"]["status"] == "sent"
        listed = (await api.get("/v1/suppressions?q=bounce.example.net", headers=auth)).json()["items"]
        assert [(i["email"], i["reason"]) for i in listed] == [("nobody@bounce.example.net", "hard_bounce")]
    finally:
        clean_sink.bounces = None
        if reader is not None:
            workers.kill(reader)


async def test_a_renumbered_mailbox_is_read_again_without_recording_anything_twice(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink, workers: Workers, dovecot: DovecotServer,
    imap_user: ImapUser, db: asyncpg.Pool,
) -> None:
    sender = await make_sender(api, auth, clean_sink, from_email=imap_user.name)
    assert (await api.put(f"/v1/senders/{sender['id']}/imap", headers=auth, json={
        "imap_host": "127.0.0.1", "imap_port": dovecot.port, "imap_username": imap_user.name,
        "imap_password": imap_user.password})).json()["verified"]
    campaign_id = await campaign_to(api, auth, sender["id"], ["first@example.com", "second@example.com"])
    ids = {m.rcpt_tos[0]: m.parsed()["Message-ID"] for m in clean_sink.messages}

    async def bounced(email: str) -> None:
        await asyncio.to_thread(dovecot.append, imap_user.name, dsn(
            imap_user.name, email, ids[email], "5.1.1", "failed", f"550 5.1.1 <{email}>: no such user"))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if (await statuses(api, auth, campaign_id))[email]["status"] == "bounced":
                return
            await asyncio.sleep(0.5)
        raise AssertionError(f"{email} was not recorded as bounced")

    for n in range(3):  # ordinary mail the person deletes later
        await asyncio.to_thread(dovecot.append, imap_user.name,
                                f"From: friend@example.com\r\nSubject: note {n}\r\n\r\nhi\r\n".encode())

    def delete_the_notes() -> None:
        client = dovecot.login(imap_user.name)
        try:
            client.select("INBOX")
            _, found = client.search(None, "SUBJECT", "note")
            for number in found[0].split():
                client.store(number.decode(), "+FLAGS", "\\Deleted")
            client.expunge()
        finally:
            client.logout()

    reader = workers.start("bounce", SENDPY_BOUNCE_POLL_SECONDS="1")
    try:
        await bounced("first@example.com")
        before = await db.fetchval("SELECT imap_uidvalidity FROM senders WHERE id = $1", sender["id"])
        # The person deletes the notes, then the server renumbers the mailbox (its index lost):
        # UIDVALIDITY changes and the new UIDs start below where the reader had got to, so a reader
        # that trusted the old UIDs would never see the next bounce.
        await asyncio.to_thread(delete_the_notes)
        for path in (dovecot.data_dir / "mail" / imap_user.name).rglob("dovecot*"):
            if path.is_file():
                path.unlink()
        await bounced("second@example.com")
        after = await db.fetchval("SELECT imap_uidvalidity FROM senders WHERE id = $1", sender["id"])
        assert after != before
        # The first bounce was read again under its new UID, and not recorded a second time.
        assert await db.fetchval("SELECT count(*) FROM bounce_messages WHERE sender_id = $1", sender["id"]) == 2
        listed = (await api.get("/v1/suppressions", headers=auth)).json()["items"]
        assert sorted(i["email"] for i in listed) == ["first@example.com", "second@example.com"]
    finally:
        workers.kill(reader)
