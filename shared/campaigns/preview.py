"""Rendering a campaign for one contact row before it is sent: the preview and the test send."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jinja2 import ChainableUndefined

from shared.errors import InputError
from shared.mail.compose import (
    BUILTIN_FIELDS,
    CampaignContent,
    CompiledCampaign,
    RenderFailed,
    RenderTooLarge,
    TemplateError,
    template_fields,
    trial_unsubscriber,
)
from shared.mail.template_reasons import failure_in_english, failure_in_russian, in_russian
from shared.settings import get_settings
from shared.unsubscribe import Unsubscriber

_FIELDS = {"subject": "subject", "html": "html_body", "text": "text_body"}
_PART_NAMES = {"subject": ("subject", "тема"), "html": ("HTML", "HTML"), "text": ("plain-text", "текст")}


def template_error(exc: TemplateError | RenderTooLarge, fields: dict[str, str] | None = None) -> InputError:
    """The 4xx for a template problem, naming the request field (`fields` maps the parts)."""
    field = (fields or _FIELDS)[exc.part]
    part_en, part_ru = _PART_NAMES[exc.part]
    if isinstance(exc, RenderTooLarge):
        return InputError("template_too_large", field, part=exc.part, part_en=part_en, part_ru=part_ru,
                          limit=f"{exc.limit:,}", limit_ru=f"{exc.limit:,}".replace(",", " "))
    return InputError(exc.code, field, part=exc.part, part_en=part_en, part_ru=part_ru,
                      where_en=f" (line {exc.line})" if exc.line else "",
                      where_ru=f" (строка {exc.line})" if exc.line else "",
                      reason=str(exc), reason_ru=in_russian(str(exc)), **exc.params)


def template_problem(exc: TemplateError) -> str:
    """Why a campaign paused over its template, in both languages (a worker does not know its reader's)."""
    error = template_error(exc)
    return " / ".join(error.message(lang) for lang in ("ru", "en"))


def render_error(exc: Exception) -> InputError:
    """The 4xx for a template that parses but fails for one contact's data, e.g. {{ 1 / count }}."""
    return InputError("template", "html_body", part="html", part_en="HTML", part_ru="HTML", where="",
                      reason=failure_in_english(exc), reason_ru=failure_in_russian(exc))


# Who a trial render stands for, in English and Russian.
SAMPLE = ("a sample contact", "примерного контакта")
_SAMPLE_FIELDS = {"email": "anna@example.com", "unsubscribe_url": "https://example.com/unsubscribe/sample"}


def first_recipient(email: str) -> tuple[str, str]:
    return f"the first recipient ({email})", f"первого получателя ({email})"


def first_contact(email: str) -> tuple[str, str]:
    return f"the file's first contact ({email})", f"первого контакта из файла ({email})"


def trial(subject: str, html: str, text: str | None, fields: dict[str, Any] | None, whom: tuple[str, str],
          names: dict[str, str] | None = None) -> None:
    """Compile the templates and fill them in once, as sending would, for one real contact's `fields`
    (its email among them) or, with None, a sample contact without data: a template that fails
    there would fail for every recipient, so it is refused where it is written (InputError naming
    the request field, `names` mapping the parts). Bounded by the render budget (template_limits.py)."""
    try:
        # With the unsubscribe footer and links as long as sending's: the same limits, on the same text.
        compiled = CompiledCampaign(CampaignContent("trial", "sender@example.com", "", subject, html, text),
                                    unsubscriber=trial_unsubscriber(get_settings().public_base_url))
        merged = {**_SAMPLE_FIELDS, **(fields or {})}
        compiled.trial(compiled.merge_fields(1, merged["email"], merged), sample=fields is None)
    except TemplateError as exc:
        raise template_error(exc, names) from None
    except RenderFailed as exc:
        if isinstance(exc.cause, RenderTooLarge):
            made = " (made from the HTML)", " (сделанная из HTML)"
            derived = exc.cause.part != exc.part
            raise InputError("template_always_too_large", (names or _FIELDS)[exc.part],
                             part_en=_PART_NAMES[exc.cause.part][0], part_ru=_PART_NAMES[exc.cause.part][1],
                             derived_en=made[0] if derived else "", derived_ru=made[1] if derived else "",
                             limit_en=f"{exc.cause.limit:,}",
                             limit_ru=f"{exc.cause.limit:,}".replace(",", " ")) from None
        part_en, part_ru = _PART_NAMES[exc.part]
        raise InputError("template_fails", (names or _FIELDS)[exc.part], part=exc.part, part_en=part_en,
                         part_ru=part_ru, whom_en=whom[0], whom_ru=whom[1], reason=failure_in_english(exc.cause),
                         reason_ru=failure_in_russian(exc.cause)) from None


def _recorder(seen: list[str]) -> type[ChainableUndefined]:
    """An undefined that renders empty and remembers the names it stood for, for previews."""

    class Recorder(ChainableUndefined):
        def __str__(self) -> str:
            if self._undefined_name and self._undefined_name not in seen:
                seen.append(self._undefined_name)
            return ""

    return Recorder


@dataclass(frozen=True)
class Preview:
    subject: str
    html: str
    text: str
    undefined: list[str]


def preview(campaign: dict[str, Any], from_email: str, from_name: str, email: str, fields: dict[str, Any],
            unsubscriber: Unsubscriber | None = None) -> Preview:
    """Render for one row; fields the templates use but the row lacks are listed, not fatal."""
    content = CampaignContent(campaign["id"], from_email, from_name, campaign["subject"], campaign["html_body"],
                              campaign["text_body"])
    seen: list[str] = []
    try:
        compiled = CompiledCampaign(content, unsubscriber=unsubscriber, undefined=_recorder(seen))
    except TemplateError as exc:
        raise template_error(exc) from None
    try:
        subject, text, html = compiled.render_parts(compiled.merge_fields(1, email, fields))
    except RenderTooLarge as exc:
        raise template_error(exc) from None
    except Exception as exc:  # parses, but fails for this row's data, e.g. {{ 1 / count }}
        raise render_error(exc) from None
    return Preview(subject, html, text, seen)


def missing_fields(campaign: dict[str, Any], columns: list[dict[str, Any]]) -> list[str]:
    """Merge fields the templates use that the contact file does not provide."""
    used = template_fields(campaign["subject"], campaign["html_body"], campaign["text_body"] or "")
    known = {c["field"] for c in columns} | set(BUILTIN_FIELDS)
    return sorted(used - known)
