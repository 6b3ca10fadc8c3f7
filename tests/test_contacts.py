"""CSV detection and streaming on the files people really export (pure logic, no services)."""

from __future__ import annotations

import codecs

import pytest

from shared import contacts, contacts_records
from shared.addresses import check_address
from shared.contacts import ContactRow, Report, detect, detect_encoding, inspect_rows, iter_contacts
from shared.errors import InputError

RU_ROWS = "Почта;Имя;Город\r\nivan@example.ru;Иван;Москва\r\nOLGA@example.ru;Ольга;Казань\r\nolga@example.ru;Оля;Казань\r\nне-адрес;Пётр;Омск\r\n"


def chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def contacts_of(data: bytes, **overrides: object) -> list:
    found = detect(data[:65536], complete=True, overrides=overrides or None)
    return list(iter_contacts(chunks(data, 7), found.dialect, found.columns))


@pytest.mark.parametrize(
    ("data", "encoding", "delimiter"),
    [
        (RU_ROWS.encode("cp1251"), "cp1251", ";"),
        (codecs.BOM_UTF8 + RU_ROWS.encode("utf-8"), "utf-8-sig", ";"),
        (RU_ROWS.encode("utf-8"), "utf-8", ";"),
        (RU_ROWS.replace(";", "\t").encode("utf-16"), "utf-16", "\t"),
        (RU_ROWS.replace(";", "|").encode("utf-8"), "utf-8", "|"),
        (RU_ROWS.replace(";", ",").encode("utf-8"), "utf-8", ","),
    ],
)
def test_detects_encoding_delimiter_header_and_email_column(data: bytes, encoding: str, delimiter: str) -> None:
    found = detect(data, complete=True)
    assert found.dialect.encoding == encoding
    assert found.dialect.delimiter == delimiter
    assert found.dialect.has_header is True
    assert found.dialect.email_column == 0
    assert [c.label for c in found.columns] == ["Почта", "Имя", "Город"]
    assert [c.field for c in found.columns] == ["почта", "имя", "город"]
    rows = list(iter_contacts(chunks(data, 5), found.dialect, found.columns))
    assert [r.email for r in rows] == ["ivan@example.ru", "OLGA@example.ru", "olga@example.ru", "не-адрес"]
    assert rows[0].fields == {"имя": "Иван", "город": "Москва"}
    assert rows[0].row == 2  # as a spreadsheet numbers it


def test_single_column_without_header_and_email_not_first() -> None:
    plain = detect(b"a@example.com\nb@example.com\n", complete=True)
    assert (plain.dialect.has_header, plain.dialect.email_column) == (False, 0)
    second = detect(b"Name,Email Address\nAnn,ann@example.com\nBo,bo@example.com\n", complete=True)
    assert (second.dialect.has_header, second.dialect.email_column) == (True, 1)
    assert second.columns[1].field == "email_address"
    guessed = detect(b"Ann,ann@example.com\nBo,bo@example.com\n", complete=True)
    assert (guessed.dialect.has_header, guessed.dialect.email_column) == (False, 1)


def test_user_corrections_win() -> None:
    found = detect(b"x,y\na@example.com,b@example.com\n", complete=True,
                   overrides={"email_column": 1, "has_header": False})
    assert found.dialect.email_column == 1 and found.dialect.has_header is False


def test_quoted_fields_with_delimiters_and_newlines_stream_correctly() -> None:
    data = b'email,note\r\na@example.com,"one, two\r\nthree"\r\nb@example.com,"say ""hi"""\r\n'
    rows = contacts_of(data)
    assert [(r.email, r.fields["note"]) for r in rows] == [("a@example.com", "one, two\r\nthree"),
                                                            ("b@example.com", 'say "hi"')]


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "empty_file"),
        (b"\r\n\r\n  \r\n", "empty_file"),
        (b"email;name\r\n", "no_rows"),
        (b"PK\x03\x04\x14\x00\x06\x00binary", "excel_file"),
        (b"%PDF-1.4 \x00\x01\x02", "not_text"),
        (b"name,city\nAnn,Paris\nBo,Rome\n", "no_email_column"),
        (bytes(range(256)) * 10, "not_text"),
    ],
)
def test_bad_files_get_clear_errors(data: bytes, code: str) -> None:
    with pytest.raises(InputError) as caught:
        detect(data, complete=True)
    assert caught.value.code == code


def test_wrong_encoding_chosen_by_the_user_is_reported() -> None:
    with pytest.raises(InputError) as caught:
        contacts_of("email\nпочта@пример.рф\n".encode("cp1251"), encoding="utf-8")
    assert caught.value.code == "wrong_encoding"


@pytest.mark.parametrize("complete", [True, False])
def test_utf16_chosen_for_a_file_without_its_mark_is_a_wrong_encoding(complete: bool) -> None:
    # A cp1251 file read as UTF-16 has no byte-order mark: Python raises a UnicodeError that is not
    # a UnicodeDecodeError (the walk got a 500 for «Юникод, 16 бит» + «Применить»).
    data = "ФИО;Эл. почта\r\nИванов;ivan@example.ru\r\n".encode("cp1251")
    with pytest.raises(InputError) as caught:
        detect(data, complete=complete, overrides={"encoding": "utf-16"})
    assert caught.value.code == "wrong_encoding"


def test_inspection_counts_valid_invalid_duplicates_and_suppressed() -> None:
    data = RU_ROWS.encode("cp1251") + "skip@example.ru;X;Y\r\n".encode("cp1251")
    found = detect(data, complete=True)
    report = inspect_rows(iter_contacts([data], found.dialect, found.columns),
                          is_suppressed=lambda email: email == "skip@example.ru")
    assert (report.rows, report.valid, report.invalid, report.duplicates, report.suppressed) == (5, 2, 1, 1, 1)
    assert report.invalid_examples[0]["row"] == 5 and report.invalid_examples[0]["value"] == "не-адрес"


def test_idn_addresses_are_valid() -> None:
    data = "email\nuser@пример.рф\n".encode()
    found = detect(data, complete=True)
    report = inspect_rows(iter_contacts([data], found.dialect, found.columns), is_suppressed=lambda e: False)
    assert report.valid == 1


def test_nul_bytes_in_a_file_are_dropped_not_stored() -> None:
    # Postgres text cannot hold NUL: a file with them used to fail the fan-out's COPY again and again.
    # Detection refuses a sample with NUL as binary; past the 64 KB sample only the full read sees them.
    clean = b"email,name\nzed@example.com,Zed\n"
    data = clean + b"ann@example.com,An\x00n\nb\x00ob@example.com,Bob\n"
    found = detect(clean, complete=False)
    rows = list(iter_contacts([data], found.dialect, found.columns))
    assert [(r.email, r.fields) for r in rows] == [("zed@example.com", {"name": "Zed"}),
                                                    ("ann@example.com", {"name": "Ann"}),
                                                    ("bob@example.com", {"name": "Bob"})]


@pytest.mark.parametrize("char", ["é", "Ж", "€", "𝄞"])  # 2-, 3-, 3- and 4-byte UTF-8
def test_utf8_is_recognised_wherever_the_sample_cuts_a_character(char: str) -> None:
    # The sample is the file's first 64 KiB: it may end inside a character. Cutting three bytes
    # off (as before) split characters that had ended whole, and such files were "not text".
    body = ("email;name\n" + "".join(f"u{n}@example.com;{char * 3}\n" for n in range(50))).encode()
    for cut in range(len(body) - 12, len(body)):
        assert detect_encoding(body[:cut], complete=False) == "utf-8", (char, cut)


# Realistic Russian exports larger than the 64 KiB sample. "№" and "—" are 3 bytes in UTF-8, the
# Cyrillic letters 2: with every padding below, some character straddles the sample's end.
RU_HEADER = "ФИО;Телефон;Эл. почта;Город\r\n"
RU_CITIES = ("Москва", "Санкт-Петербург", "Нижний Новгород", "Ростов-на-Дону", "Екатеринбург")


def russian_rows(count: int, pad: str = "") -> list[tuple[str, str, str, str]]:
    return [(f"Иванов{pad} Пётр Сергеевич №{n}", f"+7 900 {n:07d}", f"petrov{n}@example.ru",
             f"{RU_CITIES[n % len(RU_CITIES)]} — офис") for n in range(count)]


def russian_csv(rows: list[tuple[str, str, str, str]]) -> str:
    return RU_HEADER + "".join(";".join(row) + "\r\n" for row in rows)


def split_at_sample_end(sample: bytes) -> tuple[int, int] | None:
    """(length of the UTF-8 character cut by the sample's end, how many of its bytes are in)."""
    for back in range(1, 4):
        lead = sample[-back]
        if lead >= 0xC0:
            length = 2 if lead < 0xE0 else 3 if lead < 0xF0 else 4
            return (length, back) if back < length else None
    return None


def test_russian_utf8_files_larger_than_the_sample_are_utf8_wherever_the_sample_ends() -> None:
    splits = set()
    for pad in range(len(russian_csv(russian_rows(1)).encode())):  # shifts the rows past every byte of the cut
        rows = russian_rows(1000)
        rows[0] = ("Иванов" + "." * pad, *rows[0][1:])
        data = russian_csv(rows).encode("utf-8")
        assert len(data) > 65536
        sample = data[:65536]
        split = split_at_sample_end(sample)
        if split:
            splits.add(split)
        found = detect(sample, complete=False)
        assert found.dialect.encoding == "utf-8", (pad, split)
        assert (found.dialect.delimiter, found.dialect.email_column) == (";", 2)
        assert [c.label for c in found.columns] == ["ФИО", "Телефон", "Эл. почта", "Город"]
        assert found.preview[1] == list(rows[1])
        contacts = list(iter_contacts(chunks(data, 8192), found.dialect, found.columns))
        assert [(c.fields["фио"], c.email, c.fields["город"]) for c in contacts] == [
            (r[0], r[2], r[3]) for r in rows]
    assert splits == {(2, 1), (3, 1), (3, 2)}  # every way the cut can fall inside a character of the file


def encoding_or_refusal(sample: bytes) -> str:
    try:
        return detect_encoding(sample, complete=False)
    except InputError as error:
        return error.code


def test_windows_1251_and_broken_utf8_are_not_taken_for_utf8() -> None:
    rows = russian_rows(1000)
    text = russian_csv(rows).replace("№", "N")  # not in cp1251
    cp1251 = text.encode("cp1251")
    found = detect(cp1251[:65536], complete=False)
    assert found.dialect.encoding == "cp1251"
    contacts = list(iter_contacts(chunks(cp1251, 8192), found.dialect, found.columns))
    assert contacts[-1].fields["фио"] == "Иванов Пётр Сергеевич N999"

    # One name saved by another program in cp1251, in the middle of an otherwise UTF-8 file.
    utf8 = text.encode("utf-8")
    broken = utf8[:30000] + "Сидоров".encode("cp1251") + utf8[30000:]
    assert encoding_or_refusal(broken[:65536]) != "utf-8"
    # Only a character cut by the sample's end is forgiven, not invalid bytes just before it.
    whole = text[:40000].encode("utf-8")[:65000].decode("utf-8", errors="ignore").encode("utf-8")
    assert encoding_or_refusal(whole + "Ж".encode()[:1]) == "utf-8"
    for tail in (b"\xff", b"\xff;", b"\xd0;", b"\xe2\x84;", b"\xd0\xd0", "Ж".encode() + b"\x80"):
        assert encoding_or_refusal(whole + tail) != "utf-8", tail


def report_of(data: bytes, chunk: int = 7) -> tuple[list[ContactRow], Report]:
    found = detect(data[:65536], complete=len(data) <= 65536)
    contacts = list(iter_contacts(chunks(data, chunk), found.dialect, found.columns))
    return contacts, inspect_rows(iter(contacts), is_suppressed=lambda email: False)


def assert_unclosed_quote_reported(example: dict, row: int, line: int, value: str) -> None:
    assert (example["row"], example["value"]) == (row, value)
    assert f"строка {line}: незакрытая кавычка" in example["reason"]
    assert f"line {line}: unclosed quote" in example["reason"]


# Excel and hand-edited exports do contain a quote that is never closed. The CSV rules make the
# rest of the file (or everything up to the next quote) one field: those contacts were gone without a word.
@pytest.mark.parametrize("chunk", [7, 4096])
@pytest.mark.parametrize(
    "later",
    [
        "",  # no other quote: the field ran to the end of the file
        'sidorov@example.com,"Sidorov, Petr"\n',  # the next quote closed it, far from where it opened
    ],
)
def test_an_unclosed_quote_is_one_problem_row_and_every_other_contact_is_read(later: str, chunk: int) -> None:
    following = "".join(f"user{n}@example.com,User {n}\n" for n in range(30))
    text = 'email,name\nann@example.com,Ann\n"Ivan Petrov,ivan@example.com\n' + following + later
    contacts, report = report_of(text.encode(), chunk)
    emails = [c.email for c in contacts]
    assert emails[0] == "ann@example.com"
    assert emails[2:32] == [f"user{n}@example.com" for n in range(30)]
    assert [c.row for c in contacts[:3]] == [2, 3, 4]
    assert report.rows == len(contacts) == 32 + bool(later)
    assert (report.valid, report.invalid) == (31 + bool(later), 1)
    assert_unclosed_quote_reported(report.invalid_examples[0], row=3, line=3, value='"Ivan Petrov,ivan@example.com')
    if later:
        assert contacts[-1].fields == {"name": "Sidorov, Petr"}
    # A campaign made from the file skips that row rather than guessing what it meant.
    assert check_address(contacts[1].email).normalized is None


def test_an_unclosed_quote_in_a_large_file_is_not_a_refusal_of_the_file() -> None:
    # Swallowing more than the field limit used to refuse the whole file ("field larger than field limit").
    rows = russian_rows(5000)
    text = russian_csv(rows).replace("Иванов Пётр Сергеевич №7;", '"Иванов Пётр Сергеевич №7;', 1)
    data = text.encode("utf-8")
    contacts, report = report_of(data, 65536)
    assert report.rows == 5000 and (report.valid, report.invalid) == (4999, 1)
    assert_unclosed_quote_reported(report.invalid_examples[0], row=9, line=9,
                                   value='"Иванов Пётр Сергеевич №7;+7 900 0000007;petrov7@example.ru;Нижний Новгород — офис')
    assert contacts[-1].email == "petrov4999@example.ru"


def test_problem_rows_count_records_and_the_reason_names_the_line_of_the_file() -> None:
    # A real multi-line address above: the spreadsheet row and the text line differ from there on.
    text = ('Эл. почта;ФИО;Адрес\r\n'
            'anna@example.ru;Анна;"ул. Ленина, 1\r\nкв. 5\r\nМосква"\r\n'
            'oleg@example.ru;"Олег;Москва\r\n'
            'olga@example.ru;Ольга;Казань\r\n')
    contacts, report = report_of(text.encode("cp1251"))
    assert [c.email for c in contacts] == ["anna@example.ru", 'oleg@example.ru;"Олег;Москва', "olga@example.ru"]
    assert contacts[0].fields["адрес"] == "ул. Ленина, 1\r\nкв. 5\r\nМосква"
    assert_unclosed_quote_reported(report.invalid_examples[0], row=3, line=5, value='oleg@example.ru;"Олег;Москва')
    assert (report.rows, report.valid, report.invalid) == (3, 2, 1)


def test_legitimate_multiline_quoted_fields_are_read_whole() -> None:
    address = "ул. Тверская, д. 7, кв. 12\nМосква\n125009\nРоссия"
    note = 'Звонить после 18:00.\n\nПросил "не присылать" рекламу;\nпочта: old@example.ru'
    rows = "".join(f'u{n}@example.ru;Имя {n};"{address}";"{note.replace(chr(34), chr(34) * 2)}"\n' for n in range(50))
    data = ("Почта;Имя;Адрес;Заметка\n" + rows).encode("utf-8")
    found = detect(data, complete=True)
    assert found.preview[0][2:] == [address, note]
    contacts, report = report_of(data)
    assert [(c.fields["адрес"], c.fields["заметка"]) for c in contacts] == [(address, note)] * 50
    assert (report.rows, report.valid, report.invalid, report.invalid_examples) == (50, 50, 0, [])


def test_an_unclosed_quote_near_the_top_does_not_garble_detection() -> None:
    following = "".join(f"user{n}@example.com;Пользователь {n}\n" for n in range(20))
    found = detect(('"ivan@example.com;Иван\n' + following).encode("utf-8"), complete=True)
    assert (found.dialect.delimiter, found.dialect.email_column) == (";", 0)
    assert found.preview[:2] == [["user0@example.com", "Пользователь 0"], ["user1@example.com", "Пользователь 1"]]


def test_a_quote_opened_on_every_line_makes_every_line_a_problem_row() -> None:
    # Each line's quote closes the previous line's field: read together, the lines look like fewer rows.
    text = 'email,name\n' + "".join(f'"user{n}@example.com,User {n}\n' for n in range(5)) + "last@example.com,Last\n"
    contacts, report = report_of(text.encode())
    assert [c.unclosed_quote_line for c in contacts] == [2, 3, 4, 5, 6, None]
    assert contacts[-1].email == "last@example.com"
    assert (report.rows, report.valid, report.invalid) == (6, 1, 5)


def test_unclosed_quotes_are_shown_even_after_many_bad_addresses() -> None:
    text = "email\n" + "".join(f"bad{n}\n" for n in range(25)) + '"ok@example.com\nlast@example.com\n'
    _, report = report_of(text.encode())
    assert (report.rows, report.valid, report.invalid) == (27, 1, 26)
    assert len(report.invalid_examples) == 21
    assert_unclosed_quote_reported(report.invalid_examples[-1], row=27, line=27, value='"ok@example.com')


@pytest.mark.parametrize("separator", ["\x0c", "\x0b", "\u2028", "\u2029", "\x85", "\x1e"])
def test_separators_inside_an_unquoted_cell_stay_in_the_cell(separator: str) -> None:
    # str.splitlines ends lines at these; the csv module does not: counting and the row preview disagreed.
    data = f"email,note\nann@example.com,one{separator}two\nbob@example.com,three\n".encode()
    found = detect(data, complete=True)
    for size in (1, 7, len(data)):
        rows = list(iter_contacts(chunks(data, size), found.dialect, found.columns))
        assert [(r.row, r.email, r.fields["note"]) for r in rows] == [
            (2, "ann@example.com", f"one{separator}two"), (3, "bob@example.com", "three")]
    assert found.preview[0] == ["ann@example.com", f"one{separator}two"]


def test_one_overlong_cell_is_one_problem_row_not_a_refused_file() -> None:
    # A 150,000-character cell made the whole 20,001-row file `bad_csv`.
    data = b"email,note\n" + b"".join(b"p%d@example.com,ok\n" % n for n in range(50))
    data += b"huge@example.com," + b"x" * 150_000 + b"\n" + b"last@example.com,fine\n"
    rows = contacts_of(data)
    assert [r.email for r in rows][:2] == ["p0@example.com", "p1@example.com"]
    assert rows[-1].email == "last@example.com" and rows[-1].row == 53
    problem = rows[-2]
    assert problem.row == 52 and check_address(problem.email).normalized is None


def test_runaway_quotes_on_every_line_are_read_in_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    # Each line's field would run on over the next fifty lines, or up to a line of its own, and the
    # lines were read again from each line in turn: 256 KB of them cost 0.9 s (and, with near-
    # addresses checked each time, 3.6 s) of CPU within the request. Now each line is handed to the
    # csv reader and checked for an address a bounded number of times.
    handed, checked = [0], [0]
    next_line, looks_like_email = contacts_records._Lines.__next__, contacts._looks_like_email

    def counting_next(self: contacts_records._Lines) -> str:
        handed[0] += 1
        return next_line(self)

    def counting_check(value: str) -> bool:
        checked[0] += 1
        return looks_like_email(value)

    monkeypatch.setattr(contacts_records._Lines, "__next__", counting_next)
    monkeypatch.setattr(contacts, "_looks_like_email", counting_check)
    left_open = "email,name\nann@example.com,Ann\n" + 'x","\n' * 2000 + "bob@example.com,Bob\n"
    near = ("a" * 60 + '@@x.com","\n') * 48 + 'ok@example.com,"\n' + "good@example.com,x\n"
    for text, lines in ((left_open, 2003), ("email,name\n" + near * 40, 1 + 50 * 40)):
        found = detect(text.encode()[:65536], complete=True)
        handed[0] = checked[0] = 0
        rows = list(iter_contacts(chunks(text.encode(), 4096), found.dialect, found.columns))
        report = inspect_rows(iter(rows), is_suppressed=lambda email: False)
        assert report.rows == len(rows) == lines - 1
        assert sum(row.unclosed_quote_line is not None for row in rows) == report.invalid > lines * 0.9
        assert handed[0] < 3 * lines and checked[0] < 4 * lines, (handed[0], checked[0], lines)
