"""The messenger against a real SMTP socket: implicit TLS, STARTTLS, verification, AUTH, replies."""

from __future__ import annotations

import ssl

import pytest

from sendpy.devstack.smtp_sink import SmtpSink
from sendpy.devstack.tls import LocalCertificates
from shared.delivery.outcomes import refusal_problem
from shared.mail.messenger import (
    ConnectError,
    ConnectPolicy,
    Reply,
    ReplyKind,
    SmtpAccount,
    SmtpConnection,
    classify,
)
from shared.smtp_accounts import Sender


def policy(certs: LocalCertificates, **overrides: object) -> ConnectPolicy:
    options: dict[str, object] = {"allow_private": True, "allow_plaintext": False, "timeout": 5,
                                  "tls": certs.client_context()}
    options.update(overrides)
    return ConnectPolicy(**options)  # type: ignore[arg-type]


MESSAGE = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: t\r\n\r\nbody\r\n"


@pytest.mark.parametrize("pipelining", [True, False])
@pytest.mark.parametrize("security", ["tls", "starttls"])
async def test_sends_over_verified_tls(clean_sink: SmtpSink, certs: LocalCertificates, security: str,
                                       pipelining: bool) -> None:
    clean_sink.pipelining = pipelining
    port = clean_sink.tls_port if security == "tls" else clean_sink.port
    assert port is not None
    conn = SmtpConnection(SmtpAccount("127.0.0.1", port, security, "me@example.com", "pw"), policy(certs))
    await conn.open()
    assert conn.pipelined is pipelining
    reply = await conn.send("a@example.com", "b@example.com", MESSAGE)
    await conn.quit()
    assert reply.kind is ReplyKind.SENT, reply
    assert [m.rcpt_tos for m in clean_sink.messages] == [("b@example.com",)]
    assert clean_sink.messages[0].username == "me@example.com"


async def test_untrusted_certificate_is_refused(clean_sink: SmtpSink, certs: LocalCertificates) -> None:
    conn = SmtpConnection(SmtpAccount("127.0.0.1", clean_sink.port, "starttls", "me", "pw"),
                          policy(certs, tls=ssl.create_default_context()))
    with pytest.raises(ConnectError) as caught:
        await conn.open()
    assert caught.value.kind == "tls"
    assert "certificate" in str(caught.value).lower()


async def test_wrong_password_is_an_auth_error(clean_sink: SmtpSink, certs: LocalCertificates) -> None:
    clean_sink.faults.rejected_passwords.add("wrong")
    conn = SmtpConnection(SmtpAccount("127.0.0.1", clean_sink.port, "starttls", "me", "wrong"), policy(certs))
    with pytest.raises(ConnectError) as caught:
        await conn.open()
    assert caught.value.kind == "auth"
    assert caught.value.code == 535


async def test_plaintext_and_private_targets_need_permission(clean_sink: SmtpSink, certs: LocalCertificates) -> None:
    plain = SmtpConnection(SmtpAccount("127.0.0.1", clean_sink.port, "none", "", ""), policy(certs))
    with pytest.raises(ConnectError) as caught:
        await plain.open()
    assert caught.value.kind == "plaintext"
    private = SmtpConnection(SmtpAccount("127.0.0.1", clean_sink.port, "starttls", "me", "pw"),
                             policy(certs, allow_private=False))
    with pytest.raises(ConnectError) as caught:
        await private.open()
    assert caught.value.kind == "private"


async def test_refused_connection(certs: LocalCertificates) -> None:
    from sendpy.devstack.ports import free_port

    conn = SmtpConnection(SmtpAccount("127.0.0.1", free_port(), "tls", "me", "pw"), policy(certs))
    with pytest.raises(ConnectError) as caught:
        await conn.open()
    assert caught.value.kind == "refused"


@pytest.mark.parametrize("pipelining", [True, False])
async def test_replies_are_classified(clean_sink: SmtpSink, certs: LocalCertificates, pipelining: bool) -> None:
    clean_sink.pipelining = pipelining
    clean_sink.faults.rcpt_reply = lambda rcpt: "550 5.1.1 No such user" if rcpt.startswith("gone") else None
    conn = SmtpConnection(SmtpAccount("127.0.0.1", clean_sink.port, "starttls", "me", "pw"), policy(certs))
    await conn.open()
    gone = await conn.send("a@example.com", "gone@example.com", MESSAGE)
    assert (gone.kind, gone.code) == (ReplyKind.FAILED, 550)
    clean_sink.faults.data_reply = lambda envelope: "451 4.3.0 Try again"
    later = await conn.send("a@example.com", "b@example.com", MESSAGE)
    assert (later.kind, later.code) == (ReplyKind.RETRY, 451)
    clean_sink.faults.data_reply = None
    ok = await conn.send("a@example.com", "b@example.com", MESSAGE)
    assert ok.kind is ReplyKind.SENT
    clean_sink.faults.mail_reply = lambda sender: "553 5.7.1 not owned"
    refused = await conn.send("x@example.com", "b@example.com", MESSAGE)
    assert (refused.kind, refused.code) == (ReplyKind.PAUSE_CAMPAIGN, 553)
    clean_sink.faults.mail_reply = None
    dotted = b"Subject: dots\r\n\r\n.leading dot\r\n..two\r\n.\r\nend\r\n"
    assert (await conn.send("a@example.com", "c@example.com", dotted)).kind is ReplyKind.SENT
    await conn.quit()
    received = [m for m in clean_sink.messages if m.rcpt_tos == ("c@example.com",)]
    assert received[0].data.replace(b"\r\n", b"\n").endswith(b".leading dot\n..two\n.\nend\n")


@pytest.mark.parametrize("offered", [True, False])
async def test_international_addresses_need_smtputf8(clean_sink: SmtpSink, certs: LocalCertificates,
                                                     offered: bool) -> None:
    clean_sink.smtputf8 = offered
    conn = SmtpConnection(SmtpAccount("127.0.0.1", clean_sink.port, "starttls", "me", "pw"), policy(certs))
    await conn.open()
    assert conn.pipelined
    reply = await conn.send("a@example.com", "пользователь@example.com", MESSAGE)
    await conn.quit()
    if offered:
        assert reply.kind is ReplyKind.SENT
        assert clean_sink.messages[-1].rcpt_tos == ("пользователь@example.com",)
    else:  # a final, explained failure, not hours of retries
        assert reply.kind is ReplyKind.FAILED and "SMTPUTF8" in reply.text


@pytest.mark.parametrize(
    ("code", "text", "stage", "expected"),
    [
        (250, "ok", "data", ReplyKind.SENT),
        (451, "4.3.0 Temporary failure", "data", ReplyKind.RETRY),
        (421, "4.7.0 Try again later, closing connection", "data", ReplyKind.PAUSE_SENDER),
        (450, "4.2.1 too many messages, slow down", "rcpt", ReplyKind.PAUSE_SENDER),
        (550, "5.4.5 Daily user sending limit exceeded", "data", ReplyKind.PAUSE_SENDER),
        (550, "5.1.1 The email account does not exist", "rcpt", ReplyKind.FAILED),
        (554, "5.7.1 Message rejected", "data", ReplyKind.FAILED),
        (535, "5.7.8 Username and Password not accepted", "auth", ReplyKind.PAUSE_CAMPAIGN),
        (553, "5.7.1 Sender address rejected: not owned by user", "mail", ReplyKind.PAUSE_CAMPAIGN),
        (452, "4.5.3 Too many recipients", "rcpt", ReplyKind.RETRY),
    ],
)
def test_classify(code: int, text: str, stage: str, expected: ReplyKind) -> None:
    assert classify(code, text, stage=stage) is expected


def test_account_repr_hides_the_password() -> None:
    account = SmtpAccount("smtp.example.com", 465, "tls", "me", "hunter2")
    assert "hunter2" not in repr(account) and "hunter2" not in str(account)


async def test_a_server_without_starttls_is_a_settings_problem_not_a_retry() -> None:
    plain = SmtpSink()  # no certificates: offers no STARTTLS at all
    plain.start()
    try:
        conn = SmtpConnection(SmtpAccount("127.0.0.1", plain.port, "starttls", "u", "p"),
                              ConnectPolicy(allow_private=True, allow_plaintext=False, timeout=5))
        with pytest.raises(ConnectError) as refused:
            await conn.open()
        assert refused.value.kind == "starttls"
        assert plain.messages == []
    finally:
        plain.stop()


def test_a_reply_with_control_characters_is_described_without_them() -> None:
    # A hostile server's NUL would make the outcome unstorable (the batch failed again and again).
    assert Reply(ReplyKind.FAILED, 550, "no\x00such\x1b[31m user\r\n").describe() == "550 no such [31m user"


@pytest.mark.parametrize(("code", "text", "russian", "english"), [
    (553, "5.7.1 Sender address rejected: not owned by user", "Сервер не разрешил отправку от имени",
     "The server refused to send as"),
    (535, "5.7.8 Authentication credentials invalid", "Сервер не принял логин или пароль",
     "The server did not accept the login or password"),
    (503, "Error: nested MAIL command", "Сервер ответил неожиданно", "The server answered something unexpected"),
])
def test_a_reply_that_pauses_the_campaign_is_explained_in_both_languages(
    code: int, text: str, russian: str, english: str
) -> None:
    sender = Sender(id=1, user_id=1, from_email="news@example.org", from_name="", host="smtp.example.org", port=587,
                    security="starttls", username="news@example.org", preset=None, per_minute=None, per_day=None,
                    recipients_per_connection=None, sealed_password="")
    reply = Reply(classify(code, text, stage="mail"), code, text)
    assert reply.kind is ReplyKind.PAUSE_CAMPAIGN
    reason = refusal_problem(sender, reply)
    assert russian in reason and english in reason and f"{code} {text}" in reason, reason
