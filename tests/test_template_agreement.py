"""The API and the sender worker judge a template by the same limits (issue 10, the final attack).

A body whose text passed 1,000,000 characters was accepted with 202 and then failed every
recipient; 9,999 HTML elements passed the API's cap of 10,000, and the unsubscribe footer the
worker adds took them over it, pausing the campaign. The API's trial now compiles as the worker
does (footer and unsubscribe links included) and refuses what would fail for every recipient.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from sendpy.devstack.smtp_sink import SmtpSink
from shared.campaigns import preview
from shared.errors import InputError
from shared.mail.compose import CampaignContent, CompiledCampaign, RenderTooLarge
from shared.mail.template_limits import MAX_HTML_ELEMENTS, MAX_RENDERED_CHARS, MAX_SUBJECT_CHARS, MAX_TAGS
from shared.settings import get_settings
from shared.unsubscribe import Unsubscriber
from tests.conftest import Workers
from tests.fault_report import record_user
from tests.helpers import draft_campaign, list_recipients, mail_from, make_sender, make_upload, wait_status

EMAIL = "anna@example.com"  # the sample contact's address: its unsubscribe link is as long as a trial's
FOOTER_ELEMENTS = 2  # <p> and <a>


def _unsubscriber() -> Unsubscriber:
    # As the worker makes it (worker_image/__main__.py); the key changes no link's length.
    return Unsubscriber(b"a signing key", get_settings().public_base_url, uuid.uuid4(), 42)


def _worker(html: str, text: str | None = None) -> str:
    """What the sender worker makes of the template for EMAIL: "ok", or the kind of its failure
    (compiled as shared/delivery/scheduler.py compiles it, rendered as it renders a recipient's mail)."""
    try:
        compiled = CompiledCampaign(CampaignContent("c", "news@example.org", "News", "Hi", html, text),
                                    unsubscriber=_unsubscriber())
        compiled.render(1, EMAIL, {})
    except Exception as exc:
        return type(exc).__name__
    return "ok"


def _api(html: str, text: str | None = None) -> str:
    """What the API's trial (drafts, start, one-shot mail) says: "ok" or the error code."""
    try:
        preview.trial("Hi", html, text, None, preview.SAMPLE)
    except InputError as exc:
        return exc.code
    return "ok"


def _longest_body() -> int:
    """The most characters of plain text a body may have for EMAIL, worked out from the worker's
    own part sizes: what its footer and links add to the HTML and to the derived text part."""
    compiled = CompiledCampaign(CampaignContent("c", "news@example.org", "", "Hi", "x" * 10),
                                unsubscriber=_unsubscriber())
    _, text, html = compiled.render_parts(compiled.merge_fields(1, EMAIL, {}))
    return MAX_RENDERED_CHARS - max(len(text), len(html)) + 10


def _elements(count: int) -> str:
    return "<p>" + "<b>x</b>" * (count - 1)


def _tags(count: int) -> str:
    return "<p>" + "{{ email }}" * count + "</p>"


def _boundary(limit: str) -> tuple[str, str]:
    """A template within every limit once sending adds its footer, and the same one step over."""
    if limit == "elements":
        return _elements(MAX_HTML_ELEMENTS - FOOTER_ELEMENTS), _elements(MAX_HTML_ELEMENTS - FOOTER_ELEMENTS + 1)
    if limit == "tags":  # the footer holds one {{ unsubscribe_url }}
        return _tags(MAX_TAGS - 1), _tags(MAX_TAGS)
    return "x" * _longest_body(), "x" * (_longest_body() + 1)


@pytest.mark.parametrize("limit", ["elements", "tags", "size"])
def test_the_api_accepts_exactly_what_the_worker_can_send(limit: str) -> None:
    within, over = _boundary(limit)
    assert (_api(within), _worker(within)) == ("ok", "ok")
    refused, failed = _api(over), _worker(over)
    assert refused != "ok" and failed != "ok", (refused, failed)


def test_an_own_text_part_over_the_limit_is_refused_and_one_of_a_contacts_data_is_not() -> None:
    assert _api("<p>Hi</p>", "t" * (MAX_RENDERED_CHARS + 1)) == "template_always_too_large"
    assert _worker("<p>Hi</p>", "t" * (MAX_RENDERED_CHARS + 1)) == "RenderTooLarge"
    # Two 10,000-character fields take this one contact over; with empty fields it is well within.
    html = "<p>{{ bio }}{{ bio }}</p>" + "x" * (MAX_RENDERED_CHARS - 15_000)
    preview.trial("Hi", html, None, {"email": EMAIL, "bio": "b" * 10_000}, preview.first_contact(EMAIL))


def test_the_refusals_say_why_in_both_languages() -> None:
    with pytest.raises(InputError) as too_large:
        preview.trial("Hi", "<p>" + "x" * MAX_RENDERED_CHARS + "</p>", None, None, preview.SAMPLE)
    assert too_large.value.code == "template_always_too_large" and too_large.value.field == "html_body"
    english, russian = too_large.value.message("en"), too_large.value.message("ru")
    assert "longer than 1,000,000 characters even with the file's columns empty and the shortest address" in english, english
    assert "fail for every recipient" in english
    assert "длиннее 1 000 000 символов даже с пустыми столбцами файла и самым коротким адресом" in russian, russian
    with pytest.raises(InputError) as elements:
        preview.trial("Hi", _elements(MAX_HTML_ELEMENTS - 1), None, None, preview.SAMPLE)
    assert elements.value.code == "template_html_elements"
    assert "counting the unsubscribe link Sendpy adds" in elements.value.message("en")
    assert "вместе с добавляемой Sendpy ссылкой для отписки" in elements.value.message("ru")
    with pytest.raises(InputError) as tags:  # 500 written, the footer's one more
        preview.trial("Hi", _tags(MAX_TAGS), None, None, preview.SAMPLE)
    assert "(at most 500), counting the unsubscribe link Sendpy adds" in tags.value.message("en")
    # The author's own mistake is named in the author's words, not in the footer's it ran into.
    with pytest.raises(InputError) as unclosed:
        preview.trial("Hi", "<p>Здравствуйте, {{ name", None, None, preview.SAMPLE)
    assert "(строка 1): шаблон закончился, а ожидалось «}}»" in unclosed.value.message("ru")
    assert "unsubscribe" not in unclosed.value.message("en")


@pytest.fixture
def auth(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


async def test_one_shot_mail_over_the_part_limit_is_refused_and_stores_nothing(
    api: httpx.AsyncClient, auth: dict[str, str], db: asyncpg.Pool, clean_sink: SmtpSink
) -> None:
    message = {"message_subject": "s", "sender_email": "me@example.org", "smtp_password": "p",
               "recipient_email_list": ["ann@example.com", "bob@example.com"], "server_host": "127.0.0.1",
               "server_port": clean_sink.port, "message": "<p>" + "x" * 1_200_000 + "</p>"}  # was a 202
    before = await db.fetchval("SELECT count(*) FROM campaigns")
    began = time.monotonic()
    refused = await api.post("/api/send-message", headers={**auth, "Accept-Language": "ru"}, json=message)
    answered = time.monotonic() - began
    assert refused.status_code == 400, refused.text
    error = refused.json()["error"]
    assert (error["code"], error["field"]) == ("template_always_too_large", "message"), error
    assert "даже с пустыми столбцами файла и самым коротким адресом" in error["message"], error
    english = (await api.post("/api/send-message", headers=auth, json=message)).json()["error"]["message"]
    assert "even with the file's columns empty and the shortest address" in english, english
    assert await db.fetchval("SELECT count(*) FROM campaigns") == before
    record_user("part_over_limit", f"400 `template_always_too_large`: «{error['message'][:80]}…», nothing stored",
                answered)


async def test_start_refuses_a_draft_saved_before_the_check_and_drafts_refuse_it_now(
    api: httpx.AsyncClient, auth: dict[str, str], db: asyncpg.Pool, clean_sink: SmtpSink
) -> None:
    body = "<p>" + "x" * 1_200_000 + "</p>"
    refused = await api.post("/v1/campaigns", headers=auth, json={"html_body": body})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "template_always_too_large", refused.text
    sender = await make_sender(api, auth, clean_sink)
    campaign_id = await draft_campaign(api, auth, sender["id"], ["ann@example.com", "bob@example.com"])
    await db.execute("UPDATE campaigns SET html_body = $1 WHERE id = $2", body, uuid.UUID(campaign_id))
    started = await api.post(f"/v1/campaigns/{campaign_id}/start", headers={**auth, "Accept-Language": "ru"})
    assert started.status_code == 400, started.text
    assert started.json()["error"]["code"] == "template_always_too_large", started.text
    assert (await api.get(f"/v1/campaigns/{campaign_id}", headers=auth)).json()["status"] == "draft"
    elements = await api.patch(f"/v1/campaigns/{campaign_id}", headers=auth,
                               json={"html_body": _elements(MAX_HTML_ELEMENTS - 1)})  # the worker paused these
    assert elements.status_code == 400 and elements.json()["error"]["code"] == "template_html_elements", elements.text
    assert "unsubscribe link" in elements.json()["error"]["message"]


async def test_html_at_the_cap_footer_included_is_sent_to_everyone(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink, workers: Workers
) -> None:
    sender = await make_sender(api, auth, clean_sink)
    emails = ["ann@example.com", "bob@example.com", "eve@example.com"]
    campaign_id = await draft_campaign(api, auth, sender["id"], emails, _elements(MAX_HTML_ELEMENTS - FOOTER_ELEMENTS))
    started = await api.post(f"/v1/campaigns/{campaign_id}/start", headers=auth)
    assert started.status_code == 202, started.text
    done: dict[str, Any] = await wait_status(api, auth, campaign_id, {"finished", "paused"}, timeout=120)
    assert done["status"] == "finished" and done["counts"]["sent"] == 3, done
    received = mail_from(clean_sink, sender)
    assert sorted(mail.rcpt_tos[0] for mail in received) == emails
    for mail in received:  # each with its footer's unsubscribe link
        html = mail.parsed().get_body(("html",))
        assert html is not None and "/u/2." in html.get_content()


def test_a_subject_is_capped_far_below_the_body() -> None:
    # 99 fields of 10,000 characters made a 1,000,000-character subject, encoded for 1.2–3.3 s per
    # recipient on the sender's event loop; now that recipient fails at once, saying why.
    compiled = CompiledCampaign(CampaignContent("c", "news@example.org", "", "{{ a }}" * 99, "<p>Hi</p>"))
    compiled.render(1, EMAIL, {"a": "я" * (MAX_SUBJECT_CHARS // 99)})
    with pytest.raises(RenderTooLarge) as refused:
        compiled.render(1, EMAIL, {"a": "я" * 10_000})
    assert refused.value.part == "subject" and refused.value.limit == MAX_SUBJECT_CHARS
    assert "длиннее 2 000 символов" in refused.value.russian
    # One that is too long for anyone is refused where it is written.
    with pytest.raises(InputError) as always:
        preview.trial("{{ " + " ~ ".join(["unsubscribe_url"] * 20) + " }}", "<p>Hi</p>", None, None, preview.SAMPLE)
    assert (always.value.code, always.value.field) == ("template_always_too_large", "subject")
    assert "longer than 2,000 characters" in always.value.message("en")


async def test_a_contact_whose_fields_overfill_the_subject_fails_alone_and_says_why(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink, workers: Workers
) -> None:
    sender = await make_sender(api, auth, clean_sink)
    upload = await make_upload(api, auth, f"email,a\nann@example.com,{'я' * 10_000}\nbob@example.com,Боб\n".encode())
    draft = await api.post("/v1/campaigns", headers=auth, json={
        "sender_id": sender["id"], "upload_id": upload["id"], "subject": "{{ a }}" * 99, "html_body": "<p>Hi</p>"})
    assert draft.status_code == 201, draft.text
    campaign_id = draft.json()["id"]
    started = await api.post(f"/v1/campaigns/{campaign_id}/start", headers=auth)  # ann's data, not the template
    assert started.status_code == 202, started.text
    done = await wait_status(api, auth, campaign_id, {"finished", "paused"}, timeout=120)
    assert done["status"] == "finished" and done["counts"]["sent"] == 1 and done["counts"]["failed"] == 1, done
    failed = await list_recipients(api, auth, campaign_id, "failed")
    assert [item["email"] for item in failed] == ["ann@example.com"], failed
    assert "тема письма для этого контакта длиннее 2 000 символов" in str(failed[0]), failed
    assert [mail.rcpt_tos[0] for mail in mail_from(clean_sink, sender)] == ["bob@example.com"]
