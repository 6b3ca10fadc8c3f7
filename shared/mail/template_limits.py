"""What one message's templates may cost: size, filter work and time, each bounded.

Anyone can sign up, so a template is hostile input. Loops, calls and arithmetic are refused where
the template is written (compose.py), which leaves filters as the only work that grows with a
contact's data: `title` on a 10,000-character field takes about 1.5 ms, and 20,000 of them made
one message take 85 s. So:

- where the template is written, the number of tags and of filter and test calls is capped
  (refused before the template is even parsed or compiled, in well under a second);
- while rendering, every filter and test call is charged the length of what it is given, and a
  message whose calls would handle more than MAX_FILTER_WORK characters fails — a deterministic
  budget that holds on any machine;
- a wall-clock deadline per message (RENDER_SECONDS) backs both up against anything unforeseen.

With fields of at most 10,000 characters (shared/contacts.py), a template that passes the written
caps never runs out of filter work: MAX_FILTER_CALLS × 10,000 = MAX_FILTER_WORK.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from jinja2.nodes import EvalContext
from jinja2.sandbox import SandboxedEnvironment

# One rendered part (text or HTML) of one recipient's message may not exceed this.
MAX_RENDERED_CHARS = 1_000_000
# Nor its subject this: what the API lets one be written (998) with room for merge fields. Encoding a
# header costs about 1–3 µs a character, and 99 {{ a }} of 10,000 characters made 1,000,000-character
# subjects: 1.2–3.3 s per recipient on the sender's event loop, every other account's mail waiting.
MAX_SUBJECT_CHARS = 2_000
MAX_ROUND_DIGITS = 20
# Tags ({{ … }} and {% … %}) in one part. Compiling costs about 0.2 ms a tag on this machine; real
# merge templates use a few dozen.
MAX_TAGS = 500
# Words and signs inside the tags of one part (a tag like {{ name|default('друг') }} is about ten).
MAX_TOKENS = 10_000
# HTML elements (start tags such as <p>, <td>, <a>) in one HTML template. Deriving the plain-text
# part (inscriptis) costs about 7 µs an element on this machine: 330,000 `<a>` in 990 KB took
# 2–5 s of CPU per request and again in the sender worker. 10,000 is about 70 ms, and several
# times what a large newsletter holds (Gmail clips a message past 102 KB, about 3,000 elements).
MAX_HTML_ELEMENTS = 10_000
# Filter and test calls in one part, and the characters they may handle for one message.
MAX_FILTER_CALLS = 50
MAX_FILTER_WORK = 500_000
RENDER_SECONDS = 0.5


class TemplateLimit(ValueError):
    """A step of rendering that would pass a limit; says so in English (str) and Russian."""

    def __init__(self, message: str, russian: str) -> None:
        super().__init__(message)
        self.russian = russian


def part_limit(part: str) -> int:
    """How many characters the part (subject, text or html) may have for one recipient."""
    return MAX_SUBJECT_CHARS if part == "subject" else MAX_RENDERED_CHARS


class RenderTooLarge(ValueError):
    """A template whose output for one contact passes its part's limit; `limit` says which."""

    def __init__(self, part: str) -> None:
        self.part, self.limit = part, part_limit(part)
        super().__init__(f"the {part} for this contact would be larger than {self.limit:,} characters")
        self.russian = f"{_RUSSIAN_PARTS.get(part, part)} для этого контакта длиннее {self.limit:,} символов".replace(
            ",", " ")


_RUSSIAN_PARTS = {"subject": "тема письма", "text": "текстовая часть письма", "html": "HTML-часть письма"}


class RenderTooSlow(TemplateLimit):
    """The time limit: unlike size and filter work it depends on how busy the machine is, so a trial
    render (compose.py) never refuses a template for it."""


class Meter:
    """The work and time one part of one message has left."""

    __slots__ = ("deadline", "work")

    def __init__(self, deadline: float) -> None:
        self.work = 0
        self.deadline = deadline

    def charge(self, value: object) -> None:
        self.work += len(value) if isinstance(value, str) else 1
        if self.work > MAX_FILTER_WORK:
            raise TemplateLimit(
                f"the template's filters would handle more than {MAX_FILTER_WORK:,} characters for this contact",
                f"фильтрам шаблона пришлось бы обработать больше {MAX_FILTER_WORK:,} символов для этого контакта"
                .replace(",", " "))
        self.check_time()

    def check_time(self) -> None:
        if time.perf_counter() > self.deadline:
            raise RenderTooSlow(
                f"the message for this contact took longer than {RENDER_SECONDS} s to prepare",
                f"письмо для этого контакта готовилось дольше {RENDER_SECONDS} с".replace(".", ","))


_METER: ContextVar[Meter | None] = ContextVar("sendpy_render_meter", default=None)


def metering(deadline: float) -> Meter:
    """Start charging this thread's (or task's) filter calls to a new meter."""
    meter = Meter(deadline)
    _METER.set(meter)
    return meter


def _charge(value: object) -> None:
    meter = _METER.get()
    if meter is not None:
        meter.charge(value)


def too_big(value: object, budget: int = MAX_RENDERED_CHARS) -> bool:
    """Whether `value` printed would pass `budget` characters, judged before printing it: a list of
    long fields, or a list inside a list (each level of str() doubles the backslashes), is measured
    item by item instead of being built first."""
    if isinstance(value, str):
        return len(value) > budget
    if isinstance(value, list | tuple | dict):
        items = list(value.items()) if isinstance(value, dict) else value
        for item in items:
            if too_big(item, budget):
                return True
            budget -= len(item) * 2 + 4 if isinstance(item, str) else 64
            if budget < 0:
                return True
    return False


def _larger(what: str, what_ru: str) -> TemplateLimit:
    return TemplateLimit(f"{what} larger than {MAX_RENDERED_CHARS:,} characters",
                         f"{what_ru} длиннее {MAX_RENDERED_CHARS:,} символов".replace(",", " "))


def sized(value: Any) -> Any:
    """What a {{ … }} prints, refused before it is built when it would pass the message's limit."""
    if too_big(value):
        raise _larger("a value", "значение")
    return value


def bounded_filter(name: str, run: Callable[..., Any]) -> Callable[..., Any]:
    """The filter `run`, charged to the message's meter, refusing input or output past the
    message's limit, and round() with a precision that would build a huge number
    (round(1, 10**7, 'floor') computes 10**10**7)."""

    @functools.wraps(run)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        for value in args:
            if isinstance(value, SandboxedEnvironment | EvalContext):
                continue
            if too_big(value):
                raise _larger(f"'{name}' got a value", f"фильтр «{name}» получил значение")
            _charge(value)
        if name == "round":
            precision = kwargs.get("precision", args[1] if len(args) > 1 else 0)
            if not isinstance(precision, int) or abs(precision) > MAX_ROUND_DIGITS:
                raise TemplateLimit(f"round() takes a precision from -{MAX_ROUND_DIGITS} to {MAX_ROUND_DIGITS}",
                                    f"round() принимает точность от -{MAX_ROUND_DIGITS} до {MAX_ROUND_DIGITS}")
        result = run(*args, **kwargs)
        if too_big(result):
            raise _larger(f"'{name}' made a value", f"фильтр «{name}» дал значение")
        return result

    return bounded


def charged_test(run: Any) -> Callable[..., Any]:
    """The test `run`, charged to the message's meter like a filter."""

    @functools.wraps(run)
    def charged(*args: Any, **kwargs: Any) -> Any:
        for value in args:
            _charge(value)
        return run(*args, **kwargs)

    return charged


def check_time() -> None:
    """Between output chunks: the deadline holds for work that calls no filter."""
    meter = _METER.get()
    if meter is not None:
        meter.check_time()
