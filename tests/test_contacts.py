"""CSV detection and streaming on the files people really export (pure logic, no services)."""

from __future__ import annotations

import codecs

import pytest

from shared.contacts import detect, detect_encoding, inspect_rows, iter_contacts
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
