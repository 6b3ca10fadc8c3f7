"""Long template lines folded once per campaign (shared/mail/folding.py): only where a line break
means the space it replaces, never where whitespace is kept as written, and in linear time."""

from __future__ import annotations

import time

import pytest
from jinja2.sandbox import SandboxedEnvironment

from shared.mail.folding import FOLD_OVER, WIDTH, fold_html, fold_text

ENV = SandboxedEnvironment(autoescape=True)
PARAGRAPH = "Here is this month's news from our shop, with offers and events. " * 28


def same_but_breaks(before: str, after: str) -> bool:
    """`after` is `before` with some spaces made line breaks, and nothing else."""
    return len(before) == len(after) and all(a == b or (a == " " and b == "\n") for a, b in zip(before, after,
                                                                                              strict=True))


def test_a_long_paragraph_is_folded_at_spaces_into_short_lines() -> None:
    html = f'<p>Dear {{{{ name }}}},</p><p>{PARAGRAPH}</p><p><a href="{{{{ unsubscribe_url }}}}">Unsubscribe</a></p>'
    folded = fold_html(ENV, html)
    assert folded != html and same_but_breaks(html, folded)
    assert max(len(line) for line in folded.split("\n")) <= WIDTH + 12
    assert "{{ name }}" in folded and 'href="{{ unsubscribe_url }}"' in folded
    text = fold_text(ENV, f"Dear {{{{ name }}}},\n\n{PARAGRAPH}\n\nShort line stays.\n")
    assert same_but_breaks(f"Dear {{{{ name }}}},\n\n{PARAGRAPH}\n\nShort line stays.\n", text)
    assert max(len(line) for line in text.split("\n")) <= WIDTH
    assert "\nShort line stays.\n" in text


def test_lines_short_enough_are_left_as_written() -> None:
    html = "<p>" + "word " * (FOLD_OVER // 5 - 2) + "</p>\n" + "<p>short</p>"
    assert fold_html(ENV, html) == html
    assert fold_text(ENV, html) == html


def test_tags_are_folded_between_attributes_never_inside_values() -> None:
    cell = '<td class="a b c" style="padding: 0 8px; color: #333" title=\'x y\' width=10>x</td>'
    html = "<table><tr>" + cell * 30 + "</tr></table>"
    folded = fold_html(ENV, html)
    assert folded != html and same_but_breaks(html, folded)
    for value in ('"a b c"', '"padding: 0 8px; color: #333"', "'x y'"):
        assert folded.count(value) == 30  # quoted values untouched


@pytest.mark.parametrize("keeps", [
    "<pre>{}</pre>", "<textarea>{}</textarea>", '<div style="white-space: pre-wrap">{}</div>',
    "<style>.x {{ white-space: pre-line }}</style><p class=x>{}</p>", "<svg><text>{}</text></svg>",
    '<link rel="stylesheet" href="https://example.org/x.css"><p>{}</p>',
])
def test_a_document_that_keeps_whitespace_is_not_folded(keeps: str) -> None:
    html = keeps.format(PARAGRAPH)
    assert fold_html(ENV, html) == html


def test_nowrap_is_no_reason_to_keep_lines() -> None:
    html = f'<p style="white-space:nowrap">x</p><p>{PARAGRAPH}</p>'
    assert fold_html(ENV, html) != html


@pytest.mark.parametrize("untouched", [
    "<!-- {} -->",
    "<!--[if mso]><table><tr><td>{}</td></tr></table><![endif]-->",
    "<![if !mso and (gte mso 9) and {}]>",  # Outlook's conditional markup
    "<?xml {} ?>",
    "<script>var s = '{}';</script>",
    "<style>p {{ font-family: '{}' }}</style>",
    "<title>{}</title>",
    'alt="{}"',
    "alt='{}'",
    "title= '{}'",
])
def test_comments_scripts_styles_and_values_are_never_folded(untouched: str) -> None:
    kept = untouched.format(PARAGRAPH.replace("'", ""))
    inner = f"<img src=x {kept} width=1>" if kept.startswith(("alt", "title")) else kept
    html = f"<p>{PARAGRAPH}</p>{inner}<p>{PARAGRAPH}</p>"
    folded = fold_html(ENV, html)
    assert folded != html and same_but_breaks(html, folded)
    assert kept in folded


@pytest.mark.parametrize("fold", [fold_html, fold_text])
def test_template_syntax_is_never_folded(fold) -> None:  # type: ignore[no-untyped-def]
    tags = ("{{ name|default('dear reader of ours') }} {% if city == 'New York City' %}NYC{% endif %} "
            "{# a note with spaces #} ")
    source = f"<p>{tags * 12}{PARAGRAPH}</p>"
    folded = fold(ENV, source)
    assert folded != source and same_but_breaks(source, folded)
    assert folded.count("{{ name|default('dear reader of ours') }}") == 12
    assert folded.count("{% if city == 'New York City' %}") == 12
    assert folded.count("{# a note with spaces #}") == 12


@pytest.mark.parametrize("fold", [fold_html, fold_text])
def test_a_fold_that_would_change_the_template_is_not_made(fold) -> None:  # type: ignore[no-untyped-def]
    # "}}" inside a string: the text after it looks literal but is still the string's.
    source = "<p>" + "{{'}}'~'a string with many spaces in it, folded it would change'}}" * 20 + "</p>"
    assert fold(ENV, source) == source


def test_a_word_longer_than_a_line_stays_whole() -> None:
    url = "https://example.org/" + "x" * 300
    text = fold_text(ENV, f"{PARAGRAPH}{url} {PARAGRAPH}")
    assert f"\n{url}\n" in text


@pytest.mark.parametrize("hostile", [
    "<a" * 500_000, "<a '" * 250_000, '<a b="' * 170_000, "<!--" * 250_000, "<script>" * 120_000,
    "{{" * 500_000, "{% " * 330_000, "< " * 500_000, "<a " * 330_000,
])
def test_hostile_markup_is_scanned_in_linear_time(hostile: str) -> None:
    # html.parser takes 17-68 s over 100 KB of some of these; a megabyte here takes well under a second.
    began = time.process_time()
    fold_html(ENV, hostile)
    fold_text(ENV, hostile)
    assert time.process_time() - began < 20  # generous: a shared, busy machine
