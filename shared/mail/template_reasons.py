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

_TYPES = {"str": ("текст", "text"), "int": ("целое число", "a whole number"),
          "float": ("дробное число", "a decimal number"), "bool": ("да/нет", "a yes/no value"),
          "NoneType": ("пустое значение", "an empty value"),
          **dict.fromkeys(("Undefined", "ChainableUndefined", "StrictUndefined"),
                          ("незаданное поле", "a missing field"))}


def _type(name: str, lang: int) -> str:
    return _TYPES.get(name, (name, name))[lang]


# What filling a template in can fail with (Python's and the filters' own words), in Russian and in
# English said for people rather than programmers. Patterns are matched against str(exception).
_FAILURES: list[tuple[re.Pattern[str], Callable[[re.Match[str]], tuple[str, str]]]] = [
    (re.compile(r"expected length >= (?P<min>\d+), got (?P<got>-?\d+)"),
     lambda m: (f"фильтру truncate нужна длина не меньше {m['min']}, а указано {m['got']}",
                f"truncate needs a length of at least {m['min']}, not {m['got']}")),
    (re.compile(r"'(?P<type>\w+)' object is not (?:iterable|reversible)"),
     lambda m: (f"first и last работают с текстом, а здесь {_type(m['type'], 0)}",
                f"first and last work on text, not on {_type(m['type'], 1)}")),
    (re.compile(r"object of type '(?P<type>\w+)' has no len\(\)"),
     lambda m: (f"length работает с текстом, а здесь {_type(m['type'], 0)}",
                f"length works on text, not on {_type(m['type'], 1)}")),
    (re.compile(r"'(?P<op>[<>=!]+)' not supported between instances of '(?P<a>\w+)' and '(?P<b>\w+)'"),
     lambda m: (f"«{m['op']}» не сравнивает {_type(m['a'], 0)} и {_type(m['b'], 0)}: поля из файла — текст,"
                f" числа сравнивайте через |int (например, age|int < 18)",
                f"'{m['op']}' cannot compare {_type(m['a'], 1)} with {_type(m['b'], 1)}: fields from the file"
                f" are text, compare numbers with |int (for example age|int < 18)")),
    (re.compile(r"method must be common, ceil or floor"),
     lambda m: ("способ округления в round — 'common', 'ceil' или 'floor'",
                "round's method is 'common', 'ceil' or 'floor'")),
    (re.compile(r"type (?P<type>\w+) doesn't define __round__"),
     lambda m: (f"round работает с числами, а здесь {_type(m['type'], 0)}: добавьте |int перед round (целое число)",
                f"round works on numbers, not on {_type(m['type'], 1)}: add |int before round (a whole number)")),
    (re.compile(r"(?:sync_)?do_(?P<name>\w+)\(\) takes .* but \d+ (?:was|were) given"),
     lambda m: (f"фильтру {m['name']} передано слишком много аргументов",
                f"the filter {m['name']} was given too many arguments")),
    (re.compile(r"(?:sync_)?do_(?P<name>\w+)\(\) got an unexpected keyword argument '(?P<arg>\w+)'"),
     lambda m: (f"у фильтра {m['name']} нет аргумента «{m['arg']}»",
                f"the filter {m['name']} has no argument '{m['arg']}'")),
    (re.compile(r"slice step cannot be zero"),
     lambda m: ("шаг среза [начало:конец:шаг] не может быть нулём", "a slice's step [start:end:step] cannot be 0")),
]


def in_russian(message: str) -> str:
    """Jinja's `message` said in Russian; what has no Russian shape keeps its words after a marker."""
    for pattern, say in _SHAPES:
        match = pattern.search(message)
        if match:
            return say(match)
    return f"непонятная запись (подробности: {message})"


def _failure(exc: Exception) -> tuple[str, str] | None:
    message = str(exc)
    for pattern, say in _FAILURES:
        match = pattern.search(message)
        if match:
            return say(match)
    return None


def failure_in_russian(exc: Exception) -> str:
    """Why filling one contact's message in failed, in Russian: our own limits say it themselves."""
    russian = getattr(exc, "russian", None)  # TemplateLimit, RenderTooLarge: said by us, in both languages
    if isinstance(russian, str):
        return russian
    said = _failure(exc)
    if said is not None:
        return said[0]
    for pattern, say in _SHAPES:
        if match := pattern.search(str(exc)):
            return say(match)
    return f"значения не удалось подставить (подробности: {exc})"


def failure_in_english(exc: Exception) -> str:
    """The same in English: Python's and the filters' words where they are plain, ours where not."""
    said = _failure(exc)
    return said[1] if said is not None else str(exc)
