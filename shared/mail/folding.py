"""Long template lines folded once per campaign, so that each rendered part can usually go as 7bit.

A line of more than 998 bytes may not be sent as is (RFC 5322), and editors write whole
paragraphs, or whole documents, on one line: such a part used to be base64-encoded for every
recipient, a third larger and the costliest step of rendering. Here each template line longer than
FOLD_OVER characters is broken once, when the campaign is compiled, into lines of about WIDTH
characters, only where a line break means the same as the space it replaces:

- HTML: the spaces of ordinary text, where browsers collapse a line break into a space, and the
  spaces between a tag's attributes (never inside a quoted value). Never inside comments, <!…>
  and <?…> constructs (Outlook's conditional markup), <script>, <style>, <title> or <noscript>;
  and not at all in a document with anything that keeps whitespace as written (<pre>,
  <textarea>, a `white-space` other than normal/nowrap, SVG, a stylesheet from elsewhere);
- plain text: spaces, re-wrapping the paragraph (as mail programs wrap the text they send).

Template syntax ({{ … }}, {% … %}, {# … #}) is never touched, and a fold is kept only if the
template's tokens come out the same, its literal text differing only where a space became a line
break; otherwise the part stays as written (and goes as base64, as before). Merge fields can still
make a line too long for one contact: compose.py checks each rendered part.

Every scan here is linear in the template's length (html.parser is not: 17 s for 100 KB of "<a").
"""

from __future__ import annotations

import re

from jinja2 import Environment, TemplateSyntaxError

FOLD_OVER = 800  # longer template lines are folded; shorter ones leave room for merge fields
WIDTH = 76

_OPENERS = re.compile(r"{[{%#]")
_CLOSERS = {"{{": "}}", "{%": "%}", "{#": "#}"}
_MASK = "\x00"  # stands for template syntax while the HTML around it is scanned

# Left to right, each character taken once: what is never folded, and tags (whose attributes are).
_HTML = re.compile(r"""
    (?P<atomic><!--.*?(?:-->|\Z)
      | <(?P<raw>script|style|title|noscript)\b.*?(?:</(?P=raw)\s*>|\Z)
      | <[!?][^>]*+(?:>|\Z)
      | </(?![a-zA-Z])[^>]*+(?:>|\Z))
  | (?P<tag></?[a-zA-Z](?:=\s*+"[^"]*+(?:"|\Z)|=\s*+'[^']*+(?:'|\Z)|[^>])*+(?:>|\Z))
""", re.S | re.X | re.I)
_TAG_SPACES = re.compile(r"""=\s*+"[^"]*+(?:"|\Z)|=\s*+'[^']*+(?:'|\Z)|(?P<space> )""")
_KEEPS_WHITESPACE = re.compile(r"""<(?:pre|textarea|xmp|listing|plaintext|svg|math|link)\b|@import|xml:space
    |white-space(?!\s*:\s*(?:normal|nowrap)\s*(?:[;"'}]|!important))""", re.I | re.X)


def fold_html(env: Environment, source: str) -> str:
    """`source` with its long lines folded where a line break means a space; as written otherwise."""
    if not _has_long_line(source) or _KEEPS_WHITESPACE.search(source):
        return source
    masked = _masked(source)
    breaks: list[int] = []
    at = 0
    for span in _HTML.finditer(masked):
        breaks += _text_spaces(masked, at, span.start())
        if span.group("tag") is not None:
            breaks += [found.start() for found in _TAG_SPACES.finditer(masked, span.start(), span.end())
                       if found.group("space")]
        at = span.end()
    breaks += _text_spaces(masked, at, len(masked))
    return _checked(env, source, _fold(source, breaks))


def fold_text(env: Environment, source: str) -> str:
    """`source` with its long lines re-wrapped at spaces outside template syntax."""
    if not _has_long_line(source):
        return source
    return _checked(env, source, _fold(source, _text_spaces(_masked(source), 0, len(source))))


def _has_long_line(source: str) -> bool:
    return len(source) > FOLD_OVER and max(map(len, source.split("\n"))) > FOLD_OVER


def _masked(source: str) -> str:
    """`source` with each piece of template syntax replaced by as many _MASK characters."""
    pieces, at = [], 0
    while found := _OPENERS.search(source, at):
        end = source.find(_CLOSERS[found.group()], found.end())
        end = len(source) if end == -1 else end + 2
        pieces += [source[at : found.start()], _MASK * (end - found.start())]
        at = end
    pieces.append(source[at:])
    return "".join(pieces)


def _text_spaces(masked: str, start: int, end: int) -> list[int]:
    spaces, at = [], masked.find(" ", start, end)
    while at != -1:
        spaces.append(at)
        at = masked.find(" ", at + 1, end)
    return spaces


def _fold(source: str, breaks: list[int]) -> str:
    """`source` with the spaces at `breaks` (ascending) that wrap each long line near WIDTH made
    line breaks. A word longer than WIDTH stays whole, on a line of its own."""
    chosen: list[int] = []
    index, line_start = 0, 0
    while line_start < len(source):
        line_end = source.find("\n", line_start)
        line_end = len(source) if line_end == -1 else line_end
        while index < len(breaks) and breaks[index] < line_start:
            index += 1
        if line_end - line_start > FOLD_OVER:
            start, last = line_start, -1  # where the folded line began; the last space it could end at
            while index < len(breaks) and breaks[index] < line_end:
                at = breaks[index]
                if at - start > WIDTH and last >= start:
                    chosen.append(last)
                    start = last + 1
                    last = -1
                    continue  # `at` is weighed again against the new line
                if at - start > WIDTH:
                    chosen.append(at)
                    start = at + 1
                else:
                    last = at
                index += 1
            if line_end - start > WIDTH and last >= start:
                chosen.append(last)
        line_start = line_end + 1
    if not chosen:
        return source
    chars = list(source)
    for at in chosen:
        chars[at] = "\n"
    return "".join(chars)


def _checked(env: Environment, source: str, folded: str) -> str:
    """`folded` if the template means the same as `source` (its tokens the same, its literal text
    differing only where a space became a line break), else `source`."""
    if folded == source:
        return source
    try:
        old, new = list(env.lex(source)), list(env.lex(folded))
    except TemplateSyntaxError:
        return source
    if len(old) != len(new):
        return source
    for (_, old_kind, old_value), (_, new_kind, new_value) in zip(old, new, strict=True):
        if old_kind != new_kind:
            return source
        if old_value != new_value and (old_kind not in ("data", "whitespace")
                                       or old_value.replace("\n", " ") != new_value.replace("\n", " ")):
            return source
    return folded
