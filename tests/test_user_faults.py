"""Users as a fault source: each mistake or hostile input ends in a visible state with a reason,
within a bounded time, and never slows anyone else down. Real stack, real workers."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from sendpy.devstack.smtp_sink import SmtpSink
from shared.commands import CampaignCommand
from shared.settings import get_settings
from shared.storage import UploadStore
from tests.conftest import Workers, new_api_key
from tests.fault_report import record_user
from tests.helpers import campaign_action, list_recipients, make_sender, make_upload, wait_status


@pytest.fixture
def auth(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


async def draft_with_file(api: httpx.AsyncClient, auth: dict[str, str], sink: SmtpSink, db: Any) -> tuple[str, str]:
    sender = await make_sender(api, auth, sink)
    upload = await make_upload(api, auth, b"email\nann@example.com\nbob@example.com\n")
    draft = (await api.post("/v1/campaigns", headers=auth, json={
        "sender_id": sender["id"], "upload_id": upload["id"], "subject": "Hi", "html_body": "<p>Hi</p>"})).json()
    key = await db.fetchval("SELECT s3_key FROM uploads WHERE id = $1", uuid.UUID(upload["id"]))
    return str(draft["id"]), str(key)


async def test_a_contact_file_gone_before_start_is_refused_with_the_reason(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink, db: Any
) -> None:
    campaign_id, key = await draft_with_file(api, auth, clean_sink, db)
    UploadStore(get_settings()).delete(key)  # the bucket's 30-day expiry, or a dev stack restart
    began = time.monotonic()
    started = await api.post(f"/v1/campaigns/{campaign_id}/start", headers={**auth, "Accept-Language": "ru"})
    record_user("file_gone_before_start", "400 `contacts_file_gone`, campaign stays `draft`: «Файла контактов"
                " больше нет в хранилище (файлы хранятся 30 дней). Загрузите его снова.»", time.monotonic() - began)
    assert started.status_code == 400 and started.json()["error"]["code"] == "contacts_file_gone"
    assert "Файла контактов больше нет" in started.json()["error"]["message"]
    assert (await api.get(f"/v1/campaigns/{campaign_id}", headers=auth)).json()["status"] == "draft"


async def test_a_contact_file_replaced_after_inspection_is_refused_at_start(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink, db: Any
) -> None:
    # The upload form stays valid for 15 minutes: the checked file could be swapped for another
    # (say, a million addresses nobody inspected) under the same key.
    campaign_id, key = await draft_with_file(api, auth, clean_sink, db)
    UploadStore(get_settings()).put(key, b"email\n" + b"".join(b"x%d@example.com\n" % n for n in range(500)))
    began = time.monotonic()
    started = await api.post(f"/v1/campaigns/{campaign_id}/start", headers={**auth, "Accept-Language": "ru"})
    record_user("file_replaced_before_start", "400 `contacts_file_changed`, campaign stays `draft`: «Файл"
                " контактов заменили после проверки. Загрузите его снова…»", time.monotonic() - began)
    assert started.status_code == 400 and started.json()["error"]["code"] == "contacts_file_changed"
    assert "заменили после проверки" in started.json()["error"]["message"]
    assert (await api.get(f"/v1/campaigns/{campaign_id}", headers=auth)).json()["status"] == "draft"
    assert len(clean_sink.messages) == 0


async def queue_behind_the_api(db: Any, campaign_id: str) -> None:
    """Queue the campaign the way the start does, for a file changed after the start's checks."""
    await db.execute("UPDATE campaigns SET status = 'queued', started_at = now() WHERE id = $1",
                     uuid.UUID(campaign_id))
    producer = AIOKafkaProducer(bootstrap_servers=get_settings().kafka_bootstrap)
    await producer.start()
    try:
        command = CampaignCommand(uuid.UUID(campaign_id))
        await producer.send_and_wait(get_settings().topic_campaigns, command.encode(), key=command.key)
    finally:
        await producer.stop()


async def test_a_contact_file_replaced_after_start_pauses_the_campaign_and_sends_nothing(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink, db: Any, workers: Workers
) -> None:
    campaign_id, key = await draft_with_file(api, auth, clean_sink, db)
    UploadStore(get_settings()).put(key, b"email\nmallory@example.com\n")
    began = time.monotonic()
    await queue_behind_the_api(db, campaign_id)
    done = await wait_status(api, auth, campaign_id, {"paused", "finished"}, timeout=30)
    assert done["status"] == "paused", done
    assert "was replaced after it was checked" in done["status_reason"]
    assert "заменили после проверки" in done["status_reason"]
    assert len(clean_sink.messages) == 0
    record_user("file_replaced_after_start", "`paused`: «Файл контактов заменили после проверки… / The contact"
                " file was replaced after it was checked…», nothing sent", time.monotonic() - began)


async def test_a_contact_file_gone_after_start_pauses_the_campaign_with_the_reason(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink, db: Any, workers: Workers
) -> None:
    campaign_id, key = await draft_with_file(api, auth, clean_sink, db)
    # Started, then the file vanished before the fan-out read it: queue the campaign the way the
    # start does, with the file already gone.
    UploadStore(get_settings()).delete(key)
    await queue_behind_the_api(db, campaign_id)
    began = time.monotonic()
    done = await wait_status(api, auth, campaign_id, {"paused", "finished"}, timeout=30)
    assert done["status"] == "paused", done
    assert "contact file is no longer in storage" in done["status_reason"]
    assert "Файл контактов больше не хранится" in done["status_reason"]
    record_user("file_gone_after_start", "`paused`: «Файл контактов больше не хранится … / The contact file is no"
                " longer in storage …»", time.monotonic() - began)


async def test_a_hostile_template_is_refused_at_once_and_others_mail_goes_on(
    api: httpx.AsyncClient, db: Any, clean_sink: SmtpSink, workers: Workers
) -> None:
    hostile = {"Authorization": f"Bearer {await new_api_key(db)}"}
    other = {"Authorization": f"Bearer {await new_api_key(db)}"}
    message = {"message_subject": "s", "sender_email": "me@example.org", "smtp_password": "p",
               "recipient_email_list": ["x@example.com"], "server_host": "127.0.0.1", "server_port": clean_sink.port}
    health: list[float] = []

    async def poll_health() -> None:
        while True:
            began = time.monotonic()
            assert (await api.get("/api/health")).status_code == 200
            health.append(time.monotonic() - began)
            await asyncio.sleep(0.005)

    poller = asyncio.create_task(poll_health())
    slowest, codes = 0.0, []
    for body in ("{% for i in range(100000) %}{% for j in range(2500) %}{% endfor %}{% endfor %}",
                 "{{ 'a' * 10**8 }}", "{{ name|center(100000000) }}",
                 "{% if email|title %}{% endif %}" * 20_000):  # allowed tags, 85 s to preview before
        began = time.monotonic()
        refused = await api.post("/api/send-message", headers={**hostile, "Accept-Language": "ru"},
                                 json={**message, "message": body})
        slowest = max(slowest, time.monotonic() - began)
        assert refused.status_code == 400, refused.text
        codes.append(refused.json()["error"]["code"])
        assert "шаблоне" in refused.json()["error"]["message"], refused.text
    poller.cancel()
    began = time.monotonic()
    sent = await api.post("/api/send-message", headers=other,
                          json={**message, "message": "<p>Hello</p>", "recipient_email_list": ["ok@example.com"]})
    assert sent.status_code == 202
    done = await wait_status(api, other, sent.json()["campaign_id"], {"finished"}, timeout=30)
    assert done["counts"]["sent"] == 1
    record_user("hostile_template", f"400 {', '.join(f'`{c}`' for c in codes)}: the construct or filter named,"
                f" in ru/en; nothing stored; `/api/health` meanwhile at most {max(health) * 1000:.1f} ms", slowest)
    record_user("hostile_template_neighbour", "`finished`, 1 sent", time.monotonic() - began)


async def test_one_shot_mail_to_a_server_without_starttls_pauses_at_once_with_the_reason(
    api: httpx.AsyncClient, auth: dict[str, str], workers: Workers
) -> None:
    plain = SmtpSink()  # a relay that offers no STARTTLS
    plain.start()
    try:
        sent = await api.post("/api/send-message", headers=auth, json={
            "message": "<p>Hello</p>", "message_subject": "s", "sender_email": "me@example.org",
            "smtp_password": "p", "recipient_email_list": ["a@example.com", "b@example.com"],
            "server_host": "127.0.0.1", "server_port": plain.port})
        assert sent.status_code == 202, sent.text
        began = time.monotonic()
        done = await wait_status(api, auth, sent.json()["campaign_id"], {"paused", "finished"}, timeout=30)
        assert done["status"] == "paused" and "STARTTLS" in done["status_reason"], done
        assert done["counts"]["pending"] == 2 and done["counts"]["failed"] == 0
        assert plain.messages == []
        record_user("no_starttls", f"`paused`: «{done['status_reason'][:90]}…», recipients stay `pending`",
                    time.monotonic() - began)
    finally:
        plain.stop()


async def test_one_shot_mail_where_plaintext_is_allowed_uses_starttls_when_offered(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink, workers: Workers,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    # A corporate relay inside a network: no TLS, no AUTH. With SENDPY_SMTP_ALLOW_PLAINTEXT=true
    # the one-shot API sends to it in plaintext, and still upgrades where STARTTLS is offered.
    monkeypatch.setenv("SENDPY_SMTP_ALLOW_PLAINTEXT", "true")
    get_settings.cache_clear()
    for usual in workers.running("sender"):
        workers.kill(usual)
    sender = workers.start("sender", SENDPY_SMTP_ALLOW_PLAINTEXT="true")
    relay = SmtpSink()
    relay.start()
    try:
        answers = {}
        for name, port in (("relay", relay.port), ("starttls", clean_sink.port)):
            sent = await api.post("/api/send-message", headers=auth, json={
                "message": "<p>Hello</p>", "message_subject": "s", "sender_email": "me@example.org",
                "smtp_password": "p", "recipient_email_list": [f"{name}@example.com"],
                "server_host": "127.0.0.1", "server_port": port})
            assert sent.status_code == 202, sent.text
            answers[name] = sent.json()["campaign_id"]
        began = time.monotonic()
        for name, campaign_id in answers.items():
            done = await wait_status(api, auth, campaign_id, {"paused", "finished"}, timeout=30)
            assert done["status"] == "finished" and done["counts"]["sent"] == 1, (name, done)
        record_user("plaintext_relay", "`finished`: plaintext to the relay without TLS, STARTTLS (verified) where"
                    " offered", time.monotonic() - began)
        assert [m.rcpt_tos for m in relay.messages] == [("relay@example.com",)]
        assert relay.messages[0].username is None  # the relay offered no AUTH: none was tried
        upgraded = [m for m in clean_sink.messages if m.rcpt_tos == ("starttls@example.com",)]
        # The sink offers AUTH only after STARTTLS, so a logged-in sender proves the upgrade.
        assert len(upgraded) == 1 and upgraded[0].username == "me@example.org"
    finally:
        relay.stop()
        workers.kill(sender)
        workers.restore()
        monkeypatch.delenv("SENDPY_SMTP_ALLOW_PLAINTEXT")
        get_settings.cache_clear()


async def test_an_smtp_host_spelled_as_ipv6_of_a_private_ipv4_is_refused(
    api: httpx.AsyncClient, auth: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The test stack allows private hosts (its SMTP sinks are on 127.0.0.1); a deployment does not.
    monkeypatch.setenv("SENDPY_SMTP_ALLOW_PRIVATE", "false")
    get_settings.cache_clear()
    try:
        began, first = time.monotonic(), ""
        for host in ("::7f00:1", "::ffff:10.0.0.1", "64:ff9b::a9fe:a9fe", "2002:7f00:1::"):
            refused = await api.post("/v1/senders", headers={**auth, "Accept-Language": "ru"}, json={
                "from_email": "me@example.org", "host": host, "port": 587, "username": "me", "password": "p"})
            # The senders form takes host names and IPv4 addresses; an IPv6 literal is not a host name there.
            assert refused.status_code == 400, refused.text
            assert refused.json()["error"]["code"] in ("invalid_host", "host_refused"), refused.text
            one_shot = await api.post("/api/send-message", headers={**auth, "Accept-Language": "ru"}, json={
                "message": "<p>Hi</p>", "message_subject": "s", "sender_email": "me@example.org",
                "smtp_password": "p", "recipient_email_list": ["a@example.com"], "server_host": host,
                "server_port": 587})
            assert one_shot.status_code == 400 and one_shot.json()["error"]["code"] == "host_refused", one_shot.text
            first = first or one_shot.json()["error"]["message"]
        record_user("ssrf_ipv6", f"400 `host_refused`: «{first[:100]}…»; nothing stored",
                    (time.monotonic() - began) / 8)
    finally:
        monkeypatch.delenv("SENDPY_SMTP_ALLOW_PRIVATE")
        get_settings.cache_clear()


async def test_a_template_too_slow_for_one_contact_fails_that_contact_and_no_one_else(
    api: httpx.AsyncClient, auth: dict[str, str], db: Any, clean_sink: SmtpSink, workers: Workers
) -> None:
    # Allowed constructs, cheap for short fields: only the row with a long field passes the
    # filter budget. Found in data, so it can only be caught while sending.
    joined = "(" + " ~ ".join(["bio"] * 20) + ")"
    html = ("{{ " + joined + "|title }}") * 5
    sender = await make_sender(api, auth, clean_sink)
    long_bio = "иван петров " * 800
    upload = await make_upload(api, auth, f"email,bio\nann@example.com,Ann\nbob@example.com,{long_bio}\n".encode())
    draft = await api.post("/v1/campaigns", headers=auth, json={
        "sender_id": sender["id"], "upload_id": upload["id"], "subject": "Hi", "html_body": html})
    assert draft.status_code == 201, draft.text
    campaign_id = draft.json()["id"]
    began = time.monotonic()
    preview = await api.post(f"/v1/campaigns/{campaign_id}/preview", headers={**auth, "Accept-Language": "ru"},
                             json={"row": 2})
    preview_seconds = time.monotonic() - began
    assert preview.status_code == 400, preview.text
    assert "фильтрам шаблона" in preview.json()["error"]["message"]
    other = {"Authorization": f"Bearer {await new_api_key(db)}"}
    began = time.monotonic()
    await campaign_action(api, auth, campaign_id, "start")
    neighbour = await api.post("/api/send-message", headers=other, json={
        "message_subject": "s", "message": "<p>Hello</p>", "sender_email": "me@example.org", "smtp_password": "p",
        "recipient_email_list": ["ok@example.com"], "server_host": "127.0.0.1", "server_port": clean_sink.port})
    assert neighbour.status_code == 202
    await wait_status(api, other, neighbour.json()["campaign_id"], {"finished"}, timeout=30)
    neighbour_seconds = time.monotonic() - began
    done = await wait_status(api, auth, campaign_id, {"finished"}, timeout=60)
    shown = time.monotonic() - began
    assert done["counts"]["sent"] == 1 and done["counts"]["failed"] == 1, done
    failed = await list_recipients(api, auth, campaign_id, "failed")
    assert [r["email"] for r in failed] == ["bob@example.com"]
    assert "фильтрам шаблона" in failed[0]["reply"] and "characters for this contact" in failed[0]["reply"]
    record_user("slow_template_for_one_contact", "preview of that row: 400 «…фильтрам шаблона пришлось бы"
                f" обработать больше 500 000 символов…» in {preview_seconds:.3f} s; sending: that recipient `failed`"
                f" with the reason, the other sent, another user's mail `finished` in {neighbour_seconds:.1f} s", shown)
