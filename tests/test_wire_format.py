"""The bytes a recipient's message goes out as: a valid MIME message whose two parts decode to
exactly what was rendered, 7bit where that is allowed (ASCII, lines of at most 998 bytes) and
base64 otherwise; and the same bytes again at the far end of a real SMTP session (dot-stuffing)."""

from __future__ import annotations

import re
import uuid
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

import pytest

from sendpy.devstack.smtp_sink import SmtpSink
from sendpy.devstack.tls import LocalCertificates
from shared.mail.compose import CampaignContent, CompiledCampaign, encode_body
from shared.mail.messenger import ConnectPolicy, ReplyKind, SmtpAccount, SmtpConnection
from shared.unsubscribe import Unsubscriber

CAMPAIGN = uuid.UUID("1b4e28ba-2fa1-11d2-883f-0016d3cca427")
# The sending benchmark's message: ≈ 2 KB of HTML on one line, two merge fields.
BENCHMARK = ("<p>Dear {{ name }},</p><p>" + "Here is this month's news from our shop, with offers and events. " * 28
             + "</p><p>Sent to {{ email }}.</p>")
CYRILLIC = "<p>Здравствуйте, {{ name }}!</p><p>" + "Новости магазина за этот месяц: скидки и события. " * 30 + "</p>"


def compiled(html: str, text: str | None = None, subject: str = "News for {{ name }}") -> CompiledCampaign:
    links = Unsubscriber(b"k" * 32, "https://sendpy.example.org", CAMPAIGN, 42)
    return CompiledCampaign(CampaignContent(str(CAMPAIGN), "news@example.org", "Новости", subject, html, text),
                            unsubscriber=links)


def parsed(raw: bytes) -> EmailMessage:
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    return message


def lines_of(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def check(campaign: CompiledCampaign, fields: dict[str, Any], encodings: tuple[str, str]) -> bytes:
    """Renders for one recipient, parses the bytes back, and compares each part with the render."""
    raw = campaign.render(7, "anna@example.com", fields)
    assert b"\n" not in raw.replace(b"\r\n", b"") and b"\r" not in raw.replace(b"\r\n", b"")  # CRLF only
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    message = parsed(raw)
    assert not message.defects
    subject, text, html = campaign.render_parts(campaign.merge_fields(7, "anna@example.com", fields))
    assert message["Subject"] == re.sub(r"[\r\n]+", " ", subject)  # one header line, whatever the field held
    for kind, rendered, encoding in (("plain", text, encodings[0]), ("html", html, encodings[1])):
        part = message.get_body((kind,))
        assert part is not None and not part.defects
        assert part["Content-Transfer-Encoding"] == encoding, (kind, encoding)
        assert lines_of(part.get_content()) == lines_of(rendered), kind
    return raw


def test_the_benchmark_message_goes_as_7bit_and_decodes_to_what_was_rendered() -> None:
    raw = check(compiled(BENCHMARK), {"name": "Person 1"}, ("7bit", "7bit"))
    assert b"base64" not in raw
    assert len(raw) < 5200  # it was 6,500 bytes as base64


def test_cyrillic_goes_as_base64() -> None:
    check(compiled(CYRILLIC), {"name": "Анна"}, ("base64", "base64"))
    check(compiled(BENCHMARK), {"name": "Анна"}, ("base64", "base64"))  # from a merge field


def test_a_line_that_cannot_be_folded_goes_as_base64() -> None:
    check(compiled("<p>" + "x" * 3000 + "</p>", "short text"), {}, ("7bit", "base64"))


@pytest.mark.parametrize(("length", "encoding"), [(998, "7bit"), (999, "base64")])
def test_a_line_of_998_bytes_is_the_longest_sent_as_is(length: int, encoding: str) -> None:
    check(compiled("{{ a }}", "{{ a }}"), {"a": "y" * length}, (encoding, encoding))
    check(compiled("<p>x</p>\n{{ a }}\n<p>y</p>", "x\n{{ a }}\ny"), {"a": "y" * length}, (encoding, encoding))
    assert encode_body("z" * length)[0] == encoding.encode()
    assert encode_body("z" * length + "\r\nshort")[0] == encoding.encode()


@pytest.mark.parametrize(("value", "encoding"), [(100, "7bit"), (300, "base64")])
def test_a_merge_field_on_a_long_line_of_the_template(value: int, encoding: str) -> None:
    template = "<p>" + "w" * 790 + "{{ a }}</p>\n<p>short</p>"  # 790: not folded, no space to fold at anyway
    check(compiled(template, template), {"a": "v" * value}, (encoding, encoding))


def test_long_fields_on_lines_of_their_own_still_go_as_is() -> None:
    check(compiled("{{ a }}\n{{ b }}\n{{ a }}", "{{ a }}\n{{ b }}"), {"a": "v" * 990, "b": "w" * 990}, ("7bit", "7bit"))


def test_lines_starting_with_a_dot_and_every_kind_of_line_end() -> None:
    html = "<p>one</p>\r\n.<p>dot</p>\r..two\n.\n" + "word " * 300 + ".tail"
    check(compiled(html, ".leading\r\nCRLF\rCR\nLF\n."), {}, ("7bit", "7bit"))
    fields = {"name": "Ann\r\nBcc: x@example.com\r.\n..\n"}
    check(compiled("<p>{{ name }}</p>", "{{ name }}"), fields, ("7bit", "7bit"))


def test_encode_body_round_trips() -> None:
    for text in ("", "a", "a\n", "\n\n", "a\r\nb\rc\nd", "é" * 10, "x" * 5000, ".\n.."):
        encoding, body = encode_body(text)
        decoded = body.decode("ascii") if encoding == b"7bit" else __import__("base64").b64decode(body).decode()
        assert decoded == text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\r\n")


@pytest.mark.parametrize("pipelining", [True, False])
async def test_the_same_bytes_arrive_through_smtp(clean_sink: SmtpSink, certs: LocalCertificates,
                                                 pipelining: bool) -> None:
    clean_sink.pipelining = pipelining
    messages = [
        compiled(BENCHMARK).render(1, "a@example.com", {"name": "Person 1"}),
        compiled(CYRILLIC).render(2, "b@example.com", {"name": "Анна"}),
        compiled(".first\n" + "word " * 300 + "\n.\n..", ".\r\n.x").render(3, "c@example.com", {}),
    ]
    conn = SmtpConnection(SmtpAccount("127.0.0.1", clean_sink.port, "starttls", "me", "pw"),
                          ConnectPolicy(allow_private=True, allow_plaintext=False, timeout=10,
                                        tls=certs.client_context()))
    await conn.open()
    for raw in messages:
        reply = await conn.send("news@example.org", "r@example.com", raw)
        assert reply.kind is ReplyKind.SENT, reply
    await conn.quit()
    assert [received.data.rstrip(b"\r\n") for received in clean_sink.messages] == \
        [raw.rstrip(b"\r\n") for raw in messages]
