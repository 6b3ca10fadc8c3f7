from __future__ import annotations

from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from jinja2 import UndefinedError
from jinja2.exceptions import SecurityError

from shared.mail import compose, template_limits, text_part
from shared.mail.compose import (
    CampaignContent,
    CompiledCampaign,
    RenderFailed,
    RenderTooLarge,
    TemplateError,
    html_to_text,
    template_fields,
    text_template,
    with_unsubscribe_footer,
)
from shared.mail.template_limits import MAX_FILTER_CALLS, MAX_FILTER_WORK, MAX_RENDERED_CHARS, TemplateLimit


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


def test_long_lines_and_dots_survive() -> None:
    body = "<p>" + "word " * 400 + "</p>\n.\n..leading dots"
    message = parse(campaign(html=body, subject="s").render(1, "a@example.com", {}))
    assert all(len(line) <= 998 for line in message.as_bytes().split(b"\n"))
    html = message.get_body(("html",))
    assert html is not None
    sent = html.get_content().replace("\r\n", "\n")
    assert sent != body and sent.replace("\n", " ") == body.replace("\n", " ")  # folded where a space was
    assert sent.endswith("</p>\n.\n..leading dots")


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


@pytest.mark.parametrize(("source", "code", "what"), [
    ("{% for i in range(100000) %}{% for j in range(2500) %}{% endfor %}{% endfor %}", "template_construct",
     "loops ({% for %})"),
    ("{{ 'a' * 10**8 }}", "template_construct", "arithmetic"),
    ("{{ 9 ** 9 ** 9 }}", "template_construct", "arithmetic"),
    ("{{ -n }}", "template_construct", "arithmetic"),
    ("{{ name|center(100000000) }}", "template_filter", None),
    ("{{ name|replace('', 'xxxxxxxxxx') }}", "template_filter", None),
    ("{{ lipsum(100000) }}", "template_construct", "function calls"),
    ("{{ name.ljust(100000000) }}", "template_construct", "function calls"),
    ("{% set x = 'a' %}{{ x }}", "template_construct", "{% set %}"),
    ("{% macro m() %}{{ caller() }}{% endmacro %}", "template_construct", "macros"),
    ("{% include 'other' %}", "template_construct", "other templates"),
])
def test_templates_that_could_run_away_are_refused_where_written(source: str, code: str, what: str | None) -> None:
    with pytest.raises(TemplateError) as refused:
        CompiledCampaign(CampaignContent("c", "a@example.org", "", "Hi", source))
    assert refused.value.code == code
    if what is not None:
        assert refused.value.params["what_en"] == what and refused.value.params["what_ru"]
    with pytest.raises(TemplateError):
        template_fields("s", source)  # the draft and start checks refuse it too


@pytest.mark.parametrize("source", [
    "Hi {{ name }}", "{% if name %}Hi {{ name|title }}{% else %}Hello{% endif %}", "{{ name|default('друг') }}",
    "{{ first ~ ' ' ~ last }}", "{{ row['Эл. почта'] }}", "{% if n is defined and n != '' %}x{% endif %}",
    "{# a note #}text", "{{ name|truncate(10) }}", "{{ name|upper if vip == 'yes' else name }}",
])
def test_merge_field_templates_people_write_still_work(source: str) -> None:
    compiled = CompiledCampaign(CampaignContent("c", "a@example.org", "", "Hi", source))
    compiled.render(1, "r@example.com", {"name": "ольга", "first": "A", "last": "B", "row": {}, "n": "1", "vip": "no"})


def test_one_contacts_message_is_capped_however_long_its_fields() -> None:
    compiled = CompiledCampaign(CampaignContent("c", "a@example.org", "", "Hi", "<p>{{ note }}</p>" * 20))
    compiled.render(1, "r@example.com", {"note": "x" * 1000})
    with pytest.raises(RenderTooLarge):
        compiled.render(1, "r@example.com", {"note": "x" * (MAX_RENDERED_CHARS // 10)})
    slow_path = CompiledCampaign(CampaignContent("c", "a@example.org", "", "Hi",
                                                 "{% if note %}{{ note }}{% endif %}" * 20))
    with pytest.raises(RenderTooLarge):
        slow_path.render(1, "r@example.com", {"note": "x" * (MAX_RENDERED_CHARS // 10)})


def test_braces_written_as_entities_stay_literal_in_the_derived_text() -> None:
    # The HTML shows "{{ name }}" literally; its plain-text alternative must too, and must not
    # become a broken template (it used to fail only in the worker, after the start's checks).
    html = "<p>Type &#123;&#123; name &#x7D;&#125; or &lbrace;x&rcub; &#1234; to get {{ name }}</p>"
    compiled = CompiledCampaign(CampaignContent("c", "a@example.com", "", "s", html))
    _, text, rendered = compiled.render_parts({"name": "Ann"})
    assert text == "Type {{ name }} or {x} \u04d2 to get Ann\n"
    assert rendered == "<p>Type &#123;&#123; name &#x7D;&#125; or &lbrace;x&rcub; &#1234; to get Ann</p>"
    template_fields("s", html, text_template("<p>Hello &#123;&#123; oops</p>"))  # no TemplateError


@pytest.mark.parametrize(("html", "text"), [
    ("<p>{&#123; name }}</p>", "{{ name }}\n"),  # a plain brace, then an entity one: "{{{" once derived
    ("<p>&#123;{ name }}</p>", "{{ name }}\n"),
    ("<p>{&#125; and {{ name }}</p>", "{} and Ann\n"),
])
def test_a_plain_brace_beside_an_entity_brace_stays_literal(html: str, text: str) -> None:
    compiled = CompiledCampaign(CampaignContent("c", "a@example.com", "", "s", html))
    assert compiled.render_parts({"name": "Ann"})[1] == text


@pytest.mark.parametrize(("source", "code"), [
    ("{% if a %}" * 100 + "x" + "{% endif %}" * 100, "template_too_deep"),  # Python refuses the generated code
    ("{% if a %}" * 3000 + "x" + "{% endif %}" * 3000, "template_construct"),  # 6,000 tags: refused unparsed
    ("{{ " + "(" * 3000 + "a" + ")" * 3000 + " }}", "template_too_deep"),  # the parser runs out of recursion
])
def test_templates_nested_too_deeply_are_refused_by_name(source: str, code: str) -> None:
    with pytest.raises(TemplateError) as refused:
        template_fields("s", source)
    assert refused.value.code == code
    with pytest.raises(TemplateError) as refused:
        CompiledCampaign(CampaignContent("c", "a@example.com", "", "s", source))
    assert refused.value.code == code


@pytest.mark.parametrize(("source", "code"), [
    # Python's % on a string is formatting: a 100 MB string per recipient (found by attacking the stack).
    ('{{ 1 if ("%0100000000d" ~ email) is divisibleby 1 }}', "template_test"),
    ("{% if count is odd %}x{% endif %}", "template_test"),
    ("{{ " + " ~ ".join(["note"] * 500) + " }}", "template_construct"),  # 500 × a 10,000-character field
])
def test_constructs_that_multiply_their_input_are_refused(source: str, code: str) -> None:
    with pytest.raises(TemplateError) as refused:
        template_fields("s", source)
    assert refused.value.code == code


@pytest.mark.parametrize("source", [
    "{{ 1|round(10000000, 'floor') }}",  # 10**10**7: the API froze for 36 s compiling it
    "{{ 1|round(-10000000) }}",
])
def test_round_with_a_huge_precision_is_refused_where_written(source: str) -> None:
    with pytest.raises(TemplateError) as refused:
        CompiledCampaign(CampaignContent("c", "a@example.com", "", "s", source))
    assert refused.value.code == "template_construct"


def test_values_that_would_pass_the_limit_are_refused_before_they_are_built() -> None:
    nested = "'\\\\'"
    for _ in range(24):  # each str() of a list doubles the backslashes: 2**24 of them at the end
        nested = f"[{nested}]|string"
    for source in ("{{ " + nested + " }}",
                   "{{ [" + ",".join(["bio"] * 5000) + "] }}",  # 50 MB printed at once
                   "{{ [[bio, bio], [bio]] ~ '' }}"):  # nested and joined: built whole by str()
        with pytest.raises(TemplateError) as refused:  # lists print nothing a message needs: refused where written
            CompiledCampaign(CampaignContent("c", "a@example.com", "", "s", "<p>x</p>", source))
        assert refused.value.code == "template_construct"
        assert "список" in refused.value.params["what_ru"] or "слов и знаков" in refused.value.params["what_ru"]
    compiled = CompiledCampaign(CampaignContent("c", "a@example.com", "", "s", "<p>x</p>",
                                                "{{ 1.5|round(big|int, 'floor') }}"))
    with pytest.raises(TemplateLimit):  # from a field: caught while rendering
        compiled.render(1, "r@example.com", {"big": "10000000"})
    listed = CompiledCampaign(CampaignContent("c", "a@example.com", "", "s",
                                              "{% if city in ['Москва', 'Казань'] %}рядом{% endif %}"))
    assert "рядом" in listed.render_parts({"city": "Казань"})[2]  # comparisons keep their lists
    ordinary = CompiledCampaign(CampaignContent("c", "a@example.com", "", "s", "{{ 3.14159|round(2) }} {{ bio|upper }}"))
    assert "3.14 ХЕЛЛО" in ordinary.render_parts({"bio": "хелло"})[2]


def test_a_template_with_thousands_of_allowed_tags_is_refused_unparsed() -> None:
    # 20,000 of these with a 10,000-character field took a preview 85 s and held another
    # user's mail 207 s; compiling them alone took 5 s.
    source = "{% if bio|title %}{% endif %}" * 20_000
    with pytest.raises(TemplateError) as refused:
        template_fields("s", source)
    assert refused.value.code == "template_construct"
    assert "40,000 tags" in refused.value.params["what_en"]
    assert "40 000 тегов" in refused.value.params["what_ru"]


def test_more_filter_calls_than_a_message_may_afford_are_refused_where_written() -> None:
    calls = MAX_FILTER_CALLS + 1
    with pytest.raises(TemplateError) as refused:
        CompiledCampaign(CampaignContent("c", "a@example.com", "", "s", "{% if bio is lower %}{% endif %}"
                                         + "{{ bio|title }}" * (calls - 1)))
    assert refused.value.code == "template_construct"
    assert f"{calls} filters and tests" in refused.value.params["what_en"]
    allowed = "{{ bio|title }}" * MAX_FILTER_CALLS
    compiled = CompiledCampaign(CampaignContent("c", "a@example.com", "", "s", allowed, allowed))
    assert compiled.render_parts({"bio": "б" * 10_000})[2].startswith("Б")  # the longest field, at the cap


def test_filters_that_would_handle_too_much_of_a_contact_fail_that_message_with_the_reason() -> None:
    # Joined fields pass the longest single field: the filter work is what is bounded.
    joined = "(" + " ~ ".join(["bio"] * 20) + ")"
    compiled = CompiledCampaign(CampaignContent("c", "a@example.com", "", "s", ("{{ " + joined + "|title }}") * 5))
    with pytest.raises(TemplateLimit) as stopped:
        compiled.render(1, "r@example.com", {"bio": "иван петров " * 800})
    assert f"{MAX_FILTER_WORK:,} characters" in str(stopped.value)
    assert "фильтрам шаблона" in stopped.value.russian
    assert compiled.render(2, "r@example.com", {"bio": "иван"})  # short fields: the same template is fine


def test_tests_are_charged_like_filters() -> None:
    joined = "(" + " ~ ".join(["bio"] * 20) + ")"
    compiled = CompiledCampaign(CampaignContent("c", "a@example.com", "", "s",
                                                ("{% if " + joined + " is lower %}x{% endif %}") * 5))
    with pytest.raises(TemplateLimit):
        compiled.render(1, "r@example.com", {"bio": "a" * 9_000})


def test_a_message_that_takes_longer_than_its_time_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    compiled = CompiledCampaign(CampaignContent("c", "a@example.com", "", "s", "{% if a %}{{ a }}{% endif %}"))
    assert compiled.render(1, "r@example.com", {"a": "x"})
    monkeypatch.setattr(template_limits, "RENDER_SECONDS", -1.0)  # the clock ran out before it began
    monkeypatch.setattr(compose, "RENDER_SECONDS", -1.0)
    with pytest.raises(TemplateLimit) as stopped:
        compiled.render(1, "r@example.com", {"a": "x"})
    assert "готовилось дольше" in stopped.value.russian


@pytest.mark.parametrize(("subject", "html", "words", "other"), [
    ("Новости", "<p>Привет, {{ name }}</p>", "Отписаться от рассылки", "Unsubscribe"),
    ("News", "<p>Привет</p>", "Отписаться от рассылки", "Unsubscribe"),
    ("News", "<p>Hello {{ name }}</p>", "Unsubscribe", "Отписаться"),
])
def test_the_unsubscribe_footer_speaks_the_messages_language(subject: str, html: str, words: str, other: str) -> None:
    with_footer, text = with_unsubscribe_footer(html, "Hi", subject)
    assert text is not None
    for part in (with_footer, text, text_template(with_footer)):
        assert words in part and "{{ unsubscribe_url }}" in part and other not in part


@pytest.mark.parametrize(("source", "what"), [
    ("{{ [" + ",".join(["email"] * 330_000) + "] }}", "10 000"),  # one 2 MB tag: 45 s and 2.7 GB to compile
    ("{{ " + "9" * 5000 + " }}", "4 300"),  # past Python's digits limit: was a 500
    ("{{ email[" + "1" * 5000 + "] }}", "4 300"),
])
def test_oversized_expressions_are_refused_before_they_are_parsed(source: str, what: str) -> None:
    with pytest.raises(TemplateError) as refused:
        template_fields(source)
    assert refused.value.code == "template_construct"
    assert what in refused.value.params["what_ru"]


@pytest.mark.parametrize("source", ["{% with a = 1 %}{% endwith %}", "{% filter upper %}x{% endfilter %}",
                                    "{% autoescape false %}x{% endautoescape %}"])
def test_refused_constructs_are_named_in_words_not_class_names(source: str) -> None:
    with pytest.raises(TemplateError) as refused:
        template_fields(source)
    assert refused.value.params["what_ru"].startswith("{%"), refused.value.params


def test_a_wide_table_does_not_blow_up_the_derived_text() -> None:
    # A 100,000-character cell over 1,000 rows: the text layout padded every row to it (100 M characters).
    html = ("<p>{{ email }}</p><table><tr><td>" + "x" * 100_000 + "</td></tr>"
            + "<tr><td>y</td></tr>" * 1000 + "</table>")
    text = text_template(html)
    assert len(text) < 2 * len(html)
    # The cell's text behind a tag (measured up to its first tag, it read as empty: 30 M characters,
    # 30 s folding it); and a table many columns wide, each cell short of the widest alone.
    behind_a_tag = ("<table><tr><td><b>" + "A" * 100_000 + "</b></td></tr>" + "<tr><td>b</td></tr>" * 400
                    + "</table>")
    wide = ("<table><tr>" + "<td>" + "w" * 2000 + "</td>" * 100 + "</tr>"
            + ("<tr>" + "<td>y</td>" * 100 + "</tr>") * 89 + "</table>")  # 18 M characters before
    for table in (behind_a_tag, wide):
        assert text_part._without_wide_tables(table) != table  # the estimate sees it coming
        assert len(text_template(table)) < 2 * len(table)


def test_a_table_padded_past_the_estimate_is_laid_out_as_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    # Whatever the estimate misses, the text part is not left padded to millions of characters.
    monkeypatch.setattr(text_part, "_without_wide_tables", lambda html: html)
    html = "<table><tr><td>" + "x" * 100_000 + "</td></tr>" + "<tr><td>y</td></tr>" * 1000 + "</table>"
    assert len(html_to_text(html)) < 2 * len(html)
    small = "<table><tr><th>Товар</th><th>Цена</th></tr><tr><td>Чай</td><td>100 ₽</td></tr></table>"
    assert "Чай    100 ₽" in html_to_text(small)  # ordinary tables keep their columns


def test_a_part_over_the_limit_only_for_a_long_first_address_is_not_refused_for_everyone() -> None:
    # 400 addresses in 960,000 characters: over the limit for a 196-character address, not for the
    # others; the trial was told it would fail "for every recipient".
    html = "<p>" + "x" * 960_000 + "</p>" + "{{ email }}" * 400
    compiled = CompiledCampaign(CampaignContent("c", "a@example.com", "", "s", html))
    long_address = "a" * 180 + "@example.com"
    compiled.trial(compiled.merge_fields(1, long_address, {}))
    compiled.trial(compiled.merge_fields(1, long_address, {"note": "n"}))
    over = CompiledCampaign(CampaignContent("c", "a@example.com", "", "s", html + "x" * 40_000))
    with pytest.raises(RenderFailed):  # too large with the shortest address too: refused
        over.trial(over.merge_fields(1, "a@example.com", {}))


def test_a_message_too_large_for_one_contact_is_explained_in_russian_once() -> None:
    from shared.mail.template_reasons import failure_in_russian

    compiled = CompiledCampaign(CampaignContent("c", "a@example.com", "", "s", "{{ a }}{{ a }}" * 60))
    with pytest.raises(RenderTooLarge) as refused:
        compiled.render(1, "r@example.com", {"a": "x" * 10_000})
    said = failure_in_russian(refused.value)
    assert said.startswith("текстовая часть письма для этого контакта") and "1 000 000 символов" in said and "Jinja" not in said
