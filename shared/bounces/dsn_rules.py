"""The wording of bounce reports: the patterns, the recipient-line reader, and the classification
of one recipient (see dsn.py for the order they are tried in and what each decides)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from email.policy import compat32

from flufl.bounce import all_failures


def _rx(*alternatives: str, flags: re.RegexFlag = re.I) -> re.Pattern[str]:
    return re.compile("|".join(alternatives), flags)


MAX_LINE_CHARS = 2000
MAX_DIAGNOSTIC = 500
MAX_PARTS, MAX_DEPTH, MAX_RECIPIENTS = 400, 24, 200
FLUFL_BYTES = 256 * 1024  # flufl.bounce reads its own parse of this much
MAX_REPORT_CHARS = 64 * 1024  # of the human-readable report the recipient rules read


@dataclass(frozen=True)
class BouncedRecipient:
    """One recipient the report says was not (yet) delivered."""

    address: str  # as the report gives it: Original-/Final-Recipient, or from the text
    status: str | None  # enhanced status code "5.1.1" / "4.2.2", or None if none found or implied
    diagnostic: str  # the remote server's words (Diagnostic-Code or the quoted reply), <= 500 chars
    permanent: bool  # hard (5.x.x / Action: failed) vs soft (4.x.x, or Action: failed after retries)
    delayed: bool = False  # only a delay notice (Action: delayed, "will retry"): not a bounce, never recorded


@dataclass
class View:
    msg: Message
    subject: str = ""
    sender: str = ""  # the From address, lower-case
    sender_name: str = ""
    dsn_texts: list[str] = field(default_factory=list)  # message/(global-)delivery-status parts
    has_mdn: bool = False  # a read receipt
    plain: list[str] = field(default_factory=list)  # the report's text/plain parts
    html: list[str] = field(default_factory=list)  # its text/html parts, as text
    returned_headers: list[Message] = field(default_factory=list)  # of the returned original
    returned_texts: list[str] = field(default_factory=list)  # text inside the returned original
    report: str = ""  # the first text part, cut where a returned original starts inside it


_ADDR = r"[\w.!#$%&*+/=?^`{|}~-][\w.!#$%&'*+/=?^`{|}~-]{0,200}@(?:[\w-]{1,63}\.){1,10}[\w-]{1,63}"
ADDR_RE = re.compile(_ADDR)
# A line that starts a recipient's block (one anchored attempt per line); group 2 is what to keep.
_RCPT_LINE_RES = (
    re.compile(rf"\s*<({_ADDR})>(?:\s*\(expanded from[^)]{{0,300}}\))?\s*:(.*)"),  # Postfix, qmail: "<a>: ..."
    re.compile(rf"\s*({_ADDR})\s*:\s+(.*)"),  # "a: reason"
    re.compile(rf"\s*<?({_ADDR})>?\s*:?\s*()$"),  # Exim, Exchange, Mail.ru, old Gmail: alone on its line
    re.compile(rf"\s*[^\s<>()@'\"][^<>()@\n]{{0,100}}?\s[(<]({_ADDR})[)>]\s*()$"),  # "John Doe (john@x)"
    re.compile(rf"\s*'({_ADDR})'\s+on\s+[^\n]*()"),  # Exchange 2003: "'john@x' on 3/4/2019 10:15 AM"
)
# A recipient named mid-sentence (read when no line starts a block).
_INLINE_RCPT_RES = tuple(
    re.compile(p.replace("ADDR", _ADDR), re.I)
    for p in (
        r"(?:wasn't|was not|couldn't be|could not be|hasn't been|has not been) delivered to\s+<?(ADDR)",
        r"Your message to\s+<?(ADDR)>?\s+(?:couldn't|could not|can't|cannot) be delivered",
        r"temporary problem delivering your message to\s+<?(ADDR)",
        r"Recipient Address(?:es)?:\s*<?(ADDR)",
        r"(?:undeliverable|undelivered) (?:to|for)\s+<?(ADDR)",
        r"Failed to deliver to\s+'?<?(ADDR)",  # CommuniGate Pro
        r"(?:адресату|получателю|на адрес|по адресу)\s*:?\s*<?(ADDR)",
    )
)
# The remote server's words inside a recipient's block: group 1, up to the paragraph's end.
_DIAG_RES = tuple(
    re.compile(p.replace("END", r"(?=\n[ \t]*\n|\Z)"), re.I | re.S)
    for p in (
        r"Remote Server returned '([^\n]+)'",  # Exchange (outer quotes; inner ones kept)
        r"#(\d{3}[ -][245]\.\d{1,3}\.\d{1,3}[^#\n]{0,600})##",  # Exchange 2010+
        r"Удал[её]нный сервер (?:возвратил|вернул)\s*'([^\n]+)'",
        r"Remote host said:\s*(.+?)(?:Giving up on|END)",  # qmail
        r"\bsaid:\s*(.+?)END",  # Postfix
        r"\bsays:\s*(.+?)END",  # CommuniGate Pro
        r"SMTP error from remote (?:mail )?server (?:after|for) [^\n:]{0,80}:(.+?)END",  # Exim
        r"The error that the other server returned was:\s*(.+?)END",  # Gmail, old
        r"The response (?:from the remote server )?was:\s*(.+?)END",  # Gmail
        r"(?:Ответ|Ошибка) (?:удал[её]нного )?сервера:\s*(.+?)END",
    )
)
# Where the report ends and a returned original starts, inside one text part.
ORIGINAL_RE = _rx(
    r"^[ \t>]*(?:-{2,}|={2,}|_{2,}).{0,80}?(?:original message|copy of the message|returned message|"
    r"undelivered message|message headers|below this line|original mail|message follows|headers of the|"
    r"оригинал|исходно|копия)",
    r"^[ \t]*(?:Original message headers|Заголовки исходного сообщения|Исходные заголовки сообщения)\s*:?\s*$",
    r"^[ \t]*Content-Type:\s*(?:message/rfc822|text/rfc822-headers)",
    flags=re.I | re.M,
)
_ENHANCED_AFTER_BASIC_RE = re.compile(r"(?<![\d.])([245])\d\d[ -]['\"#(]?([245]\.\d{1,3}\.\d{1,3})(?![\d.])")
ENHANCED_RE = re.compile(r"(?<![\d.\w])([245]\.\d{1,3}\.\d{1,3})(?![\d.])")
_BASIC_RE = re.compile(r"(?:^|[\s:;'\"#(\[])([245])\d\d(?=[\s\-]|$)")
# The wording, when there is no code: (pattern, status, permanent), first match wins.
_HEURISTICS: tuple[tuple[re.Pattern[str], str | None, bool], ...] = (
    (_rx(r"mailbox (?:is )?full|mailbox (?:size|storage) (?:limit )?exceeded|over ?quota|quota exceeded",
         r"exceeded (?:the |his |her |their )?(?:storage |mailbox )?quota|insufficient (?:storage|disk space)",
         r"out of storage|ящик переполнен|переполнен|превыш\w* (?:квот|лимит|объ[её]м)|недостаточно места"),
     "4.2.2", False),
    (_rx(r"user unknown|unknown user|no such (?:user|mailbox|recipient|account)|user (?:not found|doesn't exist)",
         r"(?:does not|doesn't|did not|didn't) exist|(?:recipient|address|mailbox|account) (?:not found|unknown)",
         r"unknown (?:recipient|address|mailbox)|invalid (?:recipient|mailbox)|no mailbox here",
         r"not a valid (?:recipient|mailbox)|recipient(?:'s)? (?:e-?mail )?address (?:was not found|could ?n[o']t be)",
         r"wasn't found at|couldn't be found|no longer (?:active|in use|exists)",
         r"нет так\w+ (?:пользовател|ящик|адрес)|(?:пользовател|ящик|адрес)\w* не (?:найден|существует)",
         r"не существует"),
     "5.1.1", True),
    (_rx(r"host or domain name not found|domain (?:not found|does not exist)|no such domain|домен не (?:найден|сущ)"),
     "5.1.2", True),
    (_rx(r"(?:account|mailbox|user|recipient) (?:is |has been )?(?:disabled|terminated|suspended|deactivated|"
         r"blocked|inactive|frozen|locked)|ящик\w* (?:заблокирован|отключ)"),
     "5.2.1", True),
    # Refused for the sender or the content (spam, blocklists, DMARC/SPF, policy), not the address.
    (_rx(r"\bspam\b|black ?list|block ?list|listed (?:at|on|in|by)\b|\bpolicy\b|\bdmarc\b|\bspf\b|\bdkim\b",
         r"reputation|спам|политик"),
     "5.7.1", True),
    (_rx(r"temporar(?:y|ily)|try again later|greylist|временн"), None, False),
)
DELAY_RE = _rx(
    r"warning only|has not yet been delivered|hasn't been delivered yet|not been delivered yet|not delivered yet",
    r"delivery (?:is|has been) delayed|delivery incomplete|temporary problem delivering|delayed mail",
    r"will (?:continue to )?(?:retry|be retried|try again)|delivery attempts will continue",
    r"delivery will continue to be attempted|could not send message for past|\(delay\)",
    r"пока не доставлен|доставка\s+\S{0,30}\s*задерживается|задержк\w+ доставки|попытки доставки (?:будут )?продолж",
)
SUCCESS_RE = _rx(
    r"successfully delivered|delivery to the following recipients? (?:was |were )?(?:successful|succeeded|complete)",
    r"delivery to these recipients or (?:groups|distribution lists) (?:is|was) complete",
    r"your message has been delivered|was delivered to the following|\((?:success|relay)\)",
    r"успешно доставлен|доставлено успешно",
)
FAILURE_RE = _rx(
    r"could not be delivered|couldn't be delivered|cannot be delivered|can't be delivered|undeliverable",
    r"undelivered|delivery has failed|delivery failed|failed permanently|permanent (?:error|failure)",
    r"not (?:yet )?been delivered|delivery (?:is )?delayed|wasn't delivered|was not delivered|not delivered",
    r"unable to deliver|could not deliver|failed to deliver|(?:wasn't|not) able to deliver|returned mail",
    r"failure notice|не (?:был[оа]? )?доставлен|не удалось доставить|не может быть доставлен|недоставленное",
    r"ошибка доставки",
)
AUTO_REPLY_SUBJECT_RE = _rx(
    r"^(?:(?:re|aw|sv|fw|fwd|ответ)\s*:\s*)?(?:out of (?:the )?office|automatic reply|auto(?:matic)?[- ]?"
    r"(?:reply|response|answer)|autoreply|auto:|away from (?:the )?office|on vacation|vacation|i am away|i'm away|"
    r"автоответ|автоматический ответ|нет на месте|абонент отсутствует|отсутствую|в отпуске|abwesenheit|absence|"
    r"réponse automatique|respuesta automática|risposta automatica)"
)
_DAEMON_LOCAL_RE = _rx(
    r"^(?:mailer[-_.]?daemon|mail[-_.]?daemon|postmaster|mdaemon|mail[-_.]?delivery(?:[-_.]?system)?",
    r"microsoftexchange[0-9a-f]{0,40}|maildelivery|bounces?|double-bounce)$",
)
_DAEMON_NAME_RE = _rx(r"mail delivery|mailer.?daemon|postmaster|microsoft outlook|mail administrator",
                      r"system administrator|служба доставки|почтовая система")
_EXCHANGE_RE = _rx(
    r"Delivery (?:has failed|is delayed) to these recipients or (?:groups|distribution lists)",
    r"Your message did not reach some or all of the intended recipients|Remote Server returned '",
    r"The following recipient\(s\) cannot be reached|Diagnostic information for administrators|RESOLVER\.ADR\.",
    r"получателям или группам|Диагностические сведения для администраторов|Удал[её]нный сервер возвратил",
)
_GMAIL_RE = _rx(
    r"Delivery to the following recipients? (?:failed|has been delayed)|Google tried to deliver your message",
    r"Technical details of (?:permanent|temporary) failure|Gmail will retry",
    r"\*\* (?:Address not found|Message not delivered(?: yet)?|Message blocked|Delivery incomplete|Mailbox full",
    r"Recipient inbox full|Domain not found) \*\*",
)
# A provider's name in its own words, not a host name in someone else's diagnostic (mx.yandex.net).
_YANDEX_TEXT_RE = re.compile(r"Яндекс|(?<![.\w-])Yandex(?![.\w-])")
_YANDEX_FAIL_RE = _rx(r"Сообщение не было доставлено|Не удалось доставить|Message was not delivered",
                      r"could not be delivered|An error has occurred while attempting to deliver",
                      r"This is the mail system at host")
_MAILRU_TEXT_RE = _rx(r"сервер\w*\s+Mail\.Ru|(?<![.\w-])Mail\.Ru\s+(?:mail )?server")
_MAILRU_FAIL_RE = _rx(r"Сообщение не доставлено|не может быть доставлено|Message was not accepted",
                      r"could not be delivered|Mail delivery failed|This message was created automatically")
_POSTFIX_RE = _rx(r"This is the mail system at host|I'm sorry to have to inform you that your message could not",
                  r"The Postfix program|THIS IS A WARNING ONLY")
_EXIM_RE = _rx(r"This message was created automatically by mail delivery software|SMTP error from remote mail",
               r"could not be delivered to one or more of its\s+recipients|The following address\(es\) failed",
               r"has not yet been delivered to one or more of its")
_QMAIL_RE = _rx(r"This is the qmail-send program|I'm afraid I wasn't able to deliver your message",
                r"I'm not going to try again; this message has been in the queue too long")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_SPACE_RE = re.compile(r"\s+")


def clean(text: str) -> str:
    """Storable text: no lone surrogates, no NUL or other control characters."""
    return _CONTROL_RE.sub(" ", text.encode("utf-8", "surrogateescape").decode("utf-8", "replace"))


def squash(text: str) -> str:
    return _SPACE_RE.sub(" ", clean(text)).strip()


def classify(
    address: str, status: str | None, diagnostic: str, block: str, delayed: bool, failed: bool
) -> BouncedRecipient:
    """The enhanced code decides, else the basic code, else the wording, else `failed`."""
    words = (diagnostic or squash(block))[:4000]
    paired = _ENHANCED_AFTER_BASIC_RE.search(words)
    alone = ENHANCED_RE.search(words)
    specific = paired.group(2) if paired and paired.group(1) == paired.group(2)[0] else alone and alone.group(1)
    specific = specific if specific and specific[0] in "45" else None
    if status is None or status[0] not in "45":
        status = specific
    elif status.endswith(".0.0") and specific and specific[0] == status[0] and not specific.endswith(".0.0"):
        status = specific  # a generic Status: 5.0.0 beside a Diagnostic-Code that says more
    permanent = failed
    if status is not None:
        permanent = status[0] == "5"
    else:
        basic = _BASIC_RE.search(words[:2000])
        guess = next(((s, p) for pattern, s, p in _HEURISTICS if pattern.search(words)), None)
        if basic is not None:
            permanent = basic.group(1) == "5"
            status = guess[0] if guess and guess[0] and guess[0][0] == basic.group(1) else None
        elif guess is not None:
            status, permanent = guess
    return BouncedRecipient(address, status, diagnostic[:MAX_DIAGNOSTIC], permanent and not delayed, delayed)


def recipient_blocks(report: str) -> dict[str, str]:
    """Each recipient named at the start of a line, with the lines that follow; key "" lists them.

    A line starts a block when it opens with an address (_RCPT_LINE_RES) and is not indented deeper
    than the line that started the current block (deeper is a continuation, e.g. Postfix's wrapped
    "<addr>: Recipient address rejected"). Blocks of one address are joined: Exchange names each
    recipient twice. Of a starting line only what follows the address is kept.
    """
    blocks: dict[str, list[str]] = {}
    order: list[str] = []
    current: str | None = None
    current_indent = 0
    for raw_line in report.split("\n"):
        line = raw_line[:MAX_LINE_CHARS].rstrip()
        indent = len(line) - len(line.lstrip())
        found = None
        if line and (current is None or indent <= current_indent):
            found = next((m for m in (p.match(line) for p in _RCPT_LINE_RES) if m), None)
        if found is not None:
            key = found.group(1).lower()
            if key != current:
                current, current_indent = key, indent
                if key not in blocks:
                    blocks[key] = []
                    order.append(found.group(1))
            blocks[key].append(found.group(2).strip())
        elif current is not None:
            blocks[current].append(line)
    if not order:  # no recipient lines: recipients named mid-sentence ("wasn't delivered to x@y")
        for pattern in _INLINE_RCPT_RES:
            matches = list(pattern.finditer(report))[:MAX_RECIPIENTS]
            for index, match in enumerate(matches):
                end = matches[index + 1].start() if index + 1 < len(matches) else len(report)
                if match.group(1).lower() not in blocks:
                    order.append(match.group(1))
                blocks.setdefault(match.group(1).lower(), []).append(report[match.start() : end])
            if matches:
                break
    return {key: "\n".join(lines) for key, lines in blocks.items()} | {"": "\n".join(order)}


def remote_words(block: str) -> str:
    """The remote server's words within a recipient's block, else its first paragraph that says something."""
    for pattern in _DIAG_RES:
        if found := pattern.search(block):
            words = re.sub(r"\s*\(in reply to [^)]{0,100}\)\s*$", "", squash(found.group(1)), flags=re.I)
            words = re.sub(r"^<[^<>]{0,300}>\s*:?\s*", "", words)
            words = re.sub(r"^host\s+\S+\s*(?:\[[^\]]{0,60}\])?\s*:?\s*", "", words, flags=re.I)
            if words:
                return words
    for paragraph in re.split(r"\n[ \t]*\n", block)[:6]:
        words = re.sub(r"\s*\(in reply to [^)]{0,100}\)\s*$", "", squash(paragraph), flags=re.I).strip(" :")
        if re.search(r"\w{2}", words):
            return words
    return ""


def text_recipients(report: str, delayed: bool) -> list[BouncedRecipient]:
    blocks = recipient_blocks(report)
    recipients = []
    for address in filter(None, blocks[""].split("\n")):
        block = blocks[address.lower()]
        recipient = classify(clean(address), None, remote_words(block), block, delayed, True)
        delivered = (recipient.status or "").startswith("2") or re.match(r"\s*2\d\d\s", recipient.diagnostic)
        if not delivered:  # a line of a mixed report that was delivered is not a failure
            recipients.append(recipient)
    return recipients


def flufl_recipients(data: bytes, report: str, delayed: bool) -> list[BouncedRecipient]:
    """GNU Mailman's detectors, for shapes our own rules do not know."""
    try:
        temporary, permanent = all_failures(message_from_bytes(data[:FLUFL_BYTES], policy=compat32))
    except Exception:
        return []
    blocks = recipient_blocks(report)
    recipients: list[BouncedRecipient] = []
    for raw_address, soft in sorted([(a, False) for a in permanent] + [(a, True) for a in temporary]):
        found = ADDR_RE.search(raw_address.decode("ascii", "replace"))
        address = found.group(0) if found else ""
        if not address or any(r.address.lower() == address.lower() for r in recipients):
            continue
        block = blocks.get(address.lower(), "")
        if not block and (at := report.lower().find(address.lower())) >= 0:  # the lines around it
            end = report.find("\n\n", at)
            block = report[report.rfind("\n", 0, at) + 1 : end if end >= 0 else at + 2000]
        recipients.append(classify(address, None, remote_words(block), block, delayed or soft, True))
    return recipients


def daemon_sender(view: View) -> bool:
    """From a mailer daemon, by its From address or name."""
    return bool(_DAEMON_LOCAL_RE.match(view.sender.rpartition("@")[0]) or _DAEMON_NAME_RE.search(view.sender_name))


def daemon_report(view: View) -> bool:
    """Sent by a mailer daemon: its From; without a From address, an envelope sender (Return-Path)
    that is empty or a daemon's. A person's From wins over any Return-Path."""
    if daemon_sender(view) or view.sender:
        return daemon_sender(view)
    try:
        paths = [str(p).strip().strip("<>").strip().lower() for p in (view.msg.get_all("Return-Path") or [])[:5]]
    except Exception:
        paths = []
    return any(not p or _DAEMON_LOCAL_RE.match(p.rpartition("@")[0]) for p in paths)


def _provider(domains: str, own_words: re.Pattern[str], failure: re.Pattern[str]) -> Callable[[View], bool]:
    """A provider's own report: from its mailer-daemon (or in its own words), saying it failed."""
    domain_re = re.compile(rf"(?:[\w-]+\.)*(?:{domains})")

    def recognises(view: View) -> bool:
        from_provider = daemon_sender(view) and bool(domain_re.fullmatch(view.sender.rpartition("@")[2]))
        said = from_provider or bool(own_words.search(view.report[:4000]))
        return said and bool(failure.search(view.subject + "\n" + view.report))

    return recognises


def _is_gmail(view: View) -> bool:
    if _GMAIL_RE.search(view.report):
        return True
    from_google = view.sender.rpartition("@")[2] in ("googlemail.com", "google.com", "gmail.com")
    return from_google and "delivery status notification" in view.subject.lower()


def _wording(pattern: re.Pattern[str]) -> Callable[[View], bool]:
    return lambda view: bool(pattern.search(view.report))


SHAPES: tuple[tuple[str, Callable[[View], bool]], ...] = (
    ("exchange", _wording(_EXCHANGE_RE)),
    ("gmail", _is_gmail),
    ("yandex", _provider(r"yandex\.[a-z.]+|ya\.ru", _YANDEX_TEXT_RE, _YANDEX_FAIL_RE)),
    ("mailru", _provider(r"mail\.ru|bk\.ru|list\.ru|inbox\.ru|internet\.ru|my\.com", _MAILRU_TEXT_RE, _MAILRU_FAIL_RE)),
    ("postfix", _wording(_POSTFIX_RE)),
    ("exim", _wording(_EXIM_RE)),
    ("qmail", _wording(_QMAIL_RE)),
)
