"""CSV exports that spreadsheets open safely (formula-like cells neutralised) and in the reader's
language: a Russian Excel splits columns on ';' and reads UTF-8 only after a byte-order mark."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

BOM = "\ufeff"
RECIPIENT_HEADER = {
    "en": ("Row", "Email", "State", "Server reply", "Attempts", "Updated (UTC)"),
    "ru": ("№", "Эл. почта", "Состояние", "Ответ сервера", "Попыток", "Обновлено (UTC)"),
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
# The retry policy's last word (shared/delivery/outcomes.py), read in either language.
_GAVE_UP = re.compile(r"(\d+) попыток не удались; gave up after \1 attempts: (.*)", re.DOTALL)
_LATIN_START = re.compile(r"[^\w]*[a-z]", re.IGNORECASE)  # the English half begins with an English word

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> str:
    text = "" if value is None else str(value)
    # A leading apostrophe makes Excel/LibreOffice show the text instead of evaluating it.
    return "'" + text if text.startswith(_FORMULA_START) else text


def csv_lines(rows: Iterable[Sequence[object]], header: Sequence[str] | None = None,
              delimiter: str = ",") -> Iterator[str]:
    """CSV text in pieces of about 64 KiB; cells neutralised, the header written only if given."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n", delimiter=delimiter)
    if header is not None:
        writer.writerow(header)
    for row in rows:
        writer.writerow([safe_cell(v) for v in row])
        if buffer.tell() > 64 * 1024:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def default_delimiter(lang: str) -> str:
    return ";" if lang == "ru" else ","


def recipient_header(lang: str, field_names: Sequence[str]) -> list[str]:
    """The export's header: our columns in `lang`, then the contact file's own columns."""
    return [*RECIPIENT_HEADER.get(lang, RECIPIENT_HEADER["en"]), *field_names]


def recipient_row(row: Mapping[str, Any], lang: str, field_names: Sequence[str]) -> list[object]:
    fields = row.get("fields") or {}
    if isinstance(fields, str):
        fields = json.loads(fields)
    state = STATE_NAMES.get(lang, {}).get(row["status"], row["status"])
    return [row["position"], row["email"], state, reply_in(row["reply"], lang), row["attempts"],
            row["updated_at"].strftime("%Y-%m-%d %H:%M:%S"), *(fields.get(name, "") for name in field_names)]


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
