"""The seed's API end to end: HTTP → Postgres → Kafka → worker → a real SMTP socket."""

from __future__ import annotations

import asyncio
import time
import uuid

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer

from sendpy.devstack.smtp_sink import SmtpSink
from tests.conftest import Workers, new_api_key
from tests.helpers import wait_status

PASSWORD = "app-pass-Zq81 secret"


def seed_request(sink: SmtpSink, recipients: list[str], **overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "message": "<h1>Hello</h1><p>Big news for you.</p>",
        "message_subject": "Новости / News",
        "recipient_email_list": recipients,
        "sender_email": "owner@example.org",
        "smtp_password": PASSWORD,
        "server_host": "127.0.0.1",
        "server_port": sink.port,
    }
    body.update(overrides)
    return body


async def wait_finished(api: httpx.AsyncClient, key: str, campaign_id: str, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        answer = await api.get(f"/api/campaigns/{campaign_id}", headers={"Authorization": f"Bearer {key}"})
        assert answer.status_code == 200, answer.text
        status = answer.json()
        if status["status"] in ("finished", "paused", "cancelled") or time.monotonic() > deadline:
            return status
        await asyncio.sleep(0.3)


async def test_every_recipient_gets_one_mail(
    api: httpx.AsyncClient, api_key: str, clean_sink: SmtpSink, workers: Workers
) -> None:
    recipients = [f"person{n}@example.com" for n in range(120)]
    answer = await api.post(
        "/api/send-message", json=seed_request(clean_sink, [*recipients, "PERSON7@example.com"]),
        headers={"Authorization": f"Bearer {api_key}"},
    )
    assert answer.status_code == 202, answer.text
    accepted = answer.json()
    assert accepted["accepted"] == 120
    assert accepted["duplicates_removed"] == 1

    status = await wait_finished(api, api_key, accepted["campaign_id"])
    assert status["status"] == "finished", status
    assert status["counts"]["sent"] == 120
    assert status["counts"]["pending"] == status["counts"]["failed"] == 0

    mails = [m for m in clean_sink.messages if accepted["campaign_id"] in m.parsed()["Message-ID"]]
    assert sorted(r for m in mails for r in m.rcpt_tos) == sorted(recipients)
    assert len({m.parsed()["Message-ID"] for m in mails}) == 120
    for mail in mails:
        parsed = mail.parsed()
        assert mail.mail_from == "owner@example.org"
        assert mail.username == "owner@example.org"
        assert parsed["From"] == "owner@example.org"
        assert parsed["To"] == mail.rcpt_tos[0]
        assert parsed["Subject"] == "Новости / News"
        html = parsed.get_body(("html",))
        text = parsed.get_body(("plain",))
        assert html is not None and "<h1>Hello</h1>" in html.get_content()
        assert text is not None and "Big news for you." in text.get_content()


async def test_password_is_never_in_kafka_or_the_database(
    api: httpx.AsyncClient, api_key: str, clean_sink: SmtpSink, workers: Workers,
    db: asyncpg.Pool, app_env: dict[str, str],
) -> None:
    unique_password = f"pw-{uuid.uuid4().hex}"
    answer = await api.post(
        "/api/send-message",
        json=seed_request(clean_sink, ["x@example.com"], smtp_password=unique_password),
        headers={"Authorization": f"Bearer {api_key}"},
    )
    assert answer.status_code == 202, answer.text
    status = await wait_finished(api, api_key, answer.json()["campaign_id"])
    assert status["counts"]["sent"] == 1

    consumer = AIOKafkaConsumer(
        "sendpy.campaigns", "sendpy.deliveries", "sendpy.dead-letters",
        bootstrap_servers=app_env["SENDPY_KAFKA_BOOTSTRAP"], auto_offset_reset="earliest",
        enable_auto_commit=False, group_id=None,
    )
    await consumer.start()
    try:
        seen = b""
        records = await consumer.getmany(timeout_ms=3000)
        for batch in records.values():
            for record in batch:
                seen += (record.key or b"") + (record.value or b"")
        assert seen, "expected to read the work that was published"
        assert unique_password.encode() not in seen
    finally:
        await consumer.stop()

    stored = await db.fetchval("SELECT password_encrypted FROM senders ORDER BY updated_at DESC LIMIT 1")
    assert unique_password.encode() not in bytes(stored)


async def test_empty_host_and_port_detect_the_provider(api: httpx.AsyncClient, api_key: str, db: asyncpg.Pool) -> None:
    # gmail.com resolves to a public address, which this test must not contact: accept, then cancel.
    body = {
        "message": "<p>Hi</p>", "message_subject": "Hi", "recipient_email_list": ["a@example.com"],
        "sender_email": "someone@yandex.ru", "smtp_password": "x", "server_host": "", "server_port": "",
    }
    from shared.send_message import parse

    parsed = parse(body)
    assert (parsed.host, parsed.port, parsed.security) == ("smtp.yandex.ru", 465, "tls")

    body["sender_email"] = "someone@unknown-domain.example"
    answer = await api.post("/api/send-message", json=body, headers={"Authorization": f"Bearer {api_key}"})
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "unknown_provider"


async def test_requests_without_a_valid_key_are_refused(api: httpx.AsyncClient, clean_sink: SmtpSink) -> None:
    body = seed_request(clean_sink, ["a@example.com"])
    assert (await api.post("/api/send-message", json=body)).status_code == 401
    wrong = {"Authorization": "Bearer sp_00000000_not-a-real-key"}
    assert (await api.post("/api/send-message", json=body, headers=wrong)).status_code == 401
    answer = await api.post("/api/send-message", json=body, headers={"Accept-Language": "ru-RU,ru;q=0.9"})
    assert "API-ключ" in answer.json()["error"]["message"]


async def test_a_campaign_is_visible_only_to_its_owner(
    api: httpx.AsyncClient, api_key: str, clean_sink: SmtpSink, db: asyncpg.Pool, workers: Workers
) -> None:
    answer = await api.post("/api/send-message", json=seed_request(clean_sink, ["own@example.com"]),
                            headers={"Authorization": f"Bearer {api_key}"})
    campaign_id = answer.json()["campaign_id"]
    other = await new_api_key(db)
    peek = await api.get(f"/api/campaigns/{campaign_id}", headers={"Authorization": f"Bearer {other}"})
    assert peek.status_code == 404
    garbage = await api.get("/api/campaigns/not-a-uuid", headers={"Authorization": f"Bearer {api_key}"})
    assert garbage.status_code == 404
    # Its mail must not arrive in the next test's sink.
    await wait_status(api, {"Authorization": f"Bearer {api_key}"}, campaign_id, {"finished"})


BAD_BODIES: list[tuple[object, str, str | None]] = [
    ([], "invalid_json", None),
    ({}, "required", "message"),
    ({"message": 5}, "type_string", "message"),
    ({"message": "<p>x</p>", "message_subject": "a\r\nBcc: evil@example.com"}, "line_break", "message_subject"),
    ({"message": "x", "message_subject": "s", "sender_email": "nope"}, "invalid_email", "sender_email"),
    ({"message": "x", "message_subject": "s", "sender_email": "a@example.com", "smtp_password": "p"},
     "required", "recipient_email_list"),
    ({"message": "x", "message_subject": "s", "sender_email": "a@example.com", "smtp_password": "p",
      "recipient_email_list": "a@example.com"}, "type_list", "recipient_email_list"),
    ({"message": "x", "message_subject": "s", "sender_email": "a@example.com", "smtp_password": "p",
      "recipient_email_list": []}, "empty_list", "recipient_email_list"),
    ({"message": "x", "message_subject": "s", "sender_email": "a@example.com", "smtp_password": "p",
      "recipient_email_list": ["ok@example.com", "bad@@example.com"]}, "invalid_recipients", "recipient_email_list"),
    ({"message": "x", "message_subject": "s", "sender_email": "a@example.com", "smtp_password": "p",
      "recipient_email_list": ["ok@example.com"], "server_host": "smtp.example.com", "server_port": 70000},
     "invalid_port", "server_port"),
    ({"message": "x", "message_subject": "s", "sender_email": "a@example.com", "smtp_password": "p",
      "recipient_email_list": ["ok@example.com"], "server_host": "smtp.example.com", "server_port": ""},
     "host_without_port", "server_port"),
    ({"message": "{% for %}", "message_subject": "s", "sender_email": "a@example.com", "smtp_password": "p",
      "recipient_email_list": ["ok@example.com"], "server_host": "127.0.0.1", "server_port": 25},
     "template", "message"),
    ({"message": "x", "message_subject": "s", "sender_email": "a@example.com", "smtp_password": "p",
      "recipient_email_list": ["ok@example.com"], "server_host": "no-such-host.invalid", "server_port": 25},
     "host_refused", "server_host"),
    ({"message": "{% for i in range(100000) %}{% for j in range(2500) %}{% endfor %}{% endfor %}",
      "message_subject": "s", "sender_email": "a@example.com", "smtp_password": "p",
      "recipient_email_list": ["ok@example.com"], "server_host": "127.0.0.1", "server_port": 25},
     "template_construct", "message"),
    ({"message": "{{ 'a' * 10**8 }}", "message_subject": "s", "sender_email": "a@example.com",
      "smtp_password": "p", "recipient_email_list": ["ok@example.com"], "server_host": "127.0.0.1",
      "server_port": 25}, "template_construct", "message"),
]


async def test_bad_input_gets_a_clear_400_and_stores_nothing(
    api: httpx.AsyncClient, api_key: str, db: asyncpg.Pool
) -> None:
    headers = {"Authorization": f"Bearer {api_key}"}
    before = await db.fetchval("SELECT count(*) FROM campaigns")
    for body, code, field in BAD_BODIES:
        answer = await api.post("/api/send-message", json=body, headers=headers)
        assert answer.status_code == 400, (body, answer.text)
        error = answer.json()["error"]
        assert (error["code"], error["field"]) == (code, field), body
        assert error["message"]
    not_json = await api.post("/api/send-message", content=b"{nope", headers=headers)
    assert not_json.status_code == 400
    assert await db.fetchval("SELECT count(*) FROM campaigns") == before
