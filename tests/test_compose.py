from __future__ import annotations

from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from jinja2 import UndefinedError
from jinja2.exceptions import SecurityError

from shared.mail.compose import CampaignContent, CompiledCampaign, TemplateError, html_to_text


def parse(raw: bytes) -> EmailMessage:
    message = message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def campaign(**overrides: str) -> CompiledCampaign:
    fields = {
        "campaign_id": "c0ffee00-0000-4000-8000-000000000001",
        "from_email": "Team@Example.org",
        "from_name": "Команда Sendpy",
        "subject": "Привет, {{ name }}!",
        "html": "<p>Dear {{ name }}, see <a href=\"https://example.org/x\">this</a>.</p>",
    }
    fields.update(overrides)
    return CompiledCampaign(CampaignContent(**fields))  # type: ignore[arg-type]


def test_rendered_message_is_valid_mime_with_both_parts() -> None:
    raw = campaign().render(7, "anna@example.com", {"name": "Анна"})
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
    message = parse(raw)
    assert message["To"] == "anna@example.com"
    assert message["Subject"] == "Привет, Анна!"
    assert message["From"].addresses[0].display_name == "Команда Sendpy"
    assert message["Message-ID"] == "<c0ffee00-0000-4000-8000-000000000001.7@example.org>"
    html = message.get_body(("html",))
    text = message.get_body(("plain",))
    assert html is not None and "Dear Анна" in html.get_content()
    assert text is not None and "Dear Анна" in text.get_content()
    assert "https://example.org/x" in text.get_content()


def test_message_id_is_deterministic_per_campaign_and_recipient() -> None:
    first, second = campaign(), campaign()
    assert first.message_id(3) == second.message_id(3)
    assert first.message_id(3) != first.message_id(4)


def test_merge_values_are_escaped_in_html_and_cannot_inject_headers() -> None:
    raw = campaign().render(1, "a@example.com", {"name": "<script>x</script>\r\nBcc: evil@example.com"})
    message = parse(raw)
    assert message["Bcc"] is None
    assert "evil@example.com" in message["Subject"]  # kept as text, on one line
    html = message.get_body(("html",))
    assert html is not None
    assert "<script>" not in html.get_content()
    assert "&lt;script&gt;" in html.get_content()


def test_long_lines_and_dots_survive_quoted_printable() -> None:
    body = "<p>" + "word " * 400 + "</p>\n.\n..leading dots"
    message = parse(campaign(html=body, subject="s").render(1, "a@example.com", {}))
    assert all(len(line) <= 998 for line in message.as_bytes().split(b"\n"))
    html = message.get_body(("html",))
    assert html is not None and html.get_content().replace("\r\n", "\n") == body


def test_sandbox_blocks_python_internals() -> None:
    probe = "{{ name.__class__.__mro__ }}{{ name.format.__globals__ }}"
    subject, _, _ = campaign(subject=probe).render_parts({"name": "x"})
    assert subject == ""  # sending: unsafe attributes are simply empty
    with pytest.raises(SecurityError):
        CompiledCampaign(campaign(subject=probe).content, strict=True).render_parts({"name": "x"})


def test_broken_template_names_the_part() -> None:
    with pytest.raises(TemplateError) as caught:
        campaign(html="<p>{{ name </p>")
    assert caught.value.part == "html"


def test_strict_mode_reports_undefined_fields_and_sending_mode_renders_them_empty() -> None:
    strict = CompiledCampaign(campaign(subject="{{ missing }}").content, strict=True)
    with pytest.raises(UndefinedError, match="missing"):
        strict.render_parts({"name": "x"})
    subject, _, _ = campaign(subject="Hi {{ missing }}!").render_parts({})
    assert subject == "Hi !"


def test_explicit_text_body_is_used_instead_of_derived() -> None:
    message = parse(campaign(text="Plain {{ name }}").render(1, "a@example.com", {"name": "Bo"}))
    text = message.get_body(("plain",))
    assert text is not None and text.get_content().strip() == "Plain Bo"


def test_html_to_text_keeps_structure() -> None:
    text = html_to_text("<h1>Title</h1><ul><li>one</li><li>two</li></ul>")
    assert "Title" in text and "one" in text and "two" in text
