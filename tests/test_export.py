"""CSV export: cells that a spreadsheet would run as formulas are neutralised."""

from __future__ import annotations


def test_exported_cells_cannot_run_as_formulas() -> None:
    from shared.export import csv_lines, safe_cell

    assert [safe_cell(v) for v in ("=1+1", "+7 999", "-x", "@SUM(A1)", "ok", None, 5)] == [
        "'=1+1", "'+7 999", "'-x", "'@SUM(A1)", "ok", "", "5"]
    text = "".join(csv_lines([["=HYPERLINK(\"http://evil\")", "a,b"]], header=["x", "y"]))
    assert text == "x,y\r\n\"'=HYPERLINK(\"\"http://evil\"\")\",\"a,b\"\r\n"


def test_cells_a_spreadsheet_would_change_are_written_as_text_formulas() -> None:
    from shared.export import csv_lines, text_cell

    # Phone numbers, leading zeros, dates, times, exponents: Excel would make numbers or dates of them.
    for value in ("+79161234567", "0012345", "8 (916) 123-45-67", "01.02", "2026-11-30", "12:30", "1e5", "5%"):
        assert text_cell(value) == f'="{value}"', value
    # Formula injection (OWASP's = + - @, tab, CR): the formula is a text constant, quotes doubled.
    assert text_cell('=HYPERLINK("http://evil","x")') == '="=HYPERLINK(""http://evil"",""x"")"'
    assert [text_cell(v) for v in ("-2+3", "@SUM(A1)", "\t=1", "+")] == ['="-2+3"', '="@SUM(A1)"', '="\t=1"', '="+"']
    # Text a spreadsheet keeps as it is stays as it is; values Sendpy writes itself stay values.
    assert [text_cell(v) for v in ("Иван", "250 2.0.0 Ok", "a=b", "", None, 7)] == ["Иван", "250 2.0.0 Ok", "a=b", "", "", 7]
    # Longer than an Excel formula's text (255) or across lines: OWASP's apostrophe for formulas.
    assert text_cell("=" + "x" * 300) == "'=" + "x" * 300
    assert text_cell("=1\n+2") == "'=1\n+2"
    assert text_cell("7" * 300) == "7" * 300  # no formula possible and nothing to neutralise
    text = "".join(csv_lines([["+7 916", "Анна"]], header=["Телефон", "=1"], delimiter=";", cell=text_cell))
    assert text == 'Телефон;"=""=1"""\r\n"=""+7 916""";Анна\r\n'


def test_export_times_are_in_the_readers_zone_and_say_which() -> None:
    import datetime as dt

    import pytest

    from shared.errors import InputError
    from shared.export import recipient_header, recipient_row, time_zone, zone_label

    moscow = time_zone("Europe/Moscow")
    assert recipient_header("ru", ["Город"], moscow)[5:] == ["Обновлено (Europe/Moscow, UTC+3)", "Город"]
    assert recipient_header("en", [])[5] == "Updated (UTC)"
    assert zone_label(time_zone("Asia/Kolkata")) == "Asia/Kolkata, UTC+5:30"
    winter = dt.datetime(2026, 1, 15, tzinfo=dt.UTC)
    assert zone_label(time_zone("America/New_York"), winter) == "America/New_York, UTC-5"
    assert time_zone(None) is dt.UTC and zone_label(time_zone("UTC")) == "UTC"
    row = {"position": 1, "email": "a@example.com", "status": "sent", "reply": "250 ok", "attempts": 1,
           "updated_at": dt.datetime(2026, 11, 30, 11, 5, 7, 123, tzinfo=dt.UTC), "fields": {}}
    assert str(recipient_row(row, "ru", [], moscow)[5]) == "2026-11-30 14:05:07"
    for wrong in ("Mars/Olympus", "../etc/passwd", "localtime", "x" * 1000):
        with pytest.raises(InputError) as refused:
            time_zone(wrong)
        assert refused.value.field == "tz" and "Europe/Moscow" in refused.value.message("ru")
