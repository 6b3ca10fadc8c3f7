"""The plain-text part of a message, derived from its HTML (inscriptis), bounded in size.

Text tables pad every row to their columns' widest cells, so a table of a few wide cells over many
rows grows into millions of characters; past _MAX_TABLE_TEXT a table's rows become lines instead.
"""

from __future__ import annotations

import re

from inscriptis import get_text
from inscriptis.model.config import ParserConfig


def html_to_text(html: str) -> str:
    """The plain-text alternative of an HTML body, links kept as visible URLs and images as their
    descriptions (`[Герб школы]`: a reader of the text part would not know a picture was there)."""
    config = ParserConfig(display_links=True, display_images=True)
    text: str = get_text(_without_wide_tables(html), config)
    if len(text) > 2 * len(html) + _MAX_TABLE_TEXT:  # padded past what the estimate foresaw: as lines
        text = get_text(_flattened_tables(html), config)
    return text.strip() + "\n"


_TABLE_ROW = re.compile(r"<tr\b", re.I)
# `[^<>]*`, not `[^>]*`: a `<td` never closed made each match scan to the end of the body, the
# square of its length (9,900 of them before 1.96 MB of text: 31 s, the API's loop held meanwhile).
# A cell runs to the next tag of the table's own structure, tags inside it included (measured only
# up to its first tag, `<td><b>` + 100,000 characters read as empty: 30 M characters, 30 s); each
# character is scanned for one cell at most.
_TABLE_CELL = re.compile(r"<t[dh]\b[^<>]*>((?:[^<]++|<(?!/?(?:t[dhr]|table|thead|tbody|tfoot|caption)\b))*+)",
                         re.I)
_TABLE_TAG = re.compile(r"<(/?)(?:table|thead|tbody|tfoot|tr|caption)\b[^<>]*>", re.I)
_CELL_TAG = re.compile(r"<(/?)t[dh]\b[^<>]*>", re.I)
# Text tables pad every row to the widest cell: one 100,000-character cell over 1,000 rows made a
# 100-million-character text part (26 s, 0.8 GB). Past this size a table's rows become lines.
_MAX_TABLE_TEXT = 200_000


def _without_wide_tables(html: str) -> str:
    # A row is as wide as its columns' widest cells together, at most all the cells' text: rows ×
    # that bounds the padded text (the widest cell alone missed tables many columns wide).
    cells = sum(len(cell) for cell in _TABLE_CELL.findall(html))
    if cells * len(_TABLE_ROW.findall(html)) <= _MAX_TABLE_TEXT:
        return html
    return _flattened_tables(html)


def _flattened_tables(html: str) -> str:
    rows = _TABLE_TAG.sub(lambda tag: f"<{tag.group(1)}div>", html)
    return _CELL_TAG.sub(lambda tag: " " if tag.group(1) else "", rows)
