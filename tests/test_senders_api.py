"""SMTP accounts: CRUD, presets, ownership, and live verification against a real TLS SMTP server."""

from __future__ import annotations

import httpx
import pytest

from sendpy.devstack.smtp_sink import SmtpSink
from shared import smtp_accounts
from shared.errors import InputError
from tests.conftest import new_api_key


def sender_body(sink: SmtpSink, **overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "from_email": "team@example.org", "from_name": "Team", "host": "127.0.0.1",
        "port": sink.port, "security": "starttls", "password": "app-password-123",
    }
    body.update(overrides)
    return body


async def test_create_read_update_delete(api: httpx.AsyncClient, api_key: str, clean_sink: SmtpSink) -> None:
    auth = {"Authorization": f"Bearer {api_key}"}
    made = await api.post("/v1/senders", json=sender_body(clean_sink), headers=auth)
    assert made.status_code == 201, made.text
    sender = made.json()
    assert "app-password-123" not in made.text and "password" not in sender
    assert sender["username"] == "team@example.org" and sender["verified"] is False
    sid = sender["id"]
    assert (await api.get(f"/v1/senders/{sid}", headers=auth)).json()["from_name"] == "Team"
    changed = await api.patch(f"/v1/senders/{sid}", json={"from_name": "New name", "per_minute": 10}, headers=auth)
    assert changed.status_code == 200, changed.text
    assert changed.json()["from_name"] == "New name" and changed.json()["per_minute"] == 10
    listed = (await api.get("/v1/senders", headers=auth)).json()["items"]
    assert [s["id"] for s in listed] == [sid]
    assert (await api.delete(f"/v1/senders/{sid}", headers=auth)).status_code == 204
    assert (await api.get(f"/v1/senders/{sid}", headers=auth)).status_code == 404


async def test_verification_succeeds_over_tls_with_auth(
    api: httpx.AsyncClient, api_key: str, clean_sink: SmtpSink
) -> None:
    auth = {"Authorization": f"Bearer {api_key}"}
    for security, port in (("starttls", clean_sink.port), ("tls", clean_sink.tls_port)):
        made = await api.post("/v1/senders", json=sender_body(clean_sink, security=security, port=port,
                                                               from_email=f"{security}@example.org"), headers=auth)
        verified = await api.post(f"/v1/senders/{made.json()['id']}/verify", headers=auth)
        assert verified.status_code == 200, verified.text
        assert verified.json()["verified"] is True
        assert verified.json()["sender"]["verified_at"]
    assert clean_sink.messages == []  # verification sends nothing


async def test_wrong_password_is_explained_with_the_app_password_hint(
    api: httpx.AsyncClient, api_key: str, clean_sink: SmtpSink
) -> None:
    clean_sink.faults.rejected_passwords.add("wrong-one")
    auth = {"Authorization": f"Bearer {api_key}"}
    made = await api.post("/v1/senders", json=sender_body(clean_sink, preset="gmail", password="wrong-one"),
                          headers=auth)
    assert made.status_code == 201, made.text
    for lang, words in (("en", "app password"), ("ru", "пароль приложения")):
        answer = await api.post(f"/v1/senders/{made.json()['id']}/verify",
                                headers={**auth, "Accept-Language": lang})
        assert answer.status_code == 422
        error = answer.json()["error"]
        assert error["code"] == "smtp_auth" and error["smtp_code"] == 535
        assert words in error["message"] and "Gmail" in error["message"]
    stored = (await api.get(f"/v1/senders/{made.json()['id']}", headers=auth)).json()
    assert stored["verified"] is False and stored["last_error"].startswith("auth")


async def test_unreachable_and_untrusted_servers_are_explained(
    api: httpx.AsyncClient, api_key: str, clean_sink: SmtpSink
) -> None:
    from sendpy.devstack.ports import free_port

    auth = {"Authorization": f"Bearer {api_key}"}
    made = await api.post("/v1/senders", json=sender_body(clean_sink, port=free_port(), from_email="r@example.org"),
                          headers=auth)
    answer = await api.post(f"/v1/senders/{made.json()['id']}/verify", headers=auth)
    assert answer.status_code == 422 and answer.json()["error"]["code"] == "smtp_refused"
    # "tls" against the STARTTLS port: the server speaks plain text first, so the handshake fails.
    made = await api.post("/v1/senders", json=sender_body(clean_sink, security="tls", from_email="t@example.org"),
                          headers=auth)
    answer = await api.post(f"/v1/senders/{made.json()['id']}/verify", headers=auth)
    assert answer.status_code == 422
    assert answer.json()["error"]["code"] in ("smtp_tls", "smtp_timeout", "smtp_protocol")


async def test_other_users_senders_are_not_found(api: httpx.AsyncClient, api_key: str, db, clean_sink: SmtpSink) -> None:
    mine = await api.post("/v1/senders", json=sender_body(clean_sink, from_email="mine@example.org"),
                          headers={"Authorization": f"Bearer {api_key}"})
    sid = mine.json()["id"]
    other = {"Authorization": f"Bearer {await new_api_key(db)}"}
    assert (await api.get(f"/v1/senders/{sid}", headers=other)).status_code == 404
    assert (await api.patch(f"/v1/senders/{sid}", json={"from_name": "x"}, headers=other)).status_code == 404
    assert (await api.post(f"/v1/senders/{sid}/verify", headers=other)).status_code == 404
    assert (await api.delete(f"/v1/senders/{sid}", headers=other)).status_code == 404
    assert (await api.get("/v1/senders/abc", headers=other)).status_code == 404


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"from_email": "x@example.org", "host": "smtp.example.org", "port": 587}, "required", "password"),
        ({"from_email": "bad", "password": "p"}, "invalid_email", "from_email"),
        ({"from_email": "x@corp.example", "password": "p"}, "unknown_provider", "host"),
        ({"from_email": "x@example.org", "host": "bad host!", "port": 25, "password": "p"}, "invalid_host", "host"),
        ({"from_email": "x@example.org", "host": "smtp.example.org", "port": 0, "password": "p"},
         "invalid_port", "port"),
        ({"from_email": "x@example.org", "host": "smtp.example.org", "port": 25, "security": "ssl3",
          "password": "p"}, "invalid_security", "security"),
        ({"from_email": "x@example.org", "host": "smtp.example.org", "port": 25, "security": "none",
          "password": "p"}, "plaintext_refused", "security"),
        ({"from_email": "x@example.org", "from_name": "A\r\nBcc: x@y.z", "host": "smtp.example.org", "port": 25,
          "password": "p"}, "line_break", "from_name"),
        ({"from_email": "x@example.org", "host": "smtp.example.org", "port": 25, "password": "p",
          "per_minute": 0}, "invalid_limit", "per_minute"),
        ({"from_email": "x@example.org", "preset": "aol", "password": "p"}, "unknown_preset", "preset"),
    ],
)
def test_sender_input_errors(body: dict[str, object], code: str, field: str) -> None:
    with pytest.raises(InputError) as caught:
        smtp_accounts.parse(body, allow_plaintext=False)
    assert (caught.value.code, caught.value.field) == (code, field)


def test_presets_fill_server_and_limits() -> None:
    value = smtp_accounts.parse({"from_email": "me@yandex.ru", "password": "p"}, allow_plaintext=False)
    assert (value.host, value.port, value.security, value.per_day) == ("smtp.yandex.ru", 465, "tls", 500)
    office = smtp_accounts.parse({"from_email": "me@corp.example", "preset": "office365", "password": "p",
                                    "per_minute": 5}, allow_plaintext=False)
    assert (office.host, office.port, office.security, office.per_minute) == ("smtp.office365.com", 587,
                                                                              "starttls", 5)


async def test_sender_address_and_relay_refusals_are_explained(
    api: httpx.AsyncClient, api_key: str, clean_sink: SmtpSink
) -> None:
    auth = {"Authorization": f"Bearer {api_key}"}
    made = await api.post("/v1/senders", json=sender_body(clean_sink, from_email="alias@example.org"), headers=auth)
    clean_sink.faults.mail_reply = lambda sender: "553 5.7.1 Sender address rejected: not owned by user"
    answer = await api.post(f"/v1/senders/{made.json()['id']}/verify", headers=auth)
    assert answer.status_code == 422
    assert answer.json()["error"]["code"] == "smtp_sender_refused"
    assert "alias@example.org" in answer.json()["error"]["message"]
    clean_sink.faults.mail_reply = None
    clean_sink.faults.rcpt_reply = lambda rcpt: "554 5.7.1 Relay access denied"
    answer = await api.post(f"/v1/senders/{made.json()['id']}/verify", headers=auth)
    assert answer.status_code == 422 and answer.json()["error"]["code"] == "smtp_relay_denied"


async def test_a_sender_is_deleted_once_its_campaigns_are_over_and_their_history_stays(
    api: httpx.AsyncClient, api_key: str, clean_sink: SmtpSink, workers: object
) -> None:
    from tests.helpers import make_sender, make_upload, wait_status

    auth = {"Authorization": f"Bearer {api_key}"}
    sender = await make_sender(api, auth, clean_sink)
    upload = await make_upload(api, auth, b"email\nann@example.com\n")
    body = {"sender_id": sender["id"], "upload_id": upload["id"], "subject": "Hi", "html_body": "<p>Hi</p>"}
    sent = (await api.post("/v1/campaigns", headers=auth, json=body)).json()["id"]
    waiting = (await api.post("/v1/campaigns", headers=auth, json=body)).json()["id"]
    assert (await api.post(f"/v1/campaigns/{sent}/start", headers=auth)).status_code == 202
    assert (await wait_status(api, auth, sent, {"finished"}))["counts"]["sent"] == 1
    at = "2099-01-01T00:00:00+00:00"
    scheduled = await api.post(f"/v1/campaigns/{waiting}/schedule", headers=auth, json={"at": at})
    assert scheduled.status_code == 400  # more than a year ahead; schedule it for tomorrow instead
    import datetime as dt

    tomorrow = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).isoformat()
    assert (await api.post(f"/v1/campaigns/{waiting}/schedule", headers=auth, json={"at": tomorrow})).status_code == 200

    refused = await api.delete(f"/v1/senders/{sender['id']}", headers={**auth, "Accept-Language": "ru"})
    assert refused.status_code == 409 and "не закончена рассылка «" in refused.json()["error"]["message"]
    assert (await api.delete(f"/v1/campaigns/{waiting}/schedule", headers=auth)).status_code == 200  # a draft again

    assert (await api.delete(f"/v1/senders/{sender['id']}", headers=auth)).status_code == 204
    assert sender["id"] not in {s["id"] for s in (await api.get("/v1/senders", headers=auth)).json()["items"]}
    assert (await api.get(f"/v1/senders/{sender['id']}", headers=auth)).status_code == 404
    history = (await api.get(f"/v1/campaigns/{sent}", headers=auth)).json()
    assert history["status"] == "finished" and history["sender_id"] == sender["id"]  # the history keeps it
    assert (await api.get(f"/v1/campaigns/{waiting}", headers=auth)).json()["sender_id"] is None  # the draft lost it
    again = await api.post("/v1/senders", headers=auth, json=sender_body(clean_sink, from_email=sender["from_email"]))
    assert again.status_code == 201  # the same mailbox can be added again at once


async def test_the_saved_password_never_goes_to_another_server_unasked(
    api: httpx.AsyncClient, api_key: str, clean_sink: SmtpSink
) -> None:
    # Pointing the sender at another host or port would have logged in there with the stored password.
    auth = {"Authorization": f"Bearer {api_key}", "Accept-Language": "ru"}
    sid = (await api.post("/v1/senders", json=sender_body(clean_sink, from_email="moved@example.org"),
                          headers=auth)).json()["id"]
    for change in ({"host": "smtp.attacker.example"}, {"port": clean_sink.port + 1}):
        refused = await api.patch(f"/v1/senders/{sid}", json=change, headers=auth)
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"]["code"] == "smtp_password_required"
        assert refused.json()["error"]["field"] == "password"
        assert "введите пароль ещё раз" in refused.json()["error"]["message"]
    stored = (await api.get(f"/v1/senders/{sid}", headers=auth)).json()
    assert (stored["host"], stored["port"]) == ("127.0.0.1", clean_sink.port)  # nothing changed
    assert (await api.patch(f"/v1/senders/{sid}", json={"host": "LOCALHOST", "password": "typed again 1"},
                            headers=auth)).status_code == 200
    assert (await api.patch(f"/v1/senders/{sid}", json={"from_name": "Same server", "host": "localhost"},
                            headers=auth)).status_code == 200  # same server, any spelling of its case
