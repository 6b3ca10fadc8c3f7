"""Which reports may act on a recipient (issue 11, the attack on the bounce reader): only one that
carries our keyed tag for that recipient; the unsubscribe link and the bounce still act after the
campaign and its sender are deleted; a delay notice is not a bounce, and a delivery ends a run of
soft bounces. Real Dovecot, the real bounce worker, the campaign's real messages."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import imaplib
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import httpx
import pytest
from imapclient import imap_utf7

from sendpy.devstack.imap import DovecotServer
from sendpy.devstack.smtp_sink import SmtpSink
from sendpy.devstack.tls import LocalCertificates
from shared.bounces.reader import BOUNCE_FOLDER
from shared.settings import get_settings
from shared.unsubscribe import signing_key
from tests.conftest import Workers, new_api_key
from tests.helpers import make_sender, wait_status
from tests.imap import ImapUser
from tests.sent_mail import message_id_to
from tests.test_bounces import campaign_to, dsn, statuses

_OUR_ID = re.compile(r"<([0-9a-f-]{36})\.(\d+)\.([a-z2-7]{16})@([^>]+)>")


@pytest.fixture
def auth(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


async def imap_sender(api: httpx.AsyncClient, auth: dict[str, str], sink: SmtpSink, dovecot: DovecotServer,
                      user: ImapUser) -> dict[str, Any]:
    sender = await make_sender(api, auth, sink, from_email=user.name)
    put = await api.put(f"/v1/senders/{sender['id']}/imap", headers=auth, json={
        "imap_host": "127.0.0.1", "imap_port": dovecot.port, "imap_username": user.name,
        "imap_password": user.password})
    assert put.json()["verified"], put.text
    return sender


def several_failed(from_email: str, addresses: list[str], message_id: str) -> bytes:
    """One RFC 3464 report naming several failed addresses, returning one message's headers."""
    blocks = "".join(f"Final-Recipient: rfc822; {a}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
                     f"Diagnostic-Code: smtp; 550 5.1.1 <{a}>: no such user\r\n\r\n" for a in addresses)
    return (
        f"From: MAILER-DAEMON@mx.example.net (Mail Delivery System)\r\nTo: {from_email}\r\n"
        f"Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <multi-{time.time_ns()}@mx.example.net>\r\n"
        'MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary="b1"\r\n\r\n'
        "--b1\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n\r\n"
        "--b1\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\n\r\n"
        f"{blocks}--b1\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"From: {from_email}\r\nSubject: Hello\r\nMessage-ID: {message_id}\r\n\r\n--b1--\r\n"
    ).encode()


async def until(condition: Callable[[], Awaitable[bool]], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        await asyncio.sleep(0.3)


async def read_past(db: asyncpg.Pool, sender_id: int, count: int) -> bool:
    """Whether the sender's check has read the first `count` messages of a new mailbox."""
    return bool(await db.fetchval("SELECT coalesce(imap_next_uid, 0) > $2 FROM senders WHERE id = $1",
                                  sender_id, count))


async def suppressed(api: httpx.AsyncClient, auth: dict[str, str]) -> dict[str, dict[str, Any]]:
    return {i["email"]: i for i in (await api.get("/v1/suppressions", headers=auth)).json()["items"]}


async def test_only_a_report_carrying_our_keyed_tag_for_that_recipient_acts(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink, workers: Workers, dovecot: DovecotServer,
    new_imap_user: Callable[..., ImapUser], db: asyncpg.Pool,
) -> None:
    mine, theirs = new_imap_user(), new_imap_user()
    sender = await imap_sender(api, auth, clean_sink, dovecot, mine)
    emails = ["victim@example.com", "other@example.com", "real@example.com"]
    campaign_id = await campaign_to(api, auth, sender["id"], emails)
    ids = {m.rcpt_tos[0]: m.parsed()["Message-ID"] for m in clean_sink.messages}
    parts = {email: _OUR_ID.fullmatch(ids[email]) for email in emails}
    assert all(parts.values()), ids  # <campaign.position.tag@domain>
    victim, other = parts["victim@example.com"], parts["other@example.com"]
    assert victim is not None and other is not None
    campaign, position, domain = victim.group(1), victim.group(2), victim.group(4)
    wrong = "a" * 16 if victim.group(3) != "a" * 16 else "b" * 16
    typed = (f"From: Stranger <stranger@example.net>\r\nTo: {mine.name}\r\n"
             "Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <typed@example.net>\r\n\r\n"
             "Your message could not be delivered to victim@example.com: 550 5.1.1 User unknown.\r\n\r\n"
             f"> Message-ID: <{campaign}.{position}.{wrong}@{domain}>\r\n").encode()
    forged = [
        # A guessed Message-ID of the old, untagged format (the campaign id is in every message).
        dsn(mine.name, "victim@example.com", f"<{campaign}.{position}@{domain}>", "5.1.1", "failed", "550 5.1.1 gone"),
        dsn(mine.name, "other@example.com", f"<{campaign}.{other.group(2)}@{domain}>", "5.1.1", "failed", "550 gone"),
        typed,  # a hand-typed "bounce" quoting our Message-ID with a wrong tag
        # Another recipient's genuine tag on the victim's position: the tag names one message.
        dsn(mine.name, "victim@example.com", f"<{campaign}.{position}.{other.group(3)}@{domain}>", "5.1.1",
            "failed", "550 5.1.1 gone"),
        # No Message-ID of ours at all: an address alone is no proof.
        dsn(mine.name, "victim@example.com", "<CAF=abc@mail.example.net>", "5.1.1", "failed", "550 5.1.1 gone"),
        # Genuine for real@, but naming other@ too: only the message's own recipient is marked.
        several_failed(mine.name, ["other@example.com", "real@example.com"], ids["real@example.com"]),
    ]
    for raw in forged:
        await asyncio.to_thread(dovecot.append, mine.name, raw)
    # Another account's mailbox gets a genuine report of this account's message: not theirs to act on.
    their_auth = {"Authorization": f"Bearer {await new_api_key(db)}"}
    their_sender = await imap_sender(api, their_auth, clean_sink, dovecot, theirs)
    await asyncio.to_thread(dovecot.append, theirs.name, dsn(
        theirs.name, "victim@example.com", ids["victim@example.com"], "5.1.1", "failed", "550 5.1.1 gone"))

    reader = workers.start("bounce", SENDPY_BOUNCE_POLL_SECONDS="1")
    try:
        await until(lambda: read_past(db, sender["id"], len(forged)), "every report read")
        await until(lambda: read_past(db, their_sender["id"], 1), "the other account's report read")
        # Only the report whose tag checks out is remembered: the others changed nothing, and a
        # hostile server announcing endless untagged "bounces" no longer grows the table (issue 11).
        counts = await db.fetch("SELECT sender_id, count(*) FROM bounce_messages WHERE sender_id = ANY($1)"
                                " GROUP BY sender_id", [sender["id"], their_sender["id"]])
        assert {r["sender_id"]: r["count"] for r in counts} == {sender["id"]: 1}, counts
        found = await statuses(api, auth, campaign_id)
        assert {email: found[email]["status"] for email in emails} == {
            "victim@example.com": "sent", "other@example.com": "sent", "real@example.com": "bounced"}
        assert found["real@example.com"]["reply"].startswith("5.1.1")
        assert set(await suppressed(api, auth)) == {"real@example.com"}
        assert await suppressed(api, their_auth) == {}
    finally:
        workers.kill(reader)


def old_style_link(campaign_id: str, position: int) -> str:
    """An unsubscribe path as Sendpy signed it before links were sealed (campaign and position)."""
    payload = uuid.UUID(campaign_id).bytes + position.to_bytes(4, "big")
    signature = hmac.new(signing_key(get_settings()), payload, hashlib.sha256).digest()[:16]

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    return f"/u/{b64(payload)}.{b64(signature)}"


async def test_unsubscribe_links_and_bounces_outlive_the_campaign_and_its_sender(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink, workers: Workers, dovecot: DovecotServer,
    imap_user: ImapUser,
) -> None:
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    sender = await imap_sender(api, auth, clean_sink, dovecot, imap_user)
    emails = ["leaver@example.com", "gone@example.com", "stays@example.com", "old-link@example.com"]
    campaign_id = await campaign_to(api, auth, sender["id"], emails)
    mails = {m.rcpt_tos[0]: m.parsed() for m in clean_sink.messages}
    link = "/" + str(mails["leaver@example.com"]["List-Unsubscribe"]).strip("<>").split("://", 1)[1].split("/", 1)[1]
    assert "leaver" not in link  # the address travels sealed

    # A link in the format people already have in their inboxes works while its campaign exists.
    position = next(r["position"] for r in (await statuses(api, auth, campaign_id)).values()
                    if r["email"] == "old-link@example.com")
    assert (await api.post(old_style_link(campaign_id, position), content=b"List-Unsubscribe=One-Click",
                           headers=form)).status_code == 200
    assert "old-link@example.com" in await suppressed(api, auth)

    # The campaign is deleted; a hard bounce of its mail arrives afterwards and still suppresses.
    assert (await api.delete(f"/v1/campaigns/{campaign_id}", headers=auth)).status_code == 204
    await asyncio.to_thread(dovecot.append, imap_user.name, dsn(
        imap_user.name, "gone@example.com", mails["gone@example.com"]["Message-ID"], "5.1.1", "failed",
        "550 5.1.1 <gone@example.com>: no such user"))
    reader = workers.start("bounce", SENDPY_BOUNCE_POLL_SECONDS="1")
    try:
        async def gone_listed() -> bool:
            return "gone@example.com" in await suppressed(api, auth)

        await until(gone_listed, "the bounce after the deletion")
    finally:
        workers.kill(reader)
    entry = (await suppressed(api, auth))["gone@example.com"]
    assert (entry["reason"], entry["campaign_id"], entry["sender_email"]) == (
        "hard_bounce", campaign_id, imap_user.name)

    # The sender goes too; the person clicks the link in the mail they kept.
    assert (await api.delete(f"/v1/senders/{sender['id']}", headers=auth)).status_code == 204
    page = await api.get(link, headers={"Accept-Language": "ru"})
    assert page.status_code == 200 and "Отписаться" in page.text
    done = await api.post(link, content=b"List-Unsubscribe=One-Click", headers=form)
    assert done.status_code == 200 and "leaver@example.com" in done.text, done.text
    entry = (await suppressed(api, auth))["leaver@example.com"]
    # Where it came from is kept by value; the From address went with the campaign.
    assert (entry["reason"], entry["campaign_id"], entry["sender_email"]) == ("unsubscribed", campaign_id, None)
    # An old-format link has nothing left to name once its campaign is gone.
    assert (await api.post(old_style_link(campaign_id, 1), headers=form)).status_code == 404

    # The next campaign, through another sender, skips all three.
    clean_sink.clear()
    other = await make_sender(api, auth, clean_sink)
    again = await campaign_to(api, auth, other["id"], emails)
    done_counts = (await wait_status(api, auth, again, {"finished"}))["counts"]
    assert (done_counts["sent"], done_counts["skipped"]) == (1, 3), done_counts
    assert [m.rcpt_tos for m in clean_sink.messages] == [("stays@example.com",)]


async def test_delay_notices_are_not_bounces_and_a_delivery_ends_a_run_of_soft_bounces(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink, workers: Workers, dovecot: DovecotServer,
    imap_user: ImapUser, db: asyncpg.Pool,
) -> None:
    sender = await imap_sender(api, auth, clean_sink, dovecot, imap_user)
    # full@ soft-bounces in the 1st, 2nd and 4th campaigns and was delivered by the 3rd; dead@
    # soft-bounces in the 1st, 2nd and 4th and was not in the 3rd: three in a row.
    lists = [["full@example.com", "dead@example.com", "slow@example.com"], ["full@example.com", "dead@example.com"],
             ["full@example.com"], ["full@example.com", "dead@example.com"]]
    campaigns, ids = [], []
    for emails in lists:
        clean_sink.clear()
        campaigns.append(await campaign_to(api, auth, sender["id"], emails))
        ids.append({m.rcpt_tos[0]: m.parsed()["Message-ID"] for m in clean_sink.messages})

    def soft(n: int, email: str) -> bytes:
        return dsn(imap_user.name, email, ids[n][email], "4.2.2", "failed", "452 4.2.2 Mailbox full")

    inbox = [
        # Three delay notices for one message ("still trying"): the mail may yet arrive.
        *(dsn(imap_user.name, "slow@example.com", ids[0]["slow@example.com"], "4.4.1", "delayed",
              f"connect to mx.example.com: Connection timed out ({n})") for n in range(3)),
        soft(0, "full@example.com"), soft(0, "dead@example.com"),
        soft(1, "full@example.com"), soft(1, "dead@example.com"),
        soft(3, "full@example.com"), soft(3, "dead@example.com"),
    ]
    for raw in inbox:
        await asyncio.to_thread(dovecot.append, imap_user.name, raw)
    reader = workers.start("bounce", SENDPY_BOUNCE_POLL_SECONDS="1")
    try:
        await until(lambda: read_past(db, sender["id"], len(inbox)), "every notice read")
        # The delay notices changed nothing, so nothing of them is remembered.
        assert await db.fetchval("SELECT count(*) FROM bounce_messages WHERE sender_id = $1", sender["id"]) == 6
    finally:
        workers.kill(reader)
    first = await statuses(api, auth, campaigns[0])
    assert first["slow@example.com"]["status"] == "sent", first
    assert (await statuses(api, auth, campaigns[2]))["full@example.com"]["status"] == "sent"
    assert (await statuses(api, auth, campaigns[3]))["full@example.com"]["status"] == "bounced"
    listed = await suppressed(api, auth)
    assert set(listed) == {"dead@example.com"}, listed
    assert listed["dead@example.com"]["reason"] == "soft_bounce"
    counts = {r["address"]: r["count"] for r in await db.fetch(
        "SELECT s.address, s.count FROM soft_bounces s JOIN senders d ON d.user_id = s.user_id WHERE d.id = $1",
        sender["id"])}
    assert counts == {"full@example.com": 1, "dead@example.com": 3}


def folder_count(dovecot: DovecotServer, certs: LocalCertificates, user: ImapUser, folder: str) -> int:
    client = imaplib.IMAP4_SSL(dovecot.host, dovecot.port, ssl_context=certs.client_context(), timeout=30)
    try:
        client.login(user.name, user.password)
        status, data = client.select(f'"{imap_utf7.encode(folder).decode()}"', readonly=True)  # IMAP's UTF-7
        return int(data[0] or 0) if status == "OK" else 0
    finally:
        client.logout()


async def test_moving_bounces_moves_only_reports_of_our_own_mail(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink, workers: Workers, dovecot: DovecotServer,
    new_imap_user: Callable[..., ImapUser], db: asyncpg.Pool, certs: LocalCertificates,
) -> None:
    mine = new_imap_user()
    sender = await imap_sender(api, auth, clean_sink, dovecot, mine)
    moving = await api.put(f"/v1/senders/{sender['id']}/imap", headers=auth, json={
        "imap_host": "127.0.0.1", "imap_port": dovecot.port, "imap_username": mine.name,
        "imap_password": mine.password, "imap_move_bounces": True})
    assert moving.status_code == 200, moving.text
    campaign_id = await campaign_to(api, auth, sender["id"], ["gone@example.com"])
    genuine = message_id_to(clean_sink, "gone@example.com", mine.name)
    match = _OUR_ID.fullmatch(genuine)
    assert match is not None
    forged = f"<{match.group(1)}.{match.group(2)}.{'c' * 16}@{match.group(4)}>"
    for message_id in (genuine, forged, "<CAF=abc@mail.example.net>"):
        await asyncio.to_thread(dovecot.append, mine.name, dsn(
            mine.name, "gone@example.com", message_id, "5.1.1", "failed", "550 5.1.1 gone"))
    reader = workers.start("bounce", SENDPY_BOUNCE_POLL_SECONDS="1")
    try:
        await until(lambda: read_past(db, sender["id"], 3), "every report read")
        await until(lambda: asyncio.to_thread(lambda: folder_count(dovecot, certs, mine, BOUNCE_FOLDER) == 1),
                    "the genuine report moved")
        assert (await statuses(api, auth, campaign_id))["gone@example.com"]["status"] == "bounced"
        # The forged and the foreign report stay in the INBOX, where the person can see them.
        assert await asyncio.to_thread(folder_count, dovecot, certs, mine, "INBOX") == 2
    finally:
        workers.kill(reader)


async def test_remembered_bounce_messages_are_forgotten_after_a_while(db: asyncpg.Pool) -> None:
    from shared.bounces.record import REMEMBER_DAYS, forget_old

    await db.execute(
        "INSERT INTO bounce_messages (sender_id, message_key, recorded_at) VALUES"
        " (-7, 'old', now() - make_interval(days => $1 + 1)), (-7, 'recent', now() - make_interval(days => $1 - 1))",
        REMEMBER_DAYS)
    async with db.acquire() as conn:
        assert await forget_old(conn) >= 1
    kept = await db.fetch("SELECT message_key FROM bounce_messages WHERE sender_id = -7")
    assert [r["message_key"] for r in kept] == ["recent"]
    await db.execute("DELETE FROM bounce_messages WHERE sender_id = -7")


def reply_to(to: str, sender: str, subject: str, message_id: str, body: str, *headers: str) -> bytes:
    lines = [f"From: {sender}", f"To: {to}", f"Subject: {subject}", f"Message-ID: <{uuid.uuid4()}@example.net>",
             f"In-Reply-To: {message_id}", f"References: {message_id}", *headers,
             "Content-Type: text/plain; charset=utf-8", "", body, ""]
    return "\r\n".join(lines).encode()


async def test_replies_and_auto_replies_quoting_bounce_words_leave_the_recipient_sent(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink, workers: Workers, dovecot: DovecotServer,
    imap_user: ImapUser, db: asyncpg.Pool,
) -> None:
    # A campaign titled «Ваш заказ не доставлен? Выберите новое время»: a vacation reply, a thank-you,
    # «Автоответ:» and "Automatic reply:" each marked their recipient bounced 5.0.0 (issue 11).
    sender = await imap_sender(api, auth, clean_sink, dovecot, imap_user)
    emails = ["away@example.com", "thanks@example.com", "avto@example.com", "auto@example.com", "gone@example.com"]
    campaign_id = await campaign_to(api, auth, sender["id"], emails)
    ids = {m.rcpt_tos[0]: m.parsed()["Message-ID"] for m in clean_sink.messages}
    subject = "Ваш заказ не доставлен? Выберите новое время"

    def quote(email: str) -> str:
        return f"\r\n\r\n> {subject}\r\n> Заказ не доставлен на адрес {email}\r\n> Delivery failed for {email}"

    inbox = [
        reply_to(imap_user.name, "Away <away@example.com>", f"Re: {subject}", ids["away@example.com"],
                 "Я в отпуске." + quote("away@example.com"), "Auto-Submitted: auto-replied", "Precedence: bulk"),
        reply_to(imap_user.name, "Thanks <thanks@example.com>", f"Re: {subject}", ids["thanks@example.com"],
                 "Спасибо, всё получил!" + quote("thanks@example.com")),
        reply_to(imap_user.name, "avto@example.com", f"Автоответ: {subject}", ids["avto@example.com"],
                 "Нет на месте." + quote("avto@example.com")),
        reply_to(imap_user.name, "auto@example.com", "Automatic reply: Delivery failed: please update your address",
                 ids["auto@example.com"], "Out of office." + quote("auto@example.com")),
        dsn(imap_user.name, "gone@example.com", ids["gone@example.com"], "5.1.1", "failed", "550 5.1.1 gone"),
    ]
    for raw in inbox:
        await asyncio.to_thread(dovecot.append, imap_user.name, raw)
    reader = workers.start("bounce", SENDPY_BOUNCE_POLL_SECONDS="1")
    try:
        await until(lambda: read_past(db, sender["id"], len(inbox)), "every message read")
    finally:
        workers.kill(reader)
    found = await statuses(api, auth, campaign_id)
    assert {email: found[email]["status"] for email in emails} == {
        "away@example.com": "sent", "thanks@example.com": "sent", "avto@example.com": "sent",
        "auto@example.com": "sent", "gone@example.com": "bounced"}, found
    assert set(await suppressed(api, auth)) == {"gone@example.com"}
