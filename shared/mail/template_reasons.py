"""Jinja's syntax-error messages in Russian, for people who write templates in Russian.

Jinja words its errors in English only; these are the shapes it uses for mistakes people make in
merge fields. Anything else keeps Jinja's words after a Russian lead-in, so nothing is hidden.
"""

from __future__ import annotations

import re
from collections.abc import Callable

_TOKENS = {
    "end of print statement": "}}",
    "end of statement block": "%}",
    "end of template": "конец шаблона",
    "name": "имя",
}


def _token(name: str) -> str:
    return _TOKENS.get(name, name)


def _instead(match: re.Match[str]) -> str:
    return f"ожидалось «{_token(match.group('want'))}», а встретилось «{_token(match.group('got'))}»"


def _looking_for(match: re.Match[str]) -> str:
    block = match.group("block")
    return f"не закрыт блок {{% {block} %}}: добавьте {{% end{block} %}}"


_SHAPES: list[tuple[re.Pattern[str], Callable[[re.Match[str]], str]]] = [
    (re.compile(r"Encountered unknown tag '(?P<tag>[^']*)'\..*innermost block that needs to be closed is "
                r"'(?P<block>[^']*)'", re.S),
     lambda m: f"встретился {{% {m.group('tag')} %}}, а не закрыт блок {{% {m.group('block')} %}}"),
    (re.compile(r"Unexpected end of template\..*innermost block that needs to be closed is '(?P<block>[^']*)'",
                re.S), _looking_for),
    (re.compile(r"unexpected end of template, expected '(?P<want>[^']*)'"),
     lambda m: f"шаблон закончился, а ожидалось «{_token(m.group('want'))}»"),
    (re.compile(r"Encountered unknown tag '(?P<tag>[^']*)'"),
     lambda m: f"неизвестная или лишняя команда {{% {m.group('tag')} %}}"),
    (re.compile(r"expected token '(?P<want>[^']*)', got '(?P<got>[^']*)'"), _instead),
    (re.compile(r"Expected an expression, got '(?P<got>[^']*)'"),
     lambda m: f"пустое выражение: перед «{_token(m.group('got'))}» нужно имя поля"),
    (re.compile(r"unexpected '(?P<got>[^']*)', expected '(?P<want>[^']*)'"), _instead),
    (re.compile(r"unexpected char '(?P<char>.)' at \d+"),
     lambda m: f"недопустимый символ «{m.group('char')}» внутри {{{{ }}}}"),
    (re.compile(r"unexpected '(?P<got>[^']*)'"),
     lambda m: f"неожиданное «{_token(m.group('got'))}»"),
    (re.compile(r"Missing end of comment tag"), lambda m: "комментарий {# не закрыт: добавьте #}"),
    # Errors of rendering one contact's data:
    (re.compile(r"division by zero"), lambda m: "деление на ноль"),
    (re.compile(r"'(?P<name>[^']*)' is undefined"), lambda m: f"поле «{m.group('name')}» не задано"),
    (re.compile(r"unsupported operand type"), lambda m: "действие с полями несовместимых типов (текст и число)"),
]


def in_russian(message: str) -> str:
    """Jinja's `message` said in Russian."""
    for pattern, say in _SHAPES:
        match = pattern.search(message)
        if match:
            return say(match)
    return f"ошибка шаблона (Jinja: {message})"


def failure_in_russian(exc: Exception) -> str:
    """Why rendering one contact's message failed, in Russian: our own limits say it themselves."""
    russian = getattr(exc, "russian", None)  # TemplateLimit, RenderTooLarge: said by us, in both languages
    return russian if isinstance(russian, str) else in_russian(str(exc))
