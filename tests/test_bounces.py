"""Bounces read back from the sender's own INBOX: a real Dovecot, the real bounce worker, the
campaign's real messages. Every non-bounce is left as it was; nothing is deleted."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from sendpy.devstack.bounce_mail import BounceMailboxes, delivery_status_notification
from sendpy.devstack.imap import DovecotServer, find_binary
from sendpy.devstack.ports import free_port
from sendpy.devstack.smtp_sink import SmtpSink
from sendpy.devstack.tls import LocalCertificates
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
        dsn(from_email, "soft@example.com", ids["soft@example.com"], "4.2.2", "failed",
            "452 4.2.2 Mailbox full"),
        # A delay notice ("still trying") is not a bounce: fine@ stays sent.
        dsn(from_email, "fine@example.com", ids["fine@example.com"], "4.4.1", "delayed",
            "connect to mx.example.com[203.0.113.25]:25: Connection timed out"),
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


def sender_lines(workers: Workers, message: str, sender_id: int, since: dict[Path, int]) -> list[dict[str, Any]]:
    """The worker log records `message` about one sender, written after `since`."""
    records = [json.loads(line.split(": ", 1)[1]) for line in workers.logged(message, since)]
    return [r for r in records if r.get("sender") == sender_id]


async def logged(workers: Workers, message: str, sender_id: int, since: dict[Path, int],
                 timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while not (found := sender_lines(workers, message, sender_id, since)):
        assert time.monotonic() < deadline, f"no {message!r} for sender {sender_id} in {timeout} s"
        await asyncio.sleep(0.1)
    return found[-1]


async def bounced_within(api: httpx.AsyncClient, auth: dict[str, str], campaign_id: str, email: str,
                         seconds: float) -> float:
    started = time.monotonic()
    while (await statuses(api, auth, campaign_id))[email]["status"] != "bounced":
        assert time.monotonic() - started < seconds, f"{email} not recorded within {seconds} s"
        await asyncio.sleep(0.1)
    return time.monotonic() - started


def connected(dovecot: DovecotServer, user: str) -> int:
    """IMAP sessions Dovecot has open for `user`, from its own bookkeeping (doveadm who)."""
    found = subprocess.run([str(find_binary("doveadm")), "-c", str(dovecot.config_path), "who", "-1", user],
                           capture_output=True, text=True, check=False)
    return sum(1 for line in found.stdout.splitlines()[1:] if line.split() and line.split()[0] == user)


async def test_idle_hears_a_bounce_within_seconds_and_follows_the_settings(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink, workers: Workers, dovecot: DovecotServer,
    new_imap_user: Callable[..., ImapUser], db: asyncpg.Pool,
) -> None:
    first, second = new_imap_user(), new_imap_user()
    sender = await make_sender(api, auth, clean_sink, from_email=first.name)
    imap = {"imap_host": "127.0.0.1", "imap_port": dovecot.port}
    put = await api.put(f"/v1/senders/{sender['id']}/imap", headers=auth,
                        json={**imap, "imap_username": first.name, "imap_password": first.password})
    assert put.json()["verified"], put.text
    emails = ["gone@example.com", "moved@example.com", "kept@example.com"]
    campaign_id = await campaign_to(api, auth, sender["id"], emails)
    ids = {m.rcpt_tos[0]: m.parsed()["Message-ID"] for m in clean_sink.messages}

    def bounce_of(user: ImapUser, email: str) -> bytes:
        return dsn(user.name, email, ids[email], "5.1.1", "failed", f"550 5.1.1 <{email}>: no such user")

    marks = workers.log_marks()
    # Polled once in ten minutes: a bounce recorded within seconds can only have been heard by IDLE.
    reader = workers.start("bounce", SENDPY_BOUNCE_POLL_SECONDS="600", SENDPY_BOUNCE_IDLE_LEASE_SECONDS="2")
    try:
        await logged(workers, "watching a mailbox (IDLE)", sender["id"], marks)
        await asyncio.sleep(1)  # past the first look, which would also find a message appended now
        await asyncio.to_thread(dovecot.append, first.name, bounce_of(first, "gone@example.com"))
        assert await bounced_within(api, auth, campaign_id, "gone@example.com", 5) < 5
        assert await asyncio.to_thread(connected, dovecot, first.name) == 1  # IDLE's; each look logs out

        # Other settings (another mailbox): the old session ends, a new one watches the new mailbox.
        marks = workers.log_marks()
        put = await api.put(f"/v1/senders/{sender['id']}/imap", headers=auth,
                            json={**imap, "imap_username": second.name, "imap_password": second.password})
        assert put.json()["verified"], put.text
        ended = await logged(workers, "stopped watching a mailbox", sender["id"], marks)
        assert ended["reason"] == "IMAP settings changed"
        await logged(workers, "watching a mailbox (IDLE)", sender["id"], marks)
        await asyncio.sleep(1)
        assert await asyncio.to_thread(connected, dovecot, first.name) == 0
        await asyncio.to_thread(dovecot.append, second.name, bounce_of(second, "moved@example.com"))
        assert await bounced_within(api, auth, campaign_id, "moved@example.com", 5) < 5

        # Bounce reading turned off: the session ends and nothing keeps the mailbox open.
        marks = workers.log_marks()
        put = await api.put(f"/v1/senders/{sender['id']}/imap", headers=auth, json={"imap_enabled": False})
        assert put.status_code == 200 and put.json()["imap"]["host"] is None, put.text
        ended = await logged(workers, "stopped watching a mailbox", sender["id"], marks)
        assert ended["reason"] == "IMAP settings removed"
        for _ in range(50):  # the logout reaches Dovecot's bookkeeping a moment later
            if not await asyncio.to_thread(connected, dovecot, second.name):
                break
            await asyncio.sleep(0.1)
        assert await asyncio.to_thread(connected, dovecot, second.name) == 0
        assert await db.fetchval("SELECT imap_claimed_until FROM senders WHERE id = $1", sender["id"]) is None
        assert (await statuses(api, auth, campaign_id))["kept@example.com"]["status"] == "sent"
        assert reader.alive()
    finally:
        workers.kill(reader)


class DovecotWithoutIdle(DovecotServer):
    """Dovecot that does not advertise IDLE, as some company servers and proxies do not."""

    def config(self) -> str:
        return super().config() + "protocol imap {\n  imap_capability = IMAP4rev1 LITERAL+ UIDPLUS\n}\n"


async def test_past_the_idle_limit_or_without_idle_a_mailbox_is_polled_and_sigterm_stops_at_once(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink, workers: Workers, dovecot: DovecotServer,
    new_imap_user: Callable[..., ImapUser], db: asyncpg.Pool, certs: LocalCertificates, workdir: Path,
) -> None:
    plain = DovecotWithoutIdle(workdir / "dovecot-no-idle", certs)
    plain.start()
    readers = []
    # Senders of earlier tests may still point at IMAP servers those tests have stopped; with one
    # IDLE slot they would take turns failing for it. This test is about its own three senders.
    await db.execute("UPDATE senders SET imap_host = NULL WHERE imap_host IS NOT NULL")
    try:
        users = [new_imap_user(), new_imap_user()]
        no_idle_user = ImapUser(plain.add_user("plain@example.org", "plain pass"), "plain pass")
        senders: list[dict[str, Any]] = []
        campaigns: list[str] = []
        ids: dict[str, str] = {}
        for user, server in [(users[0], dovecot), (users[1], dovecot), (no_idle_user, plain)]:
            clean_sink.clear()
            sender = await make_sender(api, auth, clean_sink, from_email=user.name)
            put = await api.put(f"/v1/senders/{sender['id']}/imap", headers=auth, json={
                "imap_host": "127.0.0.1", "imap_port": server.port, "imap_username": user.name,
                "imap_password": user.password})
            assert put.json()["verified"], put.text
            email = f"nobody{len(senders)}@example.com"
            campaigns.append(await campaign_to(api, auth, sender["id"], [email]))
            ids[email] = clean_sink.messages[0].parsed()["Message-ID"]
            senders.append(sender)

        async def bounce(n: int, user: ImapUser, server: DovecotServer) -> None:
            email = f"nobody{n}@example.com"
            await asyncio.to_thread(server.append, user.name, dsn(user.name, email, ids[email], "5.1.1", "failed",
                                                                  "550 5.1.1 no such user"))
            await bounced_within(api, auth, campaigns[n], email, 20)

        # A server without IDLE: the worker finds out, and polls it.
        marks = workers.log_marks()
        readers.append(workers.start("bounce", SENDPY_BOUNCE_POLL_SECONDS="2"))
        await logged(workers, "the IMAP server offers no IDLE; polling it", senders[2]["id"], marks)
        await logged(workers, "watching a mailbox (IDLE)", senders[0]["id"], marks)
        await bounce(2, no_idle_user, plain)
        assert not sender_lines(workers, "watching a mailbox (IDLE)", senders[2]["id"], marks)

        # SIGTERM with IDLE sessions open: the worker ends within seconds and lets its claims go.
        stopping = time.monotonic()
        readers[0].stop(timeout=20)
        assert time.monotonic() - stopping < 4 and readers[0].proc is not None
        assert readers[0].proc.returncode == 0, readers[0].tail()
        assert await db.fetchval("SELECT count(*) FROM senders WHERE id = ANY($1) AND imap_claimed_until > now()",
                                 [s["id"] for s in senders]) == 0

        # One IDLE session allowed: one mailbox is watched, the others polled; every bounce is read.
        marks = workers.log_marks()
        readers.append(workers.start("bounce", SENDPY_BOUNCE_POLL_SECONDS="2", SENDPY_BOUNCE_IDLE_CONNECTIONS="1"))
        deadline = time.monotonic() + 30
        while not workers.logged("watching a mailbox (IDLE)", marks):  # which sender is up to the worker
            assert time.monotonic() < deadline, readers[1].tail()
            await asyncio.sleep(0.2)
        await bounce(0, users[0], dovecot)
        await bounce(1, users[1], dovecot)
        watching: set[int] = set()
        most = 0
        for line in readers[1].log_path.read_text().splitlines():
            record: dict[str, Any] = json.loads(line) if line.startswith("{") else {"message": line}
            if record["message"] == "watching a mailbox (IDLE)":
                watching.add(record["sender"])
            elif record["message"] == "stopped watching a mailbox":
                watching.discard(record["sender"])
            most = max(most, len(watching))
        assert most == 1
        assert readers[1].alive()
    finally:
        for reader in readers:
            workers.kill(reader)
        plain.stop()


async def test_a_cyrillic_password_logs_in_and_a_refusal_reads_as_the_servers_words(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink, dovecot: DovecotServer,
    new_imap_user: Callable[..., ImapUser],
) -> None:
    user = new_imap_user(password="пароль-Почты-42")  # IMAP LOGIN is ASCII-only; AUTHENTICATE PLAIN is not
    sender = await make_sender(api, auth, clean_sink, from_email=user.name)
    imap = {"imap_host": "127.0.0.1", "imap_port": dovecot.port, "imap_username": user.name}
    wrong = await api.put(f"/v1/senders/{sender['id']}/imap", headers={**auth, "Accept-Language": "ru"},
                          json={**imap, "imap_password": "не тот пароль"})
    assert wrong.status_code == 422 and wrong.json()["error"]["code"] == "imap_auth", wrong.text
    assert "b'" not in wrong.json()["error"]["message"] and "codec" not in wrong.json()["error"]["message"]
    ok = await api.put(f"/v1/senders/{sender['id']}/imap", headers=auth, json={**imap, "imap_password": user.password})
    assert ok.status_code == 200 and ok.json()["verified"] is True, ok.text
    assert ok.json()["imap"]["own_password"] is True
    kept = await api.put(f"/v1/senders/{sender['id']}/imap", headers=auth, json=imap)  # no password: keep it
    assert kept.json()["imap"]["own_password"] is True and kept.json()["verified"] is True, kept.text
    # null: the SMTP password again (the form's "same password as SMTP"); that one is not the mailbox's here
    back = await api.put(f"/v1/senders/{sender['id']}/imap", headers=auth, json={**imap, "imap_password": None})
    assert back.status_code == 422 and back.json()["imap"]["own_password"] is False, back.text
