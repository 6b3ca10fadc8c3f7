"""An HTML body that shows nothing is refused as empty, by start and by the one-shot send (issue 12).

The editor cleared by its user leaves `<p><br></p>`; the server stripped whitespace only, took it
for a message and would have mailed every recipient an empty email (the UI stops it at the step
now; a script or an older page does not). No visible text (as the plain-text part is written) and
no image: a 400 with the reason in Russian and English, nothing started or stored.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from sendpy.devstack.smtp_sink import SmtpSink
from shared.mail.blank import is_blank
from tests.helpers import make_sender, make_upload

BLANK = ["<p><br></p>", "<p>&nbsp;</p>", "<div> <br/> </div>\n", "<p>\u200b</p>", "<!-- a comment -->",
         "<style>p { color: red }</style><p></p>", "<table><tr><td></td></tr></table>"]
NOT_BLANK = ["<p>Hi</p>", "<p>{{ name }}</p>", '<p><img src="https://example.org/a.png"></p>',
             '<td background="https://example.org/b.png"></td>', "<p>" + "<b></b>" * 20_000 + "</p>"]

REASON = {"en": "The message is empty: it has no text and no image.", "ru": "Письмо пустое: в нём нет ни текста, ни картинки."}


@pytest.mark.parametrize("html", BLANK)
def test_a_body_showing_nothing_is_blank(html: str) -> None:
    assert is_blank(html)


@pytest.mark.parametrize("html", NOT_BLANK)
def test_text_a_merge_field_or_an_image_is_a_message(html: str) -> None:
    assert not is_blank(html)  # the element flood is refused for its size, with its own reason


@pytest.fixture
def auth(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


@pytest.mark.parametrize("lang", ["ru", "en"])
async def test_start_refuses_an_empty_paragraph(api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink,
                                                lang: str) -> None:
    sender = await make_sender(api, auth, clean_sink)
    upload = await make_upload(api, auth, b"email\na@example.com\n")
    draft = (await api.post("/v1/campaigns", headers=auth, json={
        "sender_id": sender["id"], "upload_id": upload["id"], "subject": "News", "html_body": "<p><br></p>"})).json()
    answer = await api.post(f"/v1/campaigns/{draft['id']}/start", headers={**auth, "Accept-Language": lang})
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert (error["code"], error["field"]) == ("empty_body", "html_body")
    assert error["message"].startswith(REASON[lang]), error["message"]
    assert (await api.get(f"/v1/campaigns/{draft['id']}", headers=auth)).json()["status"] == "draft"
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    scheduled = await api.post(f"/v1/campaigns/{draft['id']}/schedule", headers=auth, json={"at": tomorrow})
    assert scheduled.status_code == 400 and scheduled.json()["error"]["code"] == "empty_body", scheduled.text


@pytest.mark.parametrize("lang", ["ru", "en"])
async def test_the_one_shot_send_refuses_an_empty_paragraph(api: httpx.AsyncClient, api_key: str, db: Any,
                                                            clean_sink: SmtpSink, lang: str) -> None:
    before = await db.fetchval("SELECT count(*) FROM campaigns")
    answer = await api.post("/api/send-message", headers={"Authorization": f"Bearer {api_key}",
                                                          "Accept-Language": lang}, json={
        "message": "<p><br></p>", "message_subject": "News", "recipient_email_list": ["anna@example.com"],
        "sender_email": "me@example.com", "smtp_password": "any",
        "server_host": "127.0.0.1", "server_port": clean_sink.port})
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert (error["code"], error["field"]) == ("empty_body", "message")
    assert error["message"].startswith(REASON[lang]), error["message"]
    assert await db.fetchval("SELECT count(*) FROM campaigns") == before
    assert not clean_sink.messages
