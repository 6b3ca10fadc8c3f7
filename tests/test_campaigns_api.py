"""Campaigns through the REST API, end to end on the real stack: upload → sender → draft → send."""

from __future__ import annotations

import asyncio
import csv
import io
import time
import uuid
from typing import Any

import httpx
import pytest

from sendpy.devstack.smtp_sink import SmtpSink
from tests.conftest import Workers, new_api_key
from tests.helpers import make_sender, make_upload, wait_status

CONTACTS = "Почта;Имя;Город\r\nivan@example.ru;Иван;Москва\r\nolga@example.ru;Ольга;Казань\r\nOLGA@example.ru;Оля;Казань\r\nне-адрес;Пётр;Омск\r\nblocked@example.ru;Блок;Уфа\r\n"


@pytest.fixture
def auth(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


async def test_full_campaign_with_merge_fields_and_unsubscribe(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink, workers: Workers
) -> None:
    sender = await make_sender(api, auth, clean_sink)
    added = await api.post("/v1/suppressions", json={"emails": ["Blocked@example.ru"]}, headers=auth)
    assert added.status_code == 201 and added.json()["added"] == 1
    upload = await make_upload(api, auth, CONTACTS.encode("cp1251"))

    draft = await api.post("/v1/campaigns", headers={**auth, "Idempotency-Key": "draft-1"}, json={
        "name": "Осень", "sender_id": sender["id"], "upload_id": upload["id"],
        "subject": "Привет, {{ имя }}!", "html_body": "<p>Здравствуйте, {{ имя }} из {{ город }}.</p>",
    })
    assert draft.status_code == 201, draft.text
    again = await api.post("/v1/campaigns", headers={**auth, "Idempotency-Key": "draft-1"}, json={
        "name": "Осень", "sender_id": sender["id"], "upload_id": upload["id"],
        "subject": "Привет, {{ имя }}!", "html_body": "<p>Здравствуйте, {{ имя }} из {{ город }}.</p>",
    })
    assert again.json()["id"] == draft.json()["id"] and again.headers["idempotent-replayed"] == "true"
    campaign_id = draft.json()["id"]

    preview = await api.post(f"/v1/campaigns/{campaign_id}/preview", json={"row": 2}, headers=auth)
    assert preview.status_code == 200, preview.text
    assert preview.json()["subject"] == "Привет, Ольга!"
    assert "Здравствуйте, Ольга из Казань." in preview.json()["html"]
    assert preview.json()["undefined"] == []

    test = await api.post(f"/v1/campaigns/{campaign_id}/test", json={"email": "me@example.org"}, headers=auth)
    assert test.status_code == 200, test.text
    assert [m.parsed()["Subject"] for m in clean_sink.messages] == ["[Test] Привет, Иван!"]
    clean_sink.clear()
    test = await api.post(f"/v1/campaigns/{campaign_id}/test", json={"email": "me@example.org"},
                          headers={**auth, "Accept-Language": "ru"})
    assert [m.parsed()["Subject"] for m in clean_sink.messages] == ["[Тест] Привет, Иван!"]  # the sender's words
    clean_sink.clear()

    started = await api.post(f"/v1/campaigns/{campaign_id}/start", headers={**auth, "Idempotency-Key": "go-1"})
    assert started.status_code == 202, started.text
    replay = await api.post(f"/v1/campaigns/{campaign_id}/start", headers={**auth, "Idempotency-Key": "go-1"})
    assert replay.status_code == 202 and replay.headers["idempotent-replayed"] == "true"
    twice = await api.post(f"/v1/campaigns/{campaign_id}/start", headers=auth)
    assert twice.status_code == 409

    done = await wait_status(api, auth, campaign_id, {"finished", "paused", "cancelled"})
    assert done["status"] == "finished", done
    # "не-адрес" is a problem row of the file (the upload's report), not a recipient: the review's 2 is
    # the campaign's 2 sent, and the one skipped is the suppressed person, with the reason.
    assert done["counts"] == {"pending": 0, "sending": 0, "sent": 2, "failed": 0, "skipped": 1, "bounced": 0}
    assert done["duplicates_removed"] == 1

    mails = {m.rcpt_tos[0]: m.parsed() for m in clean_sink.messages}
    assert set(mails) == {"ivan@example.ru", "olga@example.ru"}
    olga = mails["olga@example.ru"]
    assert olga["Subject"] == "Привет, Ольга!"
    assert olga["From"].addresses[0].display_name == "Новости"
    assert olga["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    html = olga.get_body(("html",)).get_content()
    assert "Здравствуйте, Ольга из Казань." in html
    link = olga["List-Unsubscribe"].strip("<>")
    assert link in html  # the visible link is the same signed link
    path = link.split("://", 1)[1].split("/", 1)[1]

    page = await api.get(f"/{path}", headers={"Accept-Language": "ru"})
    assert page.status_code == 200 and "Отписаться" in page.text
    listed = (await api.get("/v1/suppressions", headers=auth)).json()["items"]
    assert "olga@example.ru" not in [i["email"] for i in listed]  # GET changed nothing
    one_click = await api.post(f"/{path}", content=b"List-Unsubscribe=One-Click",
                               headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert one_click.status_code == 200
    listed = (await api.get("/v1/suppressions", headers=auth)).json()["items"]
    assert {i["email"] for i in listed} == {"olga@example.ru", "Blocked@example.ru"}
    olga_entry = next(i for i in listed if i["email"] == "olga@example.ru")
    assert (olga_entry["reason"], olga_entry["campaign_id"]) == ("unsubscribed", campaign_id)
    assert olga_entry["sender_email"] == sender["from_email"]
    forged = await api.post(f"/{path[:-3]}abc")
    assert forged.status_code == 404

    skipped = (await api.get(f"/v1/campaigns/{campaign_id}/recipients?status=skipped", headers=auth)).json()
    assert {(r["email"], r["reply"].split(":")[0]) for r in skipped["items"]} == {
        ("blocked@example.ru", "suppressed")}
    export = await api.get(f"/v1/campaigns/{campaign_id}/export.csv", headers=auth)
    assert export.status_code == 200
    rows = list(csv.reader(io.StringIO(export.content.decode("utf-8-sig"))))
    assert rows[0] == ["Row", "Email", "State", "Server reply", "Attempts", "Updated (UTC)", "Имя", "Город"]
    assert len(rows) == 4
    # What a Russian Excel opens in columns: BOM, ';', Russian header and states, the file's own columns.
    russian = await api.get(f"/v1/campaigns/{campaign_id}/export.csv?lang=ru", headers=auth)
    assert russian.content.startswith("\ufeff".encode())
    table = list(csv.reader(io.StringIO(russian.content.decode("utf-8-sig")), delimiter=";"))
    assert table[0] == ["№", "Эл. почта", "Состояние", "Ответ сервера", "Попыток", "Обновлено (UTC)", "Имя", "Город"]
    ivan = next(row for row in table if row[1] == "ivan@example.ru")
    assert (ivan[2], ivan[6], ivan[7]) == ("отправлено", "Иван", "Москва")
    commas = await api.get(f"/v1/campaigns/{campaign_id}/export.csv?lang=ru&sep=comma", headers=auth)
    assert len(next(csv.reader(io.StringIO(commas.content.decode("utf-8-sig"))))) == 8
    assert (await api.get(f"/v1/campaigns/{campaign_id}/export.csv?sep=pipe", headers=auth)).status_code == 400


async def test_preview_reports_undefined_fields_and_start_refuses_them(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink
) -> None:
    sender = await make_sender(api, auth, clean_sink)
    upload = await make_upload(api, auth, b"email,name\na@example.com,Ann\n")
    draft = (await api.post("/v1/campaigns", headers=auth, json={
        "sender_id": sender["id"], "upload_id": upload["id"], "subject": "Hi {{ name }}",
        "html_body": "<p>{{ nickname }} from {{ city }}</p>"})).json()
    preview = (await api.post(f"/v1/campaigns/{draft['id']}/preview", json={}, headers=auth)).json()
    assert preview["undefined"] == ["nickname", "city"]
    refused = await api.post(f"/v1/campaigns/{draft['id']}/start", headers=auth)
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "undefined_fields"
    assert "city, nickname" in refused.json()["error"]["message"]


async def test_start_requires_a_verified_sender_and_a_ready_upload(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink
) -> None:
    made = await api.post("/v1/senders", headers=auth, json={
        "from_email": "unverified@example.org", "host": "127.0.0.1", "port": clean_sink.port,
        "security": "starttls", "password": "x"})
    draft = (await api.post("/v1/campaigns", headers=auth, json={"subject": "s", "html_body": "<p>b</p>"})).json()
    answer = await api.post(f"/v1/campaigns/{draft['id']}/start", headers=auth)
    assert answer.status_code == 400 and answer.json()["error"]["field"] == "sender_id"
    await api.patch(f"/v1/campaigns/{draft['id']}", json={"sender_id": made.json()["id"]}, headers=auth)
    answer = await api.post(f"/v1/campaigns/{draft['id']}/start", headers=auth)
    assert answer.json()["error"]["field"] == "upload_id"
    upload = await make_upload(api, auth, b"email\na@example.com\n")
    await api.patch(f"/v1/campaigns/{draft['id']}", json={"upload_id": upload["id"]}, headers=auth)
    answer = await api.post(f"/v1/campaigns/{draft['id']}/start", headers=auth)
    assert answer.json()["error"]["code"] == "sender_not_verified"
    assert (await api.get(f"/v1/campaigns/{draft['id']}", headers=auth)).json()["status"] == "draft"


async def test_pause_resume_and_cancel(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink, workers: Workers, db: Any
) -> None:
    sender = await make_sender(api, auth, clean_sink)
    rows = "".join(f"p{n}@example.com\n" for n in range(400))
    upload = await make_upload(api, auth, ("email\n" + rows).encode())
    draft = (await api.post("/v1/campaigns", headers=auth, json={
        "sender_id": sender["id"], "upload_id": upload["id"], "subject": "s", "html_body": "<p>b</p>"})).json()
    # Slow the sink so there is time to pause mid-way.
    original = clean_sink.faults.data_reply

    def slow(envelope: object) -> None:
        time.sleep(0.02)
        return None

    clean_sink.faults.data_reply = slow  # type: ignore[assignment]
    try:
        assert (await api.post(f"/v1/campaigns/{draft['id']}/start", headers=auth)).status_code == 202
        await wait_status(api, auth, draft["id"], {"sending"})
        paused = await api.post(f"/v1/campaigns/{draft['id']}/pause", headers=auth)
        assert paused.status_code == 200 and paused.json()["status"] == "paused"
        paused_at = time.time()
        in_flight = {r["email"] for r in await db.fetch(
            "SELECT email FROM recipients WHERE campaign_id = $1 AND status = 'sending'", uuid.UUID(draft["id"]))}
        deadline = time.monotonic() + 20
        while (frozen := (await api.get(f"/v1/campaigns/{draft['id']}", headers=auth)).json()["counts"])["sending"]:
            assert time.monotonic() < deadline, frozen  # sends under way at the pause finish
            await asyncio.sleep(0.1)
        # Watch the sink for a while: while paused, only the sends already under way may arrive.
        await asyncio.sleep(max(0.0, paused_at + 3 - time.time()))
        resumed_at = time.time()
        late = {r for m in clean_sink.messages for r in m.rcpt_tos if paused_at < m.at < resumed_at}
        assert late <= in_flight, sorted(late - in_flight)[:5]
        assert frozen["sent"] < 400
        assert (await api.post(f"/v1/campaigns/{draft['id']}/resume", headers=auth)).status_code == 202
    finally:
        clean_sink.faults.data_reply = original
    done = await wait_status(api, auth, draft["id"], {"finished"})
    assert done["counts"]["sent"] == 400
    delivered = sorted(r for m in clean_sink.messages for r in m.rcpt_tos)
    assert delivered == sorted(f"p{n}@example.com" for n in range(400))  # none twice, none skipped

    second = (await api.post("/v1/campaigns", headers=auth, json={
        "sender_id": sender["id"], "upload_id": upload["id"], "subject": "s", "html_body": "<p>b</p>"})).json()
    cancelled = await api.post(f"/v1/campaigns/{second['id']}/cancel", headers=auth)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert (await api.post(f"/v1/campaigns/{second['id']}/start", headers=auth)).status_code == 409
    assert (await api.post(f"/v1/campaigns/{second['id']}/resume", headers=auth)).status_code == 409


async def test_other_users_campaigns_are_not_found(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink, db: Any
) -> None:
    sender = await make_sender(api, auth, clean_sink)
    draft = (await api.post("/v1/campaigns", headers=auth, json={"subject": "s", "html_body": "b"})).json()
    other = {"Authorization": f"Bearer {await new_api_key(db)}"}
    routes = [("GET", ""), ("PATCH", ""), ("DELETE", ""), ("POST", "/preview"), ("POST", "/test"),
              ("POST", "/start"), ("POST", "/pause"), ("POST", "/resume"), ("POST", "/cancel"),
              ("GET", "/recipients"), ("GET", "/export.csv")]
    for method, suffix in routes:
        body = {"email": "x@example.com"} if suffix == "/test" else ({} if method in ("PATCH", "POST") else None)
        answer = await api.request(method, f"/v1/campaigns/{draft['id']}{suffix}", headers=other, json=body)
        assert answer.status_code == 404, (method, suffix, answer.text)
    removal = await api.delete("/v1/suppressions/x@example.com", headers=other)
    assert removal.status_code == 404
    stolen = await api.post("/v1/campaigns", headers=other, json={"sender_id": sender["id"]})
    assert stolen.status_code == 400 and stolen.json()["error"]["code"] == "unknown_sender"


async def test_the_plan_spreads_a_campaign_over_the_accounts_daily_limit(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink
) -> None:
    sender = await make_sender(api, auth, clean_sink, per_minute=20, per_day=500)
    contacts = b"email\n" + b"".join(b"p%d@example.com\n" % n for n in range(1200))
    upload = await make_upload(api, auth, contacts)
    draft = (await api.post("/v1/campaigns", headers=auth, json={
        "sender_id": sender["id"], "upload_id": upload["id"], "subject": "Hi", "html_body": "<p>Hi</p>"})).json()
    before = time.time()
    shown = (await api.get(f"/v1/campaigns/{draft['id']}", headers=auth)).json()
    assert shown["plan"]["count"] == 1200 and shown["plan"]["per_day"] == 500 and shown["plan"]["days"] == 3
    # 1,000 in the first two days, then 200 more at 20 a minute: the last about 48 h 10 min from now.
    assert before + 2 * 86400 + 199 * 3 - 5 <= shown["plan"]["last_at"] <= time.time() + 2 * 86400 + 199 * 3 + 5
    assert shown["eta_seconds"] is None  # a draft has no time left, only a plan
