"""Which templates may be compiled at all: the merge-field subset of Jinja, within caps on tags,
tokens, nesting, joins and filter calls, every refusal naming the part and the construct."""

from __future__ import annotations

import itertools
import re
from typing import Any

from jinja2 import TemplateSyntaxError, nodes
from jinja2.sandbox import SandboxedEnvironment

from shared.mail.template_limits import MAX_FILTER_CALLS, MAX_HTML_ELEMENTS, MAX_ROUND_DIGITS, MAX_TAGS, MAX_TOKENS


class TemplateError(ValueError):
    """A subject or body template that cannot be compiled; `part` names which. `code` and
    `params` name the problem for a translated message (shared/errors.py)."""

    def __init__(self, part: str, message: str, line: int | None = None, *, code: str = "template",
                 params: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.part = part
        self.line = line
        self.code = code
        self.params = params or {}


# Merge-field templates are a small part of Jinja: fields, filters that cannot multiply their
# input, and conditions. Loops, calls, arithmetic and assignments are refused where the template
# is written, so rendering one message is linear in the template and the contact's fields, and
# no user's template can hold a worker or the API for long (or fill its memory).
_ALLOWED_NODES: tuple[type[nodes.Node], ...] = (
    nodes.Template, nodes.Output, nodes.TemplateData, nodes.Name, nodes.Const, nodes.Filter, nodes.Test,
    nodes.If, nodes.Compare, nodes.Operand, nodes.And, nodes.Or, nodes.Not, nodes.CondExpr, nodes.Concat,
    nodes.Getattr, nodes.Getitem, nodes.Slice, nodes.Keyword, nodes.List, nodes.Tuple,
)
# Tests that only compare or classify. divisibleby / odd / even run Python's `%`, which on a
# string is formatting: "%0100000000d" built 100 MB per recipient (found by attacking the stack).
ALLOWED_TESTS = frozenset({
    "defined", "undefined", "none", "number", "string", "boolean", "true", "false", "integer", "float",
    "eq", "equalto", "==", "ne", "!=", "lt", "<", "lessthan", "le", "<=", "gt", ">", "greaterthan", "ge", ">=",
    "in", "lower", "upper", "sameas",
})
ALLOWED_FILTERS = frozenset({
    "upper", "lower", "title", "capitalize", "trim", "default", "d", "truncate", "striptags", "length",
    "wordcount", "escape", "e", "first", "last", "int", "round", "string",
})

# What each refused construct is called in the error message (English, Russian).
_CONSTRUCTS: dict[type[nodes.Node], tuple[str, str]] = {
    nodes.For: ("loops ({% for %})", "циклы ({% for %})"),
    nodes.Macro: ("macros", "макросы"),
    nodes.CallBlock: ("macros", "макросы"),
    nodes.Call: ("function calls", "вызовы функций"),
    nodes.Assign: ("{% set %}", "{% set %}"),
    nodes.AssignBlock: ("{% set %}", "{% set %}"),
    nodes.Include: ("other templates", "другие шаблоны"),
    nodes.Import: ("other templates", "другие шаблоны"),
    nodes.FromImport: ("other templates", "другие шаблоны"),
    nodes.Extends: ("other templates", "другие шаблоны"),
    nodes.With: ("{% with %}", "{% with %}"),
    nodes.Scope: ("{% with %}", "{% with %}"),
    nodes.FilterBlock: ("{% filter %}", "{% filter %}"),
    nodes.ScopedEvalContextModifier: ("{% autoescape %}", "{% autoescape %}"),
    nodes.EvalContextModifier: ("{% autoescape %}", "{% autoescape %}"),
    nodes.Dict: ("dictionaries ({…})", "словари ({…})"),
    nodes.Break: ("loops ({% for %})", "циклы ({% for %})"),
    nodes.Continue: ("loops ({% for %})", "циклы ({% for %})"),
    **{kind: ("arithmetic", "арифметику") for kind in (nodes.Add, nodes.Sub, nodes.Mul, nodes.Div, nodes.FloorDiv,
                                                    nodes.Pow, nodes.Mod, nodes.Neg, nodes.Pos)},
}


# How deep the template's tree may nest (about one level per {% if %} or bracket): far beyond any real
# merge-field template, and well inside what Jinja's code generation and Python's compiler take
# (about 100 nested {% if %} make Python refuse the generated code).
MAX_NESTING = 50
MAX_JOINED = 100


def too_deep(part: str) -> TemplateError:
    return TemplateError(part, "the template nests too deeply", None, code="template_too_deep",
                         params={"limit": MAX_NESTING})


# What an HTML parser takes for an element: "<" and a letter (end tags, comments and a "<" in text
# make none). Inside Jinja tags and string literals too: the text part is derived from all of it.
_ELEMENT = re.compile(r"<[A-Za-z]")


def check_html_elements(html: str) -> None:
    """Refuse an HTML template with more than MAX_HTML_ELEMENTS elements; the scan stops at the cap."""
    found = sum(1 for _ in itertools.islice(_ELEMENT.finditer(html), MAX_HTML_ELEMENTS + 1))
    if found > MAX_HTML_ELEMENTS:
        raise TemplateError("html", f"the HTML has more than {MAX_HTML_ELEMENTS:,} elements", None,
                            code="template_html_elements",
                            params={"limit": f"{MAX_HTML_ELEMENTS:,}", "limit_ru": f"{MAX_HTML_ELEMENTS:,}"
                                    .replace(",", " "), "footer": ""})


def footer_counted(exc: TemplateError, html_env: SandboxedEnvironment, text_env: SandboxedEnvironment,
                   html: str, text: str | None) -> TemplateError:
    """`exc`, raised for templates with the unsubscribe footer sending adds (compose.py), which the
    API and the worker both count. A mistake of the author's own (an unclosed {{ the footer then ran
    into) is raised here instead, in the author's words; one the footer alone made (a tag or an
    element past a cap) says that the footer was counted."""
    check_html_elements(html)
    checked_tree(html_env, html, "html")
    if text:
        checked_tree(text_env, text, "text")
    notes = {"en": ", counting the unsubscribe link Sendpy adds",
             "ru": " вместе с добавляемой Sendpy ссылкой для отписки"}
    for name in ("what", "footer"):
        if name in exc.params or f"{name}_en" in exc.params:
            for lang, note in notes.items():
                exc.params[f"{name}_{lang}"] = exc.params.get(f"{name}_{lang}", exc.params.get(name, "")) + note
    return exc


def _negative_number(node: nodes.Node) -> bool:
    """`-5` is parsed as arithmetic on 5; as a literal it computes nothing (truncate(-5), round(x, -1))."""
    return (isinstance(node, nodes.Neg | nodes.Pos) and isinstance(node.node, nodes.Const)
            and type(node.node.value) in (int, float))


def checked_tree(env: SandboxedEnvironment, source: str, part: str) -> nodes.Template:
    """Parse and vet one template; every way it can fail is a TemplateError naming the part."""
    tags = source.count("{{") + source.count("{%")
    if tags > MAX_TAGS:  # counted before parsing: 20,000 tags took 5 s to compile
        raise TemplateError(part, f"the template has {tags} tags", None, code="template_construct",
                            params={"what_en": f"{tags:,} tags {{{{ … }}}} and {{% … %}} (at most {MAX_TAGS})",
                                    "what_ru": f"{tags:,} тегов {{{{ … }}}} и {{% … %}} (не больше {MAX_TAGS})"
                                    .replace(",", " ")})
    try:
        # Tokens are counted before the parse, which costs about 2 µs a character: one tag holding
        # a 2 MB expression took 45 s and 2.7 GB to compile. Lexing stops at the limit.
        for count, _ in enumerate(env.lex(source), 1):
            if count > MAX_TOKENS:
                raise TemplateError(part, f"the template has more than {MAX_TOKENS} tokens", None,
                                    code="template_construct",
                                    params={"what_en": f"more than {MAX_TOKENS:,} words and signs inside its tags",
                                            "what_ru": f"больше {MAX_TOKENS:,} слов и знаков внутри тегов"
                                            .replace(",", " ")})
        tree = env.parse(source)
    except ValueError as exc:  # a number literal past Python's 4,300 digits
        if isinstance(exc, TemplateError):
            raise
        raise TemplateError(part, "a number in the template is too long", None, code="template_construct",
                            params={"what_en": "a number longer than 4,300 digits",
                                    "what_ru": "число длиннее 4 300 цифр"}) from None
    except TemplateSyntaxError as exc:
        raise TemplateError(part, exc.message or "template syntax error", exc.lineno) from None
    except (RecursionError, MemoryError):
        raise too_deep(part) from None
    stack: list[tuple[nodes.Node, int]] = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_NESTING:
            raise too_deep(part)
        stack.extend((child, depth + 1) for child in node.iter_child_nodes())
    _check_construct(tree, part)
    for node in tree.find_all(nodes.Filter):
        precision = node.args[0] if node.name == "round" and node.args else None
        if isinstance(precision, nodes.Neg | nodes.Pos) and _negative_number(precision):
            precision = precision.node  # -21 is checked as 21
        if isinstance(precision, nodes.Const) and (not isinstance(precision.value, int)
                                                   or abs(precision.value) > MAX_ROUND_DIGITS):
            raise TemplateError(part, f"round() takes a precision from -{MAX_ROUND_DIGITS} to {MAX_ROUND_DIGITS}",
                                node.lineno, code="template_construct",
                                params={"what_en": f"round() with a precision beyond ±{MAX_ROUND_DIGITS}",
                                        "what_ru": f"round() с точностью больше ±{MAX_ROUND_DIGITS}"})
    calls = sum(1 for _ in tree.find_all((nodes.Filter, nodes.Test)))
    if calls > MAX_FILTER_CALLS:
        raise TemplateError(part, f"the template calls {calls} filters and tests", None, code="template_construct",
                            params={"what_en": f"{calls} filters and tests (at most {MAX_FILTER_CALLS})",
                                    "what_ru": f"{calls} фильтров и проверок (не больше {MAX_FILTER_CALLS})"})
    # "~" builds its whole string before the output's size is checked: with 10,000-character
    # fields, thousands of joins made a gigabyte per recipient. A hundred is plenty for names.
    joined = sum(len(node.nodes) for node in tree.find_all(nodes.Concat))
    if joined > MAX_JOINED:
        raise TemplateError(part, f"the template joins {joined} values with ~", None, code="template_construct",
                            params={"what_en": f"{joined} values joined with ~ (at most {MAX_JOINED})",
                                    "what_ru": f"склейку {joined} значений через ~ (не больше {MAX_JOINED})"})
    return tree


def _check_construct(tree: nodes.Template, part: str) -> None:
    """Refuse anything outside the merge-field subset, naming it."""
    _check_lists(tree, part)
    for node in tree.find_all(nodes.Node):
        if isinstance(node, nodes.Filter) and node.name not in ALLOWED_FILTERS:
            raise TemplateError(part, f"the filter '{node.name}' is not available", node.lineno,
                                code="template_filter", params={"name": node.name,
                                                                "allowed": ", ".join(sorted(ALLOWED_FILTERS))})
        if isinstance(node, nodes.Test) and node.name not in ALLOWED_TESTS:
            raise TemplateError(part, f"the test '{node.name}' is not available", node.lineno,
                                code="template_test", params={"name": node.name,
                                                              "allowed": ", ".join(sorted(ALLOWED_TESTS))})
        if isinstance(node, _ALLOWED_NODES) or _negative_number(node):
            continue
        en, ru = next((names for kind, names in _CONSTRUCTS.items() if isinstance(node, kind)),
                      (type(node).__name__, type(node).__name__))
        raise TemplateError(part, f"{en} cannot be used in merge fields", node.lineno,
                            code="template_construct", params={"what_en": en, "what_ru": ru})


def _check_lists(tree: nodes.Template, part: str) -> None:
    """Lists are for comparisons only — `city in ['Москва', 'Казань']`, of plain values: printed,
    joined or nested, str() builds them whole before any size check (a 102 KB template made
    500 million characters per recipient)."""
    stack: list[tuple[nodes.Node, nodes.Node | None]] = [(tree, None)]
    while stack:
        node, parent = stack.pop()
        if isinstance(node, nodes.List | nodes.Tuple) and not (
                isinstance(parent, nodes.Operand | nodes.Test)
                and all(isinstance(item, nodes.Const | nodes.Name) for item in node.items)):
            raise TemplateError(part, "lists can be used only in comparisons", node.lineno, code="template_construct",
                                params={"what_en": "a list outside a comparison (only x in ['a', 'b'] is possible)",
                                        "what_ru": "список вне сравнения (можно только x in ['a', 'b'])"})
        stack.extend((child, node) for child in node.iter_child_nodes())
