"""Turn a campaign into wire-ready message bytes: compiled once, rendered per recipient.

Building each message with the `email` package costs about 0.4 ms; here the MIME skeleton, the
headers that do not vary and the templates are prepared once per campaign (long template lines
folded, folding.py), and a recipient's message is a few string joins: its parts usually go as
they are (7bit), base64 (done in C) only when one has non-ASCII text or a line still too long.
"""

from __future__ import annotations

import binascii
import re
import secrets
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.header import Header
from email.utils import formataddr, formatdate
from typing import Any

from jinja2 import ChainableUndefined, StrictUndefined, Undefined, UndefinedError, meta
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import escape

from shared.mail.folding import fold_html, fold_text
from shared.mail.template_checks import (
    ALLOWED_FILTERS,
    ALLOWED_TESTS,
    check_html_elements,
    checked_tree,
    footer_counted,
    too_deep,
)
from shared.mail.template_checks import TemplateError as TemplateError  # where callers have always found it
from shared.mail.template_limits import (
    RENDER_SECONDS,
    RenderTooSlow,
    TemplateLimit,
    bounded_filter,
    charged_test,
    check_time,
    metering,
    part_limit,
    sized,
)
from shared.mail.template_limits import RenderTooLarge as RenderTooLarge  # where callers have always found it
from shared.mail.text_part import html_to_text as html_to_text  # where callers have always found it
from shared.unsubscribe import Unsubscriber

BUILTIN_FIELDS = ("email", "unsubscribe_url")
_SHORT_ADDRESS = "a@b.ru"  # what a part must fit with: a template over its limit even then is too large for anyone
# The footer speaks the message's language: Russian when its subject or body is written in
# Cyrillic, English otherwise (a recipient's own language is not known).
_FOOTER_WORDS = {"en": "Unsubscribe", "ru": "Отписаться от рассылки"}
_CYRILLIC = re.compile("[а-яёА-ЯЁ]")
_FOOTER = ('\n<p style="font-size:12px;color:#666;margin-top:24px">'
           '<a href="{{{{ unsubscribe_url }}}}">{words}</a></p>\n')

_HAS_TEMPLATE = re.compile(r"{[{%#]")
_PLAIN_FIELD = re.compile(r"{{-?\s*([^\W\d]\w*)\s*-?}}")
_LINE_BREAKS = re.compile(r"[\r\n]+")


class RenderFailed(ValueError):
    """A template that compiles but fails when filled in for a contact; `part` names which, and
    `cause` is what Jinja or a filter raised (its words are the English reason)."""

    def __init__(self, part: str, cause: Exception) -> None:
        super().__init__(str(cause))
        self.part = part
        self.cause = cause


# Braces the author wrote as entities are literal text in the HTML; once html_to_text decodes
# them they would read as template syntax in the derived text, so they are carried through as
# private-use characters and come out as Jinja string literals.
_OPEN_BRACE = re.compile(r"&(?:#0*123(?![0-9])|#[xX]0*7[bB](?![0-9a-fA-F])|lbrace;|lcub;);?")
_CLOSE_BRACE = re.compile(r"&(?:#0*125(?![0-9])|#[xX]0*7[dD](?![0-9a-fA-F])|rbrace;|rcub;);?")
_OPEN_MARK, _CLOSE_MARK = "\ue000", "\ue001"
# A plain brace right before a marked one would join its literal into "{{{" (`{&#123; x }}`):
# it is carried as a literal too.
_BRACE_BEFORE_MARK = re.compile("(?<!{){(?=[\ue000\ue001])")


def text_template(html: str) -> str:
    """The plain-text template derived from an HTML template, for campaigns without their own;
    TemplateError when the HTML has more elements than deriving it may cost."""
    check_html_elements(html)
    marked = html.replace(_OPEN_MARK, "").replace(_CLOSE_MARK, "")
    marked = _CLOSE_BRACE.sub(_CLOSE_MARK, _OPEN_BRACE.sub(_OPEN_MARK, marked))
    derived = _BRACE_BEFORE_MARK.sub(_OPEN_MARK, html_to_text(marked))
    return derived.replace(_OPEN_MARK, "{{ '{' }}").replace(_CLOSE_MARK, "{{ '}' }}")


class _Renderer:
    """One template. Literal text is returned as is; a template that only substitutes plain
    `{{ name }}` fields is filled by joining pieces (about ten times faster than Jinja, which
    matters once per recipient); anything else is rendered by the sandboxed Jinja template."""

    def __init__(self, env: SandboxedEnvironment, source: str, part: str, *, fast: bool,
                 fold: Callable[[SandboxedEnvironment, str], str] | None = None) -> None:
        self._part = self.part = part
        self._limit = part_limit(part)
        self._template = None
        self._pieces: list[str] | None = None
        self._wire: list[str] | None = None  # the pieces with CRLF line ends, for encoded()
        self._literal_size = 0
        self._longest_line = 0  # of the literal text alone (merge fields empty)
        self._escape = env.autoescape is True
        self.plain = True  # literal text or plain fields: cheap whatever the contact's data
        if not _HAS_TEMPLATE.search(source):
            self.source = fold(env, source) if fold else source
            self._prepare_wire([self.source])
            return
        tree = checked_tree(env, source, part)  # vetted as written: folding changes no token
        if fold is not None and (folded := fold(env, source)) != source:
            source, tree = folded, env.parse(folded)
        self.source = source
        try:
            self._template = env.from_string(tree)
        except (RecursionError, SyntaxError, MemoryError):
            raise too_deep(part) from None
        self.plain = False
        if fast and "{%" not in source and "{#" not in source:
            pieces = _PLAIN_FIELD.split(source)
            if not any("{{" in literal or "}}" in literal for literal in pieces[::2]):
                self._pieces = pieces  # literal, field, literal, field, …, literal
                self._prepare_wire(pieces)
                self.plain = True

    def _prepare_wire(self, pieces: list[str]) -> None:
        self._literal_size = sum(map(len, pieces[::2]))
        self._wire = [_lf(piece).replace("\n", "\r\n") if index % 2 == 0 else piece
                      for index, piece in enumerate(pieces)]
        self._longest_line = max(map(len, _lf("".join(pieces[::2])).split("\n")))

    def render(self, fields: Mapping[str, Any]) -> str:
        """The part for one contact; RenderTooLarge once it passes its limit (part_limit)."""
        if self._pieces is not None:
            return self._filled(self._pieces, fields)[0]
        if self._template is None:
            return self.source
        chunks, size = [], 0
        for chunk in self._template.generate(fields):
            check_time()
            size += len(chunk)
            if size > self._limit:
                raise RenderTooLarge(self._part)
            chunks.append(chunk)
        return "".join(chunks)

    def encoded(self, fields: Mapping[str, Any]) -> tuple[bytes, bytes]:
        """`encode_body(self.render(fields))`, in less time for plain fields: their literal text
        has CRLF line ends already, and when no field holds a line break and all of them together
        could not make a line too long, the part needs neither converting nor measuring."""
        if self._wire is None:
            return encode_body(self.render(fields))
        text, added, breaks = self._filled(self._wire, fields)
        if not breaks and self._longest_line + added <= _MAX_LINE and text.isascii():
            return b"7bit", text.encode("ascii")
        return encode_body(text)

    def _filled(self, pieces: list[str], fields: Mapping[str, Any]) -> tuple[str, int, bool]:
        """`pieces` with each field's name replaced by its value; with the characters the values
        added, and whether one held a line break."""
        out = pieces.copy()
        size, escaping, breaks = self._literal_size, self._escape, False
        for index in range(1, len(out), 2):
            value = fields.get(out[index])
            text = value if type(value) is str else "" if value is None else str(value)
            if escaping:
                text = _escaped(text)
            if "\n" in text or "\r" in text:
                breaks = True
            out[index] = text
            size += len(text)
            if size > self._limit:  # sizes as render() counts them, CRLF or not
                raise RenderTooLarge(self._part)
        return "".join(out), size - self._literal_size, breaks


def _lf(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _escaped(text: str) -> str:
    # Most fields (names, addresses, the unsubscribe link) have nothing to escape: markupsafe's
    # Markup is then built for nothing.
    if "&" in text or "<" in text or ">" in text or "'" in text or '"' in text:
        return str(escape(text))
    return text


def template_fields(*sources: str) -> set[str]:
    """Every merge field the templates use; raises TemplateError for broken ones."""
    env = SandboxedEnvironment()
    names: set[str] = set()
    for part, source in zip(("subject", "html", "text"), sources, strict=False):
        tree = checked_tree(env, source, part)
        names |= meta.find_undeclared_variables(tree)
    return names


def with_unsubscribe_footer(html: str, text: str | None, subject: str = "") -> tuple[str, str | None]:
    """Add a visible unsubscribe link unless the author placed {{ unsubscribe_url }} already."""
    if "unsubscribe_url" in html:
        return html, text
    words = _FOOTER_WORDS["ru" if _CYRILLIC.search(subject) or _CYRILLIC.search(html) else "en"]
    footer = _FOOTER.format(words=words)
    at = html.lower().rfind("</body>")
    html = html[:at] + footer + html[at:] if at >= 0 else html + footer
    if text is not None and "unsubscribe_url" not in text:
        text += f"\n\n--\n{words}: {{{{ unsubscribe_url }}}}\n"
    return html, text


def trial_unsubscriber(base_url: str) -> Unsubscriber:
    """An Unsubscriber for trial renders: its links are exactly as long as sending's under `base_url`
    (their length depends on nothing else but the address), and its key signs nothing anyone gets."""
    return Unsubscriber(b"trial only", base_url, uuid.UUID(int=0), 0)


def _environments(undefined: type[Undefined]) -> tuple[SandboxedEnvironment, SandboxedEnvironment]:
    plain = SandboxedEnvironment(autoescape=False, undefined=undefined, keep_trailing_newline=True,
                                 finalize=sized)
    html = SandboxedEnvironment(autoescape=True, undefined=undefined, keep_trailing_newline=True, finalize=sized)
    for env in (plain, html):
        for name in ALLOWED_FILTERS:
            env.filters[name] = bounded_filter(name, env.filters[name])
        for name in ALLOWED_TESTS:
            env.tests[name] = charged_test(env.tests[name])
    return plain, html


@dataclass(frozen=True)
class CampaignContent:
    campaign_id: str
    from_email: str
    from_name: str
    subject: str
    html: str
    text: str | None = None


_MAX_LINE = 998
_ONE_CLICK = b">\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"


def encode_body(text: str) -> tuple[bytes, bytes]:
    """(Content-Transfer-Encoding, body) with CRLF line endings: ASCII text with lines of at most
    998 characters goes as is ("7bit"), anything else as base64 — compact for Cyrillic, and
    several times cheaper than quoted-printable per message."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    if text.isascii() and max(map(len, lines)) <= _MAX_LINE:
        return b"7bit", "\r\n".join(lines).encode("ascii")
    encoded = binascii.b2a_base64("\r\n".join(lines).encode("utf-8"), newline=False)
    return b"base64", b"\r\n".join([encoded[i : i + 76] for i in range(0, len(encoded), 76)])


def _encode_header(value: str) -> bytes:
    if "\n" in value or "\r" in value:
        value = _LINE_BREAKS.sub(" ", value)
    if value.isascii() and len(value) < 900:
        return value.encode("ascii")
    return Header(value, "utf-8", header_name="Subject").encode(linesep="\r\n").encode("ascii")


class CompiledCampaign:
    """A campaign ready to render; construction raises TemplateError for broken templates.

    `strict=True` makes undefined merge fields an error; sending renders them empty, since
    undefined fields are reported at preview and refused at start. `undefined` lets a preview
    substitute its own class that records the names.
    """

    def __init__(self, content: CampaignContent, *, strict: bool = False,
                 unsubscriber: Unsubscriber | None = None, undefined: type[Undefined] | None = None) -> None:
        html, text = content.html, content.text
        if unsubscriber is not None:
            html, text = with_unsubscribe_footer(html, text, content.subject)
        plain_env, html_env = _environments(undefined or (StrictUndefined if strict else ChainableUndefined))
        fast = not strict and undefined is None
        self.content = content
        self.unsubscriber = unsubscriber
        self._subject = _Renderer(plain_env, content.subject, "subject", fast=fast)
        try:  # with the footer, as sending compiles it: the API's trial goes through here too
            check_html_elements(html)  # before any work that grows with it
            text_source = text if text else text_template(html)  # from the HTML as written
            self._html = _Renderer(html_env, html, "html", fast=fast, fold=fold_html)
            self._text = _Renderer(plain_env, text_source, "text", fast=fast, fold=fold_text)
        except TemplateError as exc:
            if html is content.html and text is content.text:
                raise
            raise footer_counted(exc, html_env, plain_env, content.html, content.text) from None
        self.plain = self._subject.plain and self._html.plain and self._text.plain
        self._domain = content.from_email.rpartition("@")[2].lower()
        boundary = "=_sendpy_" + secrets.token_hex(12)  # "=_" occurs in neither base64 nor 7bit text
        self._head = (
            "From: "
            + formataddr((content.from_name, content.from_email), charset="utf-8")
            + "\r\nMIME-Version: 1.0\r\n"
            + f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n'
        ).encode("ascii")
        # From the blank line after the headers to each part's Content-Transfer-Encoding.
        self._text_open = (f"\r\nThis is a multi-part message in MIME format.\r\n\r\n--{boundary}\r\n"
                           'Content-Type: text/plain; charset="utf-8"\r\nContent-Transfer-Encoding: ').encode("ascii")
        self._html_open = (f'\r\n--{boundary}\r\nContent-Type: text/html; charset="utf-8"\r\n'
                           "Content-Transfer-Encoding: ").encode("ascii")
        self._close = f"\r\n--{boundary}--\r\n".encode("ascii")
        self._date_second = -1
        self._date = b""

    def message_id(self, position: int, to_address: str = "") -> str:
        """`<campaign.position.tag@domain>`: the keyed tag (shared/unsubscribe.py) is what a bounce
        report must carry back to be ours; without a signing key there is no tag, and no report
        is ever matched to the message."""
        if self.unsubscriber is None:
            return f"<{self.content.campaign_id}.{position}@{self._domain}>"
        tag = self.unsubscriber.message_tag(position, to_address)
        return f"<{self.content.campaign_id}.{position}.{tag}@{self._domain}>"

    def render_parts(self, fields: Mapping[str, Any]) -> tuple[str, str, str]:
        """(subject, text, html) for one recipient's fields; TemplateLimit when the templates
        would take more than their share of work or time for these fields."""
        if self.plain:  # no filters and no conditions: nothing to meter, and sizes are checked as parts are joined
            return self._subject.render(fields), self._text.render(fields), self._html.render(fields)
        deadline = time.perf_counter() + RENDER_SECONDS
        parts = []
        for renderer in (self._subject, self._text, self._html):
            metering(deadline)  # each part gets its own filter work, the message one deadline
            parts.append(renderer.render(fields))
        subject, text, html = parts
        return subject, text, html

    def trial(self, fields: Mapping[str, Any], *, sample: bool = False) -> None:
        """Fill every part in once for one contact's merged fields (merge_fields), as sending would,
        with the same size and filter-work limits; RenderFailed names the part when that fails. A
        part over a limit only with this contact's own fields is their data, not the template: it
        passes, as does running out of time (a busy machine is no fault of the template). With a
        `sample` contact (no real data yet), a field it lacks cannot be judged either."""
        deadline = time.perf_counter() + RENDER_SECONDS
        for renderer in (self._subject, self._html, self._text):  # the text derived from the HTML is blamed last
            metering(deadline)
            try:
                renderer.render(fields)
            except RenderTooSlow:
                continue
            except (RenderTooLarge, TemplateLimit) as exc:
                if self._over_without_data(renderer, fields):
                    raise RenderFailed(self._written_part(renderer), exc) from None
            except UndefinedError as exc:
                if not sample:
                    raise RenderFailed(self._written_part(renderer), exc) from None
            except Exception as exc:
                raise RenderFailed(self._written_part(renderer), exc) from None

    @staticmethod
    def _over_without_data(renderer: _Renderer, fields: Mapping[str, Any]) -> bool:
        """Whether the part passes a size or work limit with only the fields every recipient has."""
        builtin = {name: fields[name] for name in BUILTIN_FIELDS if name in fields}
        if "email" in builtin:  # this recipient's long address is theirs, as their columns are
            builtin["email"] = _SHORT_ADDRESS
        if builtin == fields:
            return True  # nothing but those already
        metering(time.perf_counter() + RENDER_SECONDS)
        try:
            renderer.render(builtin)
        except (RenderTooLarge, TemplateLimit) as exc:
            return not isinstance(exc, RenderTooSlow)
        except Exception:  # judged with the contact's data already: only the limits are asked here
            return False
        return False

    def _written_part(self, renderer: _Renderer) -> str:
        # A text part derived from the HTML fails where the author wrote it: in the HTML.
        return "html" if renderer is self._text and not self.content.text else renderer.part

    def _date_header(self) -> bytes:
        now = int(time.time())
        if now != self._date_second:
            self._date_second = now
            self._date = formatdate(now, localtime=False, usegmt=True).encode("ascii")
        return self._date

    def merge_fields(self, position: int, to_address: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        merged = {**fields, "email": to_address}
        if self.unsubscriber is not None:
            merged["unsubscribe_url"] = self.unsubscriber.url(position, to_address)
        return merged

    def render(self, position: int, to_address: str, fields: Mapping[str, Any]) -> bytes:
        """The complete message for one recipient, CRLF line endings, ready for DATA."""
        merged = {**fields, "email": to_address}
        if self.unsubscriber is not None:
            url = self.unsubscriber.url(position, to_address)
            merged["unsubscribe_url"] = url
            tail = b"List-Unsubscribe: <" + url.encode("ascii") + _ONE_CLICK
        else:
            tail = b""
        if self.plain:  # as render_parts, with each part encoded as it is filled in
            subject = self._subject.render(merged)
            text_encoding, text_body = self._text.encoded(merged)
            html_encoding, html_body = self._html.encoded(merged)
        else:
            subject, text, html = self.render_parts(merged)
            text_encoding, text_body = encode_body(text)
            html_encoding, html_body = encode_body(html)
        return b"".join([
            self._head, b"To: ", to_address.encode("utf-8"), b"\r\nSubject: ", _encode_header(subject),
            b"\r\nDate: ", self._date_header(), b"\r\nMessage-ID: ",
            self.message_id(position, to_address).encode("ascii"), b"\r\n", tail,
            self._text_open, text_encoding, b"\r\n\r\n", text_body,
            self._html_open, html_encoding, b"\r\n\r\n", html_body, self._close,
        ])
