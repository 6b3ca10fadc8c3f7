"""Sendpy against Mailpit, an SMTP server we did not write: STARTTLS and AUTH required, no PIPELINING.

Everything goes through the real stack (API → Postgres → Kafka → sender worker → Mailpit), and
what arrived is read back through Mailpit's own API and parser.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import aiosmtplib
import httpx
import pytest

from sendpy.devstack.mailpit import MailpitServer
from sendpy.devstack.tls import LocalCertificates
from shared.mail.messenger import ConnectPolicy, ReplyKind, SmtpAccount, SmtpConnection
from tests.conftest import Workers
from tests.fault_report import record_user
from tests.helpers import make_upload, wait_status
from tests.mailpit import MAILPIT_PASSWORD, MAILPIT_USER, MailpitInbox, recipients_of

SEED_HTML = "<h1>Hello</h1><p>Big news for you.</p>"
SEED_SUBJECT = "Новости / News"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def seed_request(mailpit: MailpitServer, recipients: list[str], **overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "message": SEED_HTML,
        "message_subject": SEED_SUBJECT,
        "recipient_email_list": recipients,
        "sender_email": MAILPIT_USER,
        "smtp_password": MAILPIT_PASSWORD,
        "server_host": "127.0.0.1",
        "server_port": mailpit.smtp_port,
    }
    body.update(overrides)
    return body


async def seed_status(api: httpx.AsyncClient, key: str, campaign_id: str) -> dict[str, Any]:
    answer = await api.get(f"/api/campaigns/{campaign_id}", headers=bearer(key))
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


async def wait_seed_finished(api: httpx.AsyncClient, key: str, campaign_id: str,
                             timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status = await seed_status(api, key, campaign_id)
        if status["status"] in ("finished", "paused", "cancelled") or time.monotonic() > deadline:
            return status
        await asyncio.sleep(0.3)


async def mailpit_sender(api: httpx.AsyncClient, auth: dict[str, str], mailpit: MailpitServer,
                         password: str = MAILPIT_PASSWORD) -> dict[str, Any]:
    """A sender for Mailpit's one user, created (not yet verified)."""
    made = await api.post("/v1/senders", headers=auth, json={
        "from_email": MAILPIT_USER, "from_name": "Новости", "username": MAILPIT_USER, "host": "127.0.0.1",
        "port": mailpit.smtp_port, "security": "starttls", "password": password,
    })
    assert made.status_code == 201, made.text
    return dict(made.json())


async def test_seed_api_delivers_through_mailpit(
    api: httpx.AsyncClient, api_key: str, mailpit: MailpitServer, mailpit_inbox: MailpitInbox, workers: Workers
) -> None:
    recipients = ["olga@example.com", "ivan.petrov@example.org"]
    answer = await api.post("/api/send-message", json=seed_request(mailpit, recipients), headers=bearer(api_key))
    assert answer.status_code == 202, answer.text
    campaign_id = answer.json()["campaign_id"]

    status = await wait_seed_finished(api, api_key, campaign_id)
    assert status["status"] == "finished", status
    assert status["counts"]["sent"] == 2 and status["counts"]["failed"] == 0, status

    arrived = await mailpit_inbox.wait_for(lambda found: len(found) >= 2, what="two messages")
    assert sorted(a for m in arrived for a in recipients_of(m)) == sorted(recipients)  # exactly one each
    message_id = re.compile(rf"<{re.escape(campaign_id)}\.(\d+)\.[a-z2-7]{{16}}@example\.org>")  # keyed tag
    positions = set()
    for summary in arrived:
        (to,) = recipients_of(summary)
        full = await mailpit_inbox.message(summary["ID"])
        assert full["From"]["Address"] == MAILPIT_USER
        assert [a["Address"] for a in full["To"]] == [to]
        assert full["Subject"] == SEED_SUBJECT
        assert full["Username"] == MAILPIT_USER  # it logged in as the sender
        assert "Big news for you." in full["Text"] and "<h1>Hello</h1>" in full["HTML"]
        unsubscribe = full["ListUnsubscribe"]
        assert unsubscribe["Errors"] == "", unsubscribe  # Mailpit's own RFC 2369 check
        assert len(unsubscribe["Links"]) == 1 and unsubscribe["Links"][0].startswith(("http://", "https://"))
        assert unsubscribe["HeaderPost"] == "List-Unsubscribe=One-Click"

        headers = await mailpit_inbox.headers(summary["ID"])
        assert headers["List-Unsubscribe-Post"] == ["List-Unsubscribe=One-Click"]
        assert headers["List-Unsubscribe"] == [f"<{unsubscribe['Links'][0]}>"]
        (found_id,) = headers["Message-Id"] if "Message-Id" in headers else headers["Message-ID"]
        matched = message_id.fullmatch(found_id)
        assert matched, found_id
        positions.add(int(matched.group(1)))

        parsed = await mailpit_inbox.parsed(summary["ID"])
        assert parsed.get_content_type() == "multipart/alternative"
        assert [p.get_content_type() for p in parsed.iter_parts()] == ["text/plain", "text/html"]
        assert parsed["Subject"] == SEED_SUBJECT and parsed["To"] == to

        check = await mailpit_inbox.html_check(summary["ID"])
        assert check is not None, "Mailpit has an HTML check endpoint"
        total = check["Total"]
        assert total["Tests"] > 0 and 0 <= total["Supported"] <= 100
        # Recorded, not asserted: the score depends on Mailpit's caniemail data.
        print(f"Mailpit HTML check for {to}: {total['Supported']:.1f}% supported, "
              f"{total['Partial']:.1f}% partial, {total['Unsupported']:.1f}% unsupported, "
              f"warnings: {[w['Slug'] for w in check['Warnings']]}")
    assert len(positions) == 2  # one Message-ID per recipient


async def test_rest_campaign_with_merge_fields_through_mailpit(
    api: httpx.AsyncClient, api_key: str, mailpit: MailpitServer, mailpit_inbox: MailpitInbox, workers: Workers
) -> None:
    auth = bearer(api_key)
    sender = await mailpit_sender(api, auth, mailpit)
    verified = await api.post(f"/v1/senders/{sender['id']}/verify", headers=auth)
    assert verified.status_code == 200, verified.text
    assert verified.json()["verified"] is True

    people = {f"reader{n}@example.com": name for n, name in
              enumerate(["Ольга", "Иван", "Zoë", "Ana María", "李雷", "Bob"])}
    csv = "email,name\n" + "".join(f"{email},{name}\n" for email, name in people.items())
    upload = await make_upload(api, auth, csv.encode())
    assert upload["report"]["valid"] == len(people), upload

    draft = await api.post("/v1/campaigns", headers=auth, json={
        "sender_id": sender["id"], "upload_id": upload["id"], "subject": "Привет, {{ name }}!",
        "html_body": "<p>Здравствуйте, {{ name }}! Your address is {{ email }}.</p>"})
    assert draft.status_code == 201, draft.text
    campaign_id = draft.json()["id"]
    started = await api.post(f"/v1/campaigns/{campaign_id}/start", headers=auth)
    assert started.status_code == 202, started.text

    done = await wait_status(api, auth, campaign_id, {"finished", "paused", "cancelled"}, timeout=120)
    assert done["status"] == "finished", done
    assert done["counts"]["sent"] == len(people) and done["counts"]["failed"] == 0, done

    arrived = await mailpit_inbox.wait_for(lambda found: len(found) >= len(people), what=f"{len(people)} messages")
    to_addresses = [a for m in arrived for a in recipients_of(m)]
    assert sorted(to_addresses) == sorted(people)  # every recipient once, nobody else
    for summary in arrived:
        (to,) = recipients_of(summary)
        name = people[to]
        assert summary["Subject"] == f"Привет, {name}!"
        full = await mailpit_inbox.message(summary["ID"])
        assert f"Здравствуйте, {name}! Your address is {to}." in full["HTML"]
        assert f"Здравствуйте, {name}!" in full["Text"]
        assert full["From"] == {"Name": "Новости", "Address": MAILPIT_USER}


async def test_wrong_password_fails_verification_with_the_reason(
    api: httpx.AsyncClient, api_key: str, mailpit: MailpitServer, mailpit_inbox: MailpitInbox
) -> None:
    auth = bearer(api_key)
    sender = await mailpit_sender(api, auth, mailpit, password="not-the-password")
    answer = await api.post(f"/v1/senders/{sender['id']}/verify", headers=auth)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == "smtp_auth" and error["smtp_code"] == 535, error
    assert "did not accept the login or password" in error["message"]
    assert "Authentication credentials invalid" in error["message"]  # Mailpit's own words
    stored = (await api.get(f"/v1/senders/{sender['id']}", headers=auth)).json()
    assert stored["verified"] is False and stored["last_error"].startswith("auth")
    assert await mailpit_inbox.messages() == []


async def test_non_ascii_recipient_without_pipelining_is_delivered_or_failed(
    api: httpx.AsyncClient, api_key: str, mailpit: MailpitServer, mailpit_inbox: MailpitInbox, workers: Workers
) -> None:
    """Mailpit offers SMTPUTF8 but not PIPELINING: the one-command-at-a-time path must cope with
    a non-ASCII address: deliver it with SMTPUTF8, or fail it at once with a reason; never leave it
    in 'sending'."""
    address = "Мария@пример.рф"
    answer = await api.post("/api/send-message", json=seed_request(mailpit, [address]), headers=bearer(api_key))
    assert answer.status_code == 202, answer.text
    campaign_id = answer.json()["campaign_id"]
    began = time.monotonic()
    try:
        status = await wait_seed_finished(api, api_key, campaign_id, timeout=60)
        recipients = (await api.get(f"/v1/campaigns/{campaign_id}/recipients", headers=bearer(api_key))).json()
        assert status["status"] == "finished", (status, recipients)
        assert status["counts"]["sending"] == status["counts"]["pending"] == 0, status
        (recipient,) = recipients["items"]
        if recipient["status"] == "sent":
            arrived = await mailpit_inbox.wait_for(lambda found: len(found) >= 1, what="the message")
            assert len(arrived) == 1
            full = await mailpit_inbox.message(arrived[0]["ID"])
            assert [a["Address"].lower() for a in full["To"]] == ["мария@xn--e1afmkfd.xn--p1ai"], full["To"]
        else:
            assert recipient["status"] == "failed" and recipient["reply"], recipient
            assert recipient["attempts"] <= 1, recipient  # at once, not after hours of retries
        record_user("non_ascii_address", f"`finished`, the recipient `{recipient['status']}`"
                    f" ({(recipient['reply'] or '')[:60]})", time.monotonic() - began)
    finally:
        # Whatever happened, leave nothing looping for the tests after this one.
        await api.post(f"/v1/campaigns/{campaign_id}/cancel", headers=bearer(api_key))
        if not workers.running("sender"):
            workers.start("sender")


def mailpit_connection(mailpit: MailpitServer, certs: LocalCertificates) -> SmtpConnection:
    account = SmtpAccount("127.0.0.1", mailpit.smtp_port, "starttls", MAILPIT_USER, MAILPIT_PASSWORD)
    return SmtpConnection(account, ConnectPolicy(allow_private=True, allow_plaintext=False, timeout=10,
                                                 tls=certs.client_context()))


def message_to(recipient: str) -> bytes:
    return (f"From: {MAILPIT_USER}\r\nTo: {recipient}\r\nSubject: direct\r\n\r\nbody\r\n").encode()


async def test_mailpit_requires_starttls_and_auth(mailpit: MailpitServer, certs: LocalCertificates) -> None:
    """The fixture is what the tests above rely on: no mail without TLS, none without a login."""
    plain = aiosmtplib.SMTP(hostname="127.0.0.1", port=mailpit.smtp_port, start_tls=False, timeout=10)
    await plain.connect()
    try:
        with pytest.raises(aiosmtplib.SMTPResponseException) as refused:
            await plain.mail(MAILPIT_USER)
        assert refused.value.code == 530
        assert plain.supports_extension("starttls") and not plain.supports_extension("pipelining")
    finally:
        plain.close()
    anonymous = aiosmtplib.SMTP(hostname="127.0.0.1", port=mailpit.smtp_port, start_tls=True, timeout=10,
                                tls_context=certs.client_context())
    await anonymous.connect()
    try:
        with pytest.raises(aiosmtplib.SMTPResponseException) as refused:
            await anonymous.mail(MAILPIT_USER)
        assert refused.value.code == 530
    finally:
        anonymous.close()


async def test_messenger_sends_one_command_at_a_time_to_mailpit(
    mailpit: MailpitServer, mailpit_inbox: MailpitInbox, certs: LocalCertificates
) -> None:
    conn = mailpit_connection(mailpit, certs)
    await conn.open()
    try:
        assert not conn.pipelined  # Mailpit offers no PIPELINING: aiosmtplib's sendmail path
        assert conn.smtp is not None and conn.smtp.supports_extension("smtputf8")
        reply = await conn.send(MAILPIT_USER, "plain@example.com", message_to("plain@example.com"))
    finally:
        await conn.quit()
    assert reply.kind is ReplyKind.SENT, reply
    arrived = await mailpit_inbox.wait_for(lambda found: len(found) >= 1, what="the message")
    assert [recipients_of(m) for m in arrived] == [["plain@example.com"]]


async def test_messenger_sends_non_ascii_addresses_with_smtputf8_without_pipelining(
    mailpit: MailpitServer, mailpit_inbox: MailpitInbox, certs: LocalCertificates
) -> None:
    recipient = "Мария@xn--e1afmkfd.xn--p1ai"  # what check_address makes of Мария@пример.рф
    conn = mailpit_connection(mailpit, certs)
    await conn.open()
    try:
        reply = await conn.send(MAILPIT_USER, recipient, message_to(recipient))
    finally:
        conn.close()
    assert reply.kind is ReplyKind.SENT, reply
    arrived = await mailpit_inbox.wait_for(lambda found: len(found) >= 1, what="the message")
    assert [recipients_of(m) for m in arrived] == [[recipient.lower()]]


def test_password_file_keeps_no_clear_text(mailpit: MailpitServer) -> None:
    stored = (mailpit.data_dir / "smtp-users").read_text()
    assert stored.startswith(f"{MAILPIT_USER}:{{SHA}}") and MAILPIT_PASSWORD not in stored
    assert (mailpit.data_dir / "smtp-users").stat().st_mode & 0o077 == 0
