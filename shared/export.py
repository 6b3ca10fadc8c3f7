"""CSV exports that spreadsheets open as they were written, in the reader's language and time zone:
a Russian Excel splits columns on ';' and reads UTF-8 only after a byte-order mark.

The one rule for cells a person reads in a spreadsheet (`text_cell`): a text that a spreadsheet
would not keep as that text is written as a text formula, `="…"` (quotes doubled). That is a text
that begins with = + - @, a tab or a carriage return (a formula: OWASP's CSV-injection list), and
a text made only of digits and the signs numbers, dates, times and phone numbers are written with
(`+7 916 123-45-67`, `0012`, `01.02`, `1e5`): Excel would make it a number or a date, dropping the
`+` and leading zeros or rewriting it. Excel and Google Sheets show `="+79161234567"` as exactly
+79161234567, with no apostrophe in sight, and evaluate nothing inside the quotes. Where Excel
takes no such formula (a text over 255 characters, or one with a line break) a formula-like text
gets OWASP's leading apostrophe instead. Values Sendpy writes itself (row, attempts, the time) stay values.

The campaign export and the upload's problem rows use it alike. The suppression list's export
(`safe_cell`, the default of `csv_lines`) keeps the apostrophe alone:
it is made to be imported back, and its import takes the apostrophe off again.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import io
import json
import re
import zoneinfo
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any
from zoneinfo import ZoneInfo

from shared.errors import InputError

BOM = "\ufeff"
RECIPIENT_HEADER = {
    "en": ("Row", "Email", "State", "Server reply", "Attempts", "Updated ({zone})"),
    "ru": ("№", "Эл. почта", "Состояние", "Ответ сервера", "Попыток", "Обновлено ({zone})"),
}
STATE_NAMES = {
    "ru": {"pending": "ожидает", "sending": "отправляется", "sent": "отправлено", "failed": "не доставлено",
           "skipped": "пропущено", "bounced": "возврат"},
}

# Replies Sendpy writes itself (not a server's words): stored as codes, read in the reader's language.
SYSTEM_REPLIES = {
    "en": {"suppressed": "on the suppression list", "cancelled": "the campaign was cancelled",
           "duplicate": "a repeated address"},
    "ru": {"suppressed": "в списке исключений", "cancelled": "рассылка отменена", "duplicate": "повтор адреса"},
}
_CYRILLIC = re.compile("[а-яё]", re.IGNORECASE)
# The retry policy's last word as it was stored before attempts became data (recipients' `attempts`).
_GAVE_UP = re.compile(r"(\d+) попыток не удались; gave up after \1 attempts: (.*)", re.DOTALL)
_LATIN_START = re.compile(r"[^\w]*[a-z]", re.IGNORECASE)  # the English half begins with an English word

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# Digits with the signs of numbers, dates, times, fractions, percentages and phone numbers only.
_NUMBER_LIKE = re.compile(r"[\s\d+\-−().,/:%eE]*\d[\s\d+\-−().,/:%eE]*")
_FORMULA_TEXT_LIMIT = 255  # the longest text constant an Excel formula takes


def safe_cell(value: object) -> str:
    text = "" if value is None else str(value)
    # A leading apostrophe makes Excel/LibreOffice show the text instead of evaluating it.
    return "'" + text if text.startswith(_FORMULA_START) else text


def text_cell(value: object) -> object:
    """A cell as the person wrote it, whatever the spreadsheet would make of it (the module's rule)."""
    if not isinstance(value, str):
        return "" if value is None else value
    formula = value.startswith(_FORMULA_START)
    if not formula and not _NUMBER_LIKE.fullmatch(value):
        return value
    if len(value) <= _FORMULA_TEXT_LIMIT and "\n" not in value and "\r" not in value:
        return '="' + value.replace('"', '""') + '"'
    return "'" + value if formula else value


def csv_lines(rows: Iterable[Sequence[object]], header: Sequence[str] | None = None,
              delimiter: str = ",", cell: Callable[[object], object] = safe_cell) -> Iterator[str]:
    """CSV text in pieces of about 64 KiB; cells (the header's too) through `cell`, the header only if given."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n", delimiter=delimiter)
    if header is not None:
        writer.writerow([cell(v) for v in header])
    for row in rows:
        writer.writerow([cell(v) for v in row])
        if buffer.tell() > 64 * 1024:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def default_delimiter(lang: str) -> str:
    return ";" if lang == "ru" else ","


@functools.cache
def _zone_names() -> frozenset[str]:
    # Read once (the tz database's directory); "localtime" is the server's zone, not a reader's.
    return frozenset(zoneinfo.available_timezones() - {"localtime", "Factory"})


def time_zone(name: str | None) -> dt.tzinfo:
    """The reader's zone as the browser names it (`Europe/Moscow`); UTC when none is given, or
    where the system has no zone database (the header then says UTC)."""
    if not name or not _zone_names():
        return dt.UTC
    if name not in _zone_names():
        raise InputError("invalid_choice", "tz",
                         choices="Europe/Moscow, Asia/Yekaterinburg, America/New_York, … (IANA)")
    return ZoneInfo(name)


def zone_label(zone: dt.tzinfo, now: dt.datetime | None = None) -> str:
    """`UTC`, or the zone's name with its offset now: `Europe/Moscow, UTC+3`."""
    if zone is dt.UTC or str(zone) in ("UTC", "Etc/UTC"):
        return "UTC"
    offset = (now or dt.datetime.now(dt.UTC)).astimezone(zone).utcoffset() or dt.timedelta(0)
    minutes = int(offset.total_seconds() // 60)
    sign, minutes = ("+" if minutes >= 0 else "-"), abs(minutes)
    shown = f"UTC{sign}{minutes // 60}" + (f":{minutes % 60:02d}" if minutes % 60 else "")
    return f"{zone}, {shown if minutes else 'UTC'}"


# The zone as the reader's screens name it («Москва, стандартное время (UTC+3)», web/js/dates.js):
# letters, digits, spaces and the signs of an offset, short enough for a header.
_SHOWN_ZONE = re.compile(r"[\w ,.()+\-\u2212:/]{1,100}")


def shown_zone(shown: str | None, zone: dt.tzinfo) -> str:
    """The header's zone in the words the page shows it (`shown`, the browser's own name of its
    zone), when that names the same offset as `zone`; else `zone_label`."""
    label = zone_label(zone)
    offset = label.rpartition(", ")[2]
    same_offset = re.compile(re.escape(offset) + r"(?![\d:])")
    if shown and _SHOWN_ZONE.fullmatch(shown) and same_offset.search(shown.replace("\u2212", "-")):
        return shown
    return label


def recipient_header(lang: str, field_names: Sequence[str], zone: dt.tzinfo = dt.UTC,
                     shown: str | None = None) -> list[str]:
    """The export's header: our columns in `lang` (times labelled with the zone as the page names
    it, `shown`), then the file's own."""
    ours = RECIPIENT_HEADER.get(lang, RECIPIENT_HEADER["en"])
    return [*ours[:-1], ours[-1].format(zone=shown_zone(shown, zone)), *field_names]


def recipient_row(row: Mapping[str, Any], lang: str, field_names: Sequence[str],
                  zone: dt.tzinfo = dt.UTC) -> list[object]:
    fields = row.get("fields") or {}
    if isinstance(fields, str):
        fields = json.loads(fields)
    state = STATE_NAMES.get(lang, {}).get(row["status"], row["status"])
    # One skipped for the suppression list was never attempted, though its claim may have counted one.
    attempts = 0 if row["status"] == "skipped" and row["reply"] == "suppressed" else row["attempts"]
    return [row["position"], row["email"], state, reply_in(row["reply"], lang), attempts,
            # A moment, not a text (2026-11-30 14:05:00): the spreadsheet reads it as a date it can sort.
            row["updated_at"].astimezone(zone).replace(tzinfo=None, microsecond=0),
            *(fields.get(name, "") for name in field_names)]


def reply_in(reply: str | None, lang: str) -> str | None:
    """A recipient's reply as the reader reads it: Sendpy's own codes in their language, and of
    Sendpy's bilingual notes ("по-русски / in English") their half; a server's words as they are."""
    if reply is None:
        return None
    own = SYSTEM_REPLIES.get(lang, SYSTEM_REPLIES["en"]).get(reply)
    if own is not None:
        return own
    if gave_up := _GAVE_UP.fullmatch(reply):
        tries, last = gave_up.groups()
        return f"попыток сделано: {tries}; последний ответ: {last}" if lang == "ru" \
            else f"gave up after {tries} attempts: {last}"
    russian, sep, english = reply.partition(" / ")
    if sep and _CYRILLIC.search(russian) and _LATIN_START.match(english):
        return russian if lang == "ru" else english
    return reply
