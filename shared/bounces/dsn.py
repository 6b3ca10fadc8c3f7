"""Recognise bounce reports among the mails that arrive in a sender's INBOX (pure logic, never raises).

In order: read receipts are not bounces. An RFC 3464 report (message/(global-)delivery-status) is
authoritative; one whose recipients were all delivered/relayed/expanded is a success notice, not a
bounce. Auto-replies (Auto-Submitted other than "no", X-Autoreply, an auto-reply subject) are not
bounces. Plain-text reports are matched by the wording of the software that wrote them
(Exchange/Office 365, Gmail, Yandex, Mail.ru, Postfix, Exim, qmail) and read with one
line-structure reader; then flufl.bounce (GNU Mailman's detectors) and last a generic reader get
what a mailer daemon sent (its From or an empty Return-Path) — never a person's reply, whatever
bounce words the subject it quotes holds.

Our message is found by its Message-ID `<{campaign_uuid}.{position}.{tag}@{domain}>` (or an
`X-Sendpy-Recipient: {campaign_uuid}.{position}.{tag}` header): in the returned original, then
quoted in the report's text, then in the bounce's In-Reply-To/References. The tag is a keyed MAC
(shared/unsubscribe.py) that only record.py can check; ids without one (mail sent before tags, or a
guess) are still read here, and record.py acts on none of them.

One recipient: the enhanced status code decides (5.x.x hard, 4.x.x soft), else the basic SMTP code,
else the wording ("mailbox full" soft 4.2.2, "user unknown" hard 5.1.1, spam/policy 5.7.1, ...),
else the report itself (failed: hard). A delay notice (`Action: delayed`, or a report worded as a
warning) is recognised but marked `delayed`: the mail may still arrive, so it is not a bounce.
`Action: failed` with a 4.x.x status (given up after temporary errors) is soft.

Only the first MAX_INPUT_BYTES are read and every text is capped before a pattern runs over it:
time grows linearly with the input, however malformed.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import html
import quopri
import re
import uuid
from dataclasses import dataclass
from email import message_from_bytes
from email.header import Header, decode_header
from email.message import Message
from email.parser import HeaderParser
from email.policy import compat32
from email.utils import parseaddr

from shared.bounces.dsn_rules import (
    ADDR_RE,
    AUTO_REPLY_SUBJECT_RE,
    DELAY_RE,
    ENHANCED_RE,
    FAILURE_RE,
    MAX_DEPTH,
    MAX_PARTS,
    MAX_RECIPIENTS,
    MAX_REPORT_CHARS,
    ORIGINAL_RE,
    SHAPES,
    SUCCESS_RE,
    BouncedRecipient,
    View,
    classify,
    clean,
    daemon_report,
    daemon_sender,
    flufl_recipients,
    recipient_blocks,
    remote_words,
    squash,
    text_recipients,
)

__all__ = ["MAX_INPUT_BYTES", "Bounce", "BouncedRecipient", "parse_bounce"]

MAX_INPUT_BYTES = 4 * 1024 * 1024  # the caller sends ~2 MB; past this nothing is read
MAX_PART_BYTES = 512 * 1024  # of one decoded text part


@dataclass(frozen=True)
class Bounce:
    """A delivery failure or delay report."""

    recipients: list[BouncedRecipient]  # empty only for a known shape naming no readable recipient
    campaign_id: uuid.UUID | None  # from our Message-ID / X-Sendpy-Recipient in the returned headers
    position: int | None
    shape: str  # "rfc3464", "exchange", "gmail", "yandex", "mailru", "postfix", "exim", "qmail", "flufl", "generic"
    tag: str | None = None  # the keyed tag beside them (lower case), unchecked: record.py checks it


def parse_bounce(raw: bytes) -> Bounce | None:
    """None for anything that is not a delivery failure/delay report (auto-replies, out-of-office,
    ordinary mail, read receipts (disposition-notification), delivery *success* DSNs
    (Action: delivered/relayed/expanded)), never raises for any input."""
    try:
        if isinstance(raw, str):  # a caller's slip: read it as the bytes it stands for
            raw = raw.encode("utf-8", "surrogateescape")
        return _parse(bytes(raw[:MAX_INPUT_BYTES]))
    except Exception:  # malformed beyond what the rules expect: not a bounce we can read
        return None


_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_KEYED = r"(?:\.([A-Za-z2-7]{16}))?"  # the tag: 80 bits in lower-case base32, when the message had one
_TAG_VALUE_RE = re.compile(rf"\s*({_UUID})\.(\d{{1,9}}){_KEYED}\b")
_MSGID_VALUE_RE = re.compile(rf"\s*<({_UUID})\.(\d{{1,9}}){_KEYED}@[^\s<>]{{1,255}}>")
_TAG_IN_TEXT_RE = re.compile(rf"^[ \t>]*X-Sendpy-Recipient:\s*({_UUID})\.(\d{{1,9}}){_KEYED}\b", re.I | re.M)
_MSGID_IN_TEXT_RE = re.compile(rf"^[ \t>]*Message-ID:\s*<({_UUID})\.(\d{{1,9}}){_KEYED}@", re.I | re.M)
_MSGID_ANYWHERE_RE = re.compile(rf"<({_UUID})\.(\d{{1,9}}){_KEYED}@[^\s<>]{{1,255}}>")
_DSN_FIELD_RE = re.compile(r"^(?:Final|Original)-Recipient:", re.I | re.M)
_CYRILLIC_8BIT = frozenset({"cp1251", "koi8-r", "koi8-u", "iso8859-5", "cp866", "mac-cyrillic"})
_RECIPIENT_FIELDS = ("original-recipient", "final-recipient")


def _parse(data: bytes) -> Bounce | None:
    view = _read(message_from_bytes(data, policy=compat32))
    if view.dsn_texts:
        recipients, saw_success = _rfc3464(view)
        if recipients:
            return _bounce(view, recipients, "rfc3464")
        if saw_success:
            return None
    if view.has_mdn or _param(view.msg, "report-type") == "disposition-notification" or _is_auto_reply(view):
        return None
    for text in (view.report, view.subject):
        if SUCCESS_RE.search(text) and not FAILURE_RE.search(view.subject + "\n" + view.report):
            return None
    matched: str | None = None
    delayed = bool(DELAY_RE.search(view.subject) or DELAY_RE.search(view.report))
    for name, recognises in SHAPES:
        if recognises(view):
            if recipients := text_recipients(view.report, delayed):
                return _bounce(view, recipients, name)
            matched = matched or name
    if not daemon_report(view):  # a person's reply, whatever words our subject it quotes holds
        return None
    if recipients := flufl_recipients(data, view.report, delayed):
        return _bounce(view, recipients, "flufl")
    if FAILURE_RE.search(view.subject) or FAILURE_RE.search(view.report):
        if recipients := text_recipients(view.report, delayed):
            return _bounce(view, recipients, "generic")
    if matched is not None and _find_campaign(view)[0] is not None:
        return _bounce(view, [], matched)  # a known shape naming our message, but no readable recipient
    return None


def _bounce(view: View, recipients: list[BouncedRecipient], shape: str) -> Bounce:
    campaign_id, position, tag = _find_campaign(view)
    return Bounce(recipients[:MAX_RECIPIENTS], campaign_id, position, shape, tag)


def _read(msg: Message) -> View:
    """One bounded walk (an explicit stack, not Message.walk()) that tells report from original."""
    view = View(msg=msg, subject=_header_text(msg, "Subject"))
    name, address = parseaddr(_header_text(msg, "From"))
    view.sender, view.sender_name = address.strip().lower(), name.strip()
    stack: list[tuple[Message, int, bool]] = [(msg, 0, False)]
    visited = 0
    while stack and visited < MAX_PARTS:
        part, depth, returned = stack.pop()
        visited += 1
        try:
            ctype = part.get_content_type().lower()
        except Exception:
            ctype = "text/plain"
        payload = part.get_payload()
        if ctype in ("message/delivery-status", "message/global-delivery-status"):
            if not returned:
                view.dsn_texts.append(_dsn_part_text(part))
        elif ctype == "message/disposition-notification":
            view.has_mdn = view.has_mdn or not returned
        elif ctype in ("text/rfc822-headers", "message/rfc822-headers"):
            view.returned_headers.append(HeaderParser(policy=compat32).parsestr(_part_text(part), headersonly=True))
        elif part.is_multipart() and isinstance(payload, list):
            inner_returned = returned or ctype in ("message/rfc822", "message/global")
            for child in reversed(payload if depth < MAX_DEPTH else []):
                if isinstance(child, Message):
                    if inner_returned and not returned:
                        view.returned_headers.append(child)
                    stack.append((child, depth + 1, inner_returned))
        elif ctype in ("message/rfc822", "message/global"):  # not parsed as a message: still look for our IDs
            view.returned_texts.append(_part_text(part))
        elif ctype.startswith("multipart/"):
            # Its boundary is missing or wrong: one text, read as the report (and a DSN if it has the fields).
            text = _part_text(part)
            (view.returned_texts if returned else view.plain).append(text)
            if not returned and _DSN_FIELD_RE.search(text, 0, MAX_REPORT_CHARS):
                view.dsn_texts.append(text)
        elif ctype == "text/html":
            (view.returned_texts if returned else view.html).append(_html_to_text(_part_text(part)))
        elif ctype.startswith("text/"):
            (view.returned_texts if returned else view.plain).append(_part_text(part))
    # The report is the first text part (a later one may be the original, sent as text).
    texts = view.plain or view.html
    if texts:
        text = texts[0].replace("\r\n", "\n").replace("\r", "\n")
        found = ORIGINAL_RE.search(text, 0, MAX_REPORT_CHARS)
        view.report = text[: found.start() if found else MAX_REPORT_CHARS]
    return view


def _param(msg: Message, name: str) -> str:
    try:
        value = msg.get_param(name)
    except Exception:
        return ""
    return value.strip().lower() if isinstance(value, str) else ""


def _part_text(part: Message) -> str:
    """A leaf part's body as text: transfer encoding undone, charset applied (or guessed)."""
    try:
        decoded = part.get_payload(decode=True)
    except Exception:
        decoded = None
    if not isinstance(decoded, bytes):
        payload = part.get_payload()
        if not isinstance(payload, str):
            return ""
        decoded = payload.encode("utf-8", "surrogateescape")
    try:
        charset = part.get_content_charset()
    except Exception:
        charset = None
    return _decode_bytes(decoded[:MAX_PART_BYTES], charset)


def _decode_bytes(data: bytes, charset: str | None) -> str:
    """Never fails: the declared charset if it fits, else UTF-8, else the more plausible of cp1251
    and koi8-r (Russian mail is often mislabelled or unlabelled)."""
    if data.isascii():
        return data.decode("ascii")
    try:
        info = codecs.lookup((charset or "").strip().strip('"').lower())
        codec = info.name if getattr(info, "_is_text_encoding", True) else None
    except (LookupError, ValueError, TypeError):
        codec = None
    if codec is not None and codec not in _CYRILLIC_8BIT:
        try:
            return data.decode(codec)
        except Exception:  # noqa: S110 -- a wrong label: fall through to the guesses
            pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    candidates = ["cp1251", "koi8-r"] + ([codec] if codec in _CYRILLIC_8BIT else [])

    def lowercase_cyrillic(name: str) -> tuple[int, bool]:
        return sum(1 for ch in data[:65536].decode(name, "replace") if "а" <= ch <= "я" or ch == "ё"), name == codec

    return data.decode(max(candidates, key=lowercase_cyrillic), "replace")


def _value_text(value: object) -> str:
    """A header value as compat32 gives it: a str, or a Header when it had raw 8-bit bytes."""
    if isinstance(value, Header):
        return "".join(_decode_bytes(c, s) if isinstance(c, bytes) else c for c, s in decode_header(value))
    text = str(value)
    if any("\udc80" <= ch <= "\udcff" for ch in text):  # raw 8-bit bytes, surrogate-escaped
        text = _decode_bytes(text.encode("utf-8", "surrogateescape"), None)
    return text


def _header_text(msg: Message, name: str) -> str:
    """A header as readable text: RFC 2047 words decoded, raw 8-bit bytes guessed, unfolded."""
    try:
        pieces: list[str] = []
        for chunk, charset in decode_header(_value_text(msg.get(name, ""))[:4000]):
            if isinstance(chunk, str):
                pieces.append(chunk)
            elif charset:
                pieces.append(_decode_bytes(chunk, charset))
            else:  # the text between encoded words, as decode_header hands it back
                try:
                    pieces.append(chunk.decode("raw-unicode-escape"))
                except UnicodeDecodeError:
                    pieces.append(chunk.decode("latin-1"))
        return squash("".join(pieces))[:2000]
    except Exception:
        return ""


def _html_to_text(markup: str) -> str:
    markup = re.sub(r"(?i)<br\s*/?>|</(?:p|div|tr|li|h\d|table|td)\s*>", "\n", markup)
    return html.unescape(re.sub(r"<[^<>]{0,2000}>", "", markup))


def _dsn_part_text(part: Message) -> str:
    """A delivery-status part as text. compat32 splits it into header blocks: put them back."""
    payload = part.get_payload()
    if not isinstance(payload, list):
        return _part_text(part)
    chunks = []
    for block in payload:
        if isinstance(block, Message):
            rest = block.get_payload()
            lines = [f"{key}: {_value_text(value)}" for key, value in block.items()]
            chunks.append("\n".join([*lines, rest] if isinstance(rest, str) and rest.strip() else lines))
    text = "\n\n".join(chunks)
    encoding = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
    if encoding == "base64":  # the parser read the encoded lines as a block's body
        try:
            text = _decode_bytes(base64.b64decode(re.sub(r"[^A-Za-z0-9+/=]", "", text) + "=="), "utf-8")
        except (binascii.Error, ValueError):
            text = ""
    elif encoding == "quoted-printable":
        text = _decode_bytes(quopri.decodestring(text.encode("utf-8", "surrogateescape")), "utf-8")
    return clean(text)


def _dsn_records(text: str) -> list[dict[str, str]]:
    """Per-recipient field blocks, tolerant of folded fields and of missing blank lines."""
    text = re.sub(r"\n[ \t]+(?=\S)", " ", text.replace("\r\n", "\n").replace("\r", "\n")[:MAX_REPORT_CHARS])
    records: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in [*text.split("\n"), ""]:
        name, sep, value = line.partition(":")
        name = name.strip().lower()
        starts_another = name in _RECIPIENT_FIELDS and (
            "final-recipient" in current or (name == "original-recipient" and name in current)
        )
        if not line.strip() or starts_another:
            if any(f in current for f in _RECIPIENT_FIELDS):
                records.append(current)
            current = {}
        if sep and name and " " not in name and len(name) <= 40:
            current.setdefault(name, value.strip())
    return records


def _typed_value(value: str) -> str:
    """ "rfc822; <a@b>" → "<a@b>"; "smtp; 550 ..." → "550 ..."."""
    head, sep, rest = value.strip().partition(";")
    return rest.strip() if sep and re.fullmatch(r"\s*[A-Za-z][\w.-]{0,30}\s*", head) else value.strip()


def _rfc3464(view: View) -> tuple[list[BouncedRecipient], bool]:
    recipients: list[BouncedRecipient] = []
    seen: set[str] = set()
    saw_success = False
    blocks: dict[str, str] | None = None  # the text report's, read only if a Diagnostic-Code is missing
    for record in (r for text in view.dsn_texts for r in _dsn_records(text)):
        action = (re.split(r"[\s(;]", record.get("action", "").strip().lower(), maxsplit=1) or [""])[0]
        found = ENHANCED_RE.search(record.get("status", ""))
        status = found.group(1) if found else None
        if not action and status:
            action = {"2": "delivered", "4": "delayed", "5": "failed"}[status[0]]
        if action in ("delivered", "relayed", "expanded"):
            saw_success = True
        if action not in ("failed", "failure", "error", "delayed"):
            continue
        candidates = (ADDR_RE.search(_typed_value(record.get(f, ""))[:1000]) for f in _RECIPIENT_FIELDS)
        address = next((clean(m.group(0)).strip(".'\"") for m in candidates if m), None)
        if not address or address.lower() in seen:
            continue
        seen.add(address.lower())
        diagnostic, block = squash(_typed_value(record.get("diagnostic-code", ""))), ""
        if not diagnostic:
            blocks = recipient_blocks(view.report) if blocks is None else blocks
            block = blocks.get(address.lower(), "")
            diagnostic = remote_words(block)
        recipients.append(classify(address, status, diagnostic, block, action == "delayed", True))
    return recipients, saw_success


def _is_auto_reply(view: View) -> bool:
    try:
        names = {str(name).lower() for name in view.msg.keys()[:500]}
    except Exception:
        names = set()
    if names & {"x-autoreply", "x-autorespond", "x-autoresponder", "x-auto-reply", "x-mailru-autoreply"}:
        return True
    if _header_text(view.msg, "Precedence").lower() == "auto_reply":
        return True
    if daemon_sender(view):  # Exim and others mark their own plain-text bounces auto-replied
        return False
    # Anything else automatic, or titled as an auto-reply, is never a bounce — whatever bounce
    # words the subject of ours it answers holds («Ваш заказ не доставлен?»).
    auto_submitted = _header_text(view.msg, "Auto-Submitted").lower().partition(";")[0].strip()
    return auto_submitted not in ("", "no") or bool(AUTO_REPLY_SUBJECT_RE.search(view.subject))


def _find_campaign(view: View) -> tuple[uuid.UUID | None, int | None, str | None]:
    """Our X-Sendpy-Recipient / Message-ID: in the returned headers, then quoted in any text, then
    the bounce's own In-Reply-To/References."""
    for headers in view.returned_headers:
        for name, pattern in (("X-Sendpy-Recipient", _TAG_VALUE_RE), ("Message-ID", _MSGID_VALUE_RE)):
            try:
                values = [clean(_value_text(v))[:1000] for v in (headers.get_all(name) or [])[:5]]
            except Exception:
                values = []
            for found in filter(None, map(pattern.match, values)):
                if ids := _ids(found):
                    return ids
    texts = [*view.plain, *view.html, *view.returned_texts, *view.dsn_texts]
    for pattern in (_TAG_IN_TEXT_RE, _MSGID_IN_TEXT_RE, _MSGID_ANYWHERE_RE):
        for found in filter(None, map(pattern.search, texts)):
            if ids := _ids(found):
                return ids
    for name in ("In-Reply-To", "References"):
        if ids := _ids(_MSGID_ANYWHERE_RE.search(_header_text(view.msg, name))):
            return ids
    return None, None, None


def _ids(found: re.Match[str] | None) -> tuple[uuid.UUID, int, str | None] | None:
    if found is None:
        return None
    try:
        return uuid.UUID(found.group(1)), int(found.group(2)), found.group(3) and found.group(3).lower()
    except ValueError:
        return None
