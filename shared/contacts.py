"""Contact CSV files: detect how they are written, then stream their rows in constant memory.

Detection looks at a sample (the first 64 KiB): encoding (UTF-8 with or without BOM, UTF-16,
Windows-1251 and other single-byte code pages via charset-normalizer), delimiter (`,` `;` tab
`|`), whether the first row is a header, and which column holds the addresses. The user can
correct any of it; streaming then uses exactly what was decided. An unclosed quote costs its
line only (contacts_records.py).
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

from charset_normalizer import from_bytes

from shared.addresses import check_address
from shared.contacts_records import MAX_FIELD, records
from shared.errors import InputError

SAMPLE_BYTES = 64 * 1024
DELIMITERS = (",", ";", "\t", "|")
ENCODINGS = ("utf-8", "utf-8-sig", "utf-16", "cp1251", "koi8-r", "cp1252", "iso-8859-1")
PREVIEW_ROWS = 10
INVALID_EXAMPLES = 20
MAX_COLUMNS = 200

_EMAIL_HEADERS = {
    "email", "e-mail", "mail", "emailaddress", "e-mailaddress", "emails", "почта", "электроннаяпочта",
    "адрес", "адресэлектроннойпочты", "емейл", "имейл", "мейл", "e-mailадрес", "email-адрес", "эл.почта",
    "электронныйадрес", "адреспочты",
}
_NON_WORD = re.compile(r"[^\w]+", re.UNICODE)


@dataclass(frozen=True)
class Dialect:
    encoding: str
    delimiter: str
    has_header: bool
    email_column: int


@dataclass(frozen=True)
class Column:
    label: str  # as written in the header, or "Column N"
    field: str  # the merge-field name used in templates: {{ field }}


@dataclass(frozen=True)
class Detection:
    dialect: Dialect
    columns: list[Column]
    preview: list[list[str]]

    def to_json(self) -> dict[str, Any]:
        return {"dialect": asdict(self.dialect), "columns": [asdict(c) for c in self.columns],
                "preview": self.preview}


def _normal_header(text: str) -> str:
    return re.sub(r"[\s_]+", "", text.strip().lower())


def field_name(label: str, index: int, taken: set[str]) -> str:
    base = _NON_WORD.sub("_", label.strip().lower()).strip("_") or f"column_{index + 1}"
    if base[0].isdigit():
        base = f"c_{base}"
    name, n = base, 2
    while name in taken:
        name, n = f"{base}_{n}", n + 1
    taken.add(name)
    return name


def detect_encoding(sample: bytes, complete: bool) -> str:
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if sample.startswith(b"PK\x03\x04"):
        raise InputError("excel_file", "file")
    if sample.startswith((b"%PDF", b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"\xd0\xcf\x11\xe0")):
        raise InputError("not_text", "file")
    try:
        # A sample cut from a larger file may end inside a character: an incremental decoder
        # accepts an incomplete last sequence and still refuses invalid bytes anywhere before it.
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=complete)
        if b"\x00" not in sample:
            return "utf-8"
    except UnicodeDecodeError:
        pass
    best = from_bytes(sample, cp_isolation=["utf_16", "cp1251", "koi8_r", "cp1252", "latin_1"]).best()
    if best is None:
        raise InputError("not_text", "file")
    encoding = str(best.encoding).replace("_", "-")
    if encoding in ("utf-16-le", "utf-16-be"):
        return encoding
    if b"\x00" in sample:
        raise InputError("not_text", "file")
    return encoding


def _has_email(cells: list[str]) -> bool:
    return any(_looks_like_email(cell) for cell in cells)


def _rows(lines: list[str], delimiter: str, final: bool) -> list[list[str]]:
    try:
        return [record.cells for record in records(lines, delimiter, _has_email, final)
                if any(cell.strip() for cell in record.cells)]
    except csv.Error as exc:
        raise InputError("bad_csv", "file", reason=str(exc)) from None


def detect_delimiter(lines: list[str]) -> str:
    """The candidate that splits the most lines into the same, largest number of cells."""
    best, best_score = ",", 0.0
    for candidate in DELIMITERS:
        counts = [len(record.cells) for record in records(lines, candidate, _has_email) if record.cells]
        if not counts:
            continue
        typical = max(set(counts), key=counts.count)
        if typical < 2:
            continue
        score = counts.count(typical) / len(counts) * typical
        if score > best_score:
            best, best_score = candidate, score
    return best


def _looks_like_email(value: str) -> bool:
    value = value.strip()
    return "@" in value and check_address(value).normalized is not None


def detect(sample: bytes, *, complete: bool, overrides: dict[str, Any] | None = None) -> Detection:
    """Work out the dialect from a sample; `overrides` (user corrections) win over guesses."""
    overrides = overrides or {}
    if not sample.strip(b" \t\r\n\x00" + codecs.BOM_UTF8):
        raise InputError("empty_file", "file")
    encoding = overrides.get("encoding") or detect_encoding(sample, complete)
    try:
        decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
        text = decoder.decode(sample, final=complete)
    except (LookupError, UnicodeError):  # UTF-16 without a BOM is a UnicodeError, not a decode error
        raise InputError("wrong_encoding", "encoding", encoding=encoding) from None
    text = text.lstrip("\ufeff")
    if "\x00" in text:
        raise InputError("not_text", "file")
    if not complete:
        text = text[: text.rfind("\n") + 1] if "\n" in text else text
    lines = csv_lines(text)
    delimiter = overrides.get("delimiter") or detect_delimiter(lines[:50])
    rows = _rows(lines, delimiter, final=complete)
    if not rows:
        raise InputError("empty_file", "file")
    width = max(len(row) for row in rows)
    if width > MAX_COLUMNS:
        raise InputError("too_many_columns", "file", limit=MAX_COLUMNS)

    first = rows[0]
    header_guess = any(_normal_header(cell) in _EMAIL_HEADERS for cell in first)
    email_column = overrides.get("email_column")
    if email_column is None:
        for index, cell in enumerate(first):
            if _normal_header(cell) in _EMAIL_HEADERS:
                email_column = index
                break
    if email_column is None:
        body = rows[1:] or rows
        scores = [sum(_looks_like_email(row[i]) for row in body[:200] if i < len(row)) for i in range(width)]
        if max(scores) == 0:
            raise InputError("no_email_column", "email_column")
        email_column = scores.index(max(scores))
    if not isinstance(email_column, int) or not 0 <= email_column < width:
        raise InputError("invalid_column", "email_column", count=width)

    has_header = overrides.get("has_header")
    if has_header is None:
        first_cell = first[email_column] if email_column < len(first) else ""
        has_header = header_guess or ("@" not in first_cell and len(rows) > 1)
    data_rows = rows[1:] if has_header else rows
    if not data_rows and complete:
        raise InputError("no_rows", "file")

    taken: set[str] = set()
    labels = [(first[i] if has_header and i < len(first) and first[i].strip() else f"Column {i + 1}")
              for i in range(width)]
    columns = [Column(label.strip()[:200], field_name(label, i, taken)) for i, label in enumerate(labels)]
    preview = [row[:width] for row in data_rows[:PREVIEW_ROWS]]
    return Detection(Dialect(encoding, delimiter, bool(has_header), email_column), columns, preview)


def csv_lines(text: str) -> list[str]:
    """Lines (with their endings) as the csv module reads them: ended by \r, \n or \r\n only.
    str.splitlines also ends lines at form feeds, U+2028 and other separators that a spreadsheet
    keeps inside a cell, which split one row in two when counting but not when reading it."""
    lines: list[str] = []
    carried = ""
    for line in text.splitlines(keepends=True):
        if line.endswith(("\n", "\r")):
            lines.append(carried + line)
            carried = ""
        else:
            carried += line
    if carried:
        lines.append(carried)
    return lines


def decode_lines(chunks: Iterable[bytes], encoding: str) -> Iterator[str]:
    """Lines (with their endings) of a byte stream, decoded incrementally."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    pending = ""
    first = True
    for chunk in chunks:
        text = decoder.decode(chunk).replace("\x00", "")  # a NUL is never data, and Postgres text cannot hold it
        if first and text:
            text, first = text.lstrip("\ufeff"), False
        pending += text
        lines = csv_lines(pending)
        # A "\r" at the end of a chunk may be half of "\r\n": wait for the next chunk to know.
        if lines and (not lines[-1].endswith(("\n", "\r")) or lines[-1].endswith("\r")):
            pending = lines.pop()
        else:
            pending = ""
        yield from lines
    pending += decoder.decode(b"", final=True)
    if pending:
        yield pending


class ContactRow(NamedTuple):  # not a frozen dataclass: building one cost 1.5 µs, a fifth of reading a row
    row: int  # 1-based record number in the file, the header counted, as a spreadsheet shows it
    email: str  # as written; for an unclosed quote the whole line, which is never a valid address
    fields: dict[str, str]
    unclosed_quote_line: int | None = None  # the row opens a quote never closed, on this line of the file


def unclosed_quote_reason(line: int) -> str:
    # Both languages, as in an upload's error_detail: the report is read later, in either.
    return (f"строка {line}: незакрытая кавычка (\") — строка пропущена, следующие строки прочитаны как обычно;"
            f" закройте или уберите кавычку и загрузите файл снова"
            f" / line {line}: unclosed quote (\") — the line was skipped, the lines after it were read as usual;"
            f" close or remove the quote and upload the file again")


def iter_contacts(chunks: Iterable[bytes], dialect: Dialect, columns: list[Column],
                  check: Callable[[], None] | None = None) -> Iterator[ContactRow]:
    """Every data row of the file; blank lines are passed over. Raises InputError on broken CSV.
    `check` is called for each record read (blank ones too) and may raise to stop the reading."""
    csv.field_size_limit(MAX_FIELD * 10)
    names = [c.field for c in columns]
    at = dialect.email_column

    def stands_alone(cells: list[str]) -> bool:
        return len(cells) > at and (len(cells) > 1 or len(names) == 1) and _looks_like_email(cells[at])

    read = records(decode_lines(chunks, dialect.encoding), dialect.delimiter, stands_alone)
    number = 0
    try:
        for line, cells, unclosed in read:
            if check is not None:
                check()
            number += 1
            if number == 1 and dialect.has_header:
                continue
            if unclosed is not None:
                yield ContactRow(number, unclosed.strip(), {}, unclosed_quote_line=line)
                continue
            if not any(cell.strip() for cell in cells):
                continue
            email = cells[dialect.email_column] if dialect.email_column < len(cells) else ""
            fields = {name: cells[i].strip()[:MAX_FIELD] for i, name in enumerate(names)
                      if i < len(cells) and i != dialect.email_column}
            yield ContactRow(number, email.strip(), fields)
    except UnicodeError:
        raise InputError("wrong_encoding", "encoding", encoding=dialect.encoding) from None
    except csv.Error as exc:
        raise InputError("bad_csv", "file", reason=f"row {number + 1}: {exc}") from None


def address_key(email: str) -> bytes:
    """A compact, case-insensitive identity for de-duplication (16 bytes per address)."""
    return hashlib.blake2b(email.lower().encode(), digest_size=16).digest()


@dataclass
class Report:
    rows: int = 0
    valid: int = 0
    empty: int = 0  # rows with nothing in the address column
    invalid: int = 0  # rows with something there that is not an address
    duplicates: int = 0
    suppressed: int = 0
    invalid_examples: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def inspect_rows(
    contacts: Iterable[ContactRow],
    is_suppressed: Callable[[str], bool],
    progress: Callable[[int], None] | None = None,
) -> Report:
    """Count rows, valid, invalid (with the first examples), duplicates and suppressed."""
    report = Report()
    seen: set[bytes] = set()
    unclosed_shown = 0
    for contact in contacts:
        report.rows += 1
        if progress is not None and report.rows % 50_000 == 0:
            progress(report.rows)
        if contact.unclosed_quote_line is not None:
            report.invalid += 1
            # Shown even past the address examples: the file itself must be fixed there.
            if unclosed_shown < INVALID_EXAMPLES:
                unclosed_shown += 1
                report.invalid_examples.append({"row": contact.row, "value": contact.email[:200],
                                                "reason": unclosed_quote_reason(contact.unclosed_quote_line)})
            continue
        checked = check_address(contact.email)
        if checked.normalized is None:
            if contact.email.strip():
                report.invalid += 1
            else:
                report.empty += 1
            if len(report.invalid_examples) - unclosed_shown < INVALID_EXAMPLES:
                report.invalid_examples.append(
                    {"row": contact.row, "value": contact.email[:200], "reason": checked.explained}
                )
            continue
        key = address_key(checked.normalized)
        if key in seen:
            report.duplicates += 1
            continue
        seen.add(key)
        if is_suppressed(checked.normalized.lower()):
            report.suppressed += 1
            continue
        report.valid += 1
    return report
