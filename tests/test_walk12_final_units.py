"""What the final Russian keyboard walk of issue 12 found outside the pages: the plain-text copy of a
letter keeps an image's description; the problem rows download is named after the file in the
reader's language; the export's header names the zone as the screens do."""

from __future__ import annotations

import datetime as dt
from urllib.parse import unquote

from functions.uploads_api import problems_disposition
from shared.export import recipient_header, time_zone
from shared.mail.compose import html_to_text, text_template


def test_the_text_part_keeps_an_images_description() -> None:
    html = '<p>Уважаемые родители!</p><p><img src="https://school.example/gerb.png" alt="Герб школы"></p>'
    assert "[Герб школы]" in html_to_text(html)
    # A picture without a description adds nothing, and a description is text, not template syntax.
    assert html_to_text('<p>x</p><img src="https://a.example/1.png" alt="">').strip() == "x"
    assert text_template('<img src="https://a.example/1.png" alt="&#123;&#123; x }}">').startswith("[{{ '{' }}")


def test_the_problem_rows_are_named_after_the_file_in_the_readers_language() -> None:
    russian = problems_disposition("Родители 5-Б.csv", "ru")
    name = unquote(russian.split("filename*=UTF-8''")[1])
    assert name == "проблемные-строки-Родители 5-Б.csv"
    assert 'filename="problem-rows-5-.csv"' in russian  # ASCII only, for a client that reads nothing else
    assert unquote(problems_disposition("school.csv", "en").split("''")[1]) == "problem-rows-school.csv"
    # A name that is no file name: quotes, separators and line breaks never reach the header.
    odd = problems_disposition('a"b\r\n/..\\x.txt', "ru")
    assert "\r" not in odd and "\n" not in odd and odd.count('"') == 2
    assert unquote(odd.split("''")[1]) == "проблемные-строки-a_b_.._x.csv"
    assert 'filename="problem-rows-contacts.csv"' in problems_disposition("", "ru")


def test_the_exports_zone_is_named_as_the_screens_name_it() -> None:
    moscow = time_zone("Europe/Moscow")
    header = recipient_header("ru", [], moscow, "Москва, стандартное время (UTC+3)")
    assert header[-1] == "Обновлено (Москва, стандартное время (UTC+3))"
    # A name of another offset, or one that is no zone's name, is not taken: the zone's own label then.
    for wrong in ("Самара (UTC+4)", "Москва (UTC+3:30)", '=HYPERLINK("x") UTC+3', "x" * 101 + " UTC+3"):
        assert recipient_header("ru", [], moscow, wrong)[-1] == "Обновлено (Europe/Moscow, UTC+3)", wrong
    assert recipient_header("en", [], dt.UTC, "Coordinated Universal Time (UTC)")[-1] == \
        "Updated (Coordinated Universal Time (UTC))"
