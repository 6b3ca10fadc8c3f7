"""Counts in a message as the reader's language writes them, the way the web page does (its
`number()` in web/js/i18n.js): 3 000 in Russian (a no-break space, as browsers write it), 3,000 in
English — a message saying «на 3000 строк» beside a page saying «2 755» read as two styles."""

from __future__ import annotations

from typing import Any

NO_BREAK_SPACE = "\u00a0"


def grouped(n: int, lang: str) -> str:
    text = f"{n:,}"
    return text.replace(",", NO_BREAK_SPACE) if lang == "ru" else text


def counts(**numbers: int) -> dict[str, Any]:
    """Message parameters for counts: each as given (for code that reads them) and written for each
    language (`x_ru`, `x_en`: what shared.errors.translate puts in the messages)."""
    written: dict[str, Any] = dict(numbers)
    for name, n in numbers.items():
        written[f"{name}_ru"] = grouped(n, "ru")
        written[f"{name}_en"] = grouped(n, "en")
    return written
