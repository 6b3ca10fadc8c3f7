"""CSV exports that spreadsheets open safely: formula-like cells are neutralised."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> str:
    text = "" if value is None else str(value)
    # A leading apostrophe makes Excel/LibreOffice show the text instead of evaluating it.
    return "'" + text if text.startswith(_FORMULA_START) else text


def csv_lines(rows: Iterable[Sequence[object]], header: Sequence[str] | None = None) -> Iterator[str]:
    """CSV text in pieces of about 64 KiB; cells neutralised, the header written only if given."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    if header is not None:
        writer.writerow(header)
    for row in rows:
        writer.writerow([safe_cell(v) for v in row])
        if buffer.tell() > 64 * 1024:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()
