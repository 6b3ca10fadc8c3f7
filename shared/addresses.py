"""Email address checks, by email-validator (syntax and IDN; no DNS unless asked)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import email_validator
from email_validator import EmailNotValidError, validate_email
from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES


@dataclass(frozen=True)
class CheckedAddress:
    original: str
    normalized: str | None  # the address to send to (IDN domain in ASCII), None when invalid
    reason: str | None = None


    @property
    def explained(self) -> str:
        """Why the address is not valid, in Russian and English (stored reasons are read in both)."""
        return f"{reason_in_russian(self.reason or '')} / {self.reason}"


# email-validator words its reasons in English only; these are the ones contact files produce,
# in our own Russian. Others keep a general Russian lead-in (the English follows anyway).
_RUSSIAN_REASONS = (
    ("empty", "пусто"),
    ("must have an @-sign", "нет знака @"),
    ("something before the @-sign", "нет имени перед @"),
    ("something after the @-sign", "нет домена после @"),
    ("two periods in a row", "две точки подряд"),
    ("period and a hyphen", "точка и дефис рядом"),
    ("It should have a period", "в домене после @ нет точки"),
    ("valid top-level domain", "у домена после @ неверная зона (например, .ru, .com)"),
    ("special-use or reserved name", "домен после @ зарезервирован и почту не принимает"),
    ("small commercial at", "вместо @ стоит похожий на него символ"),
    ("display name and angle brackets", "вместе с адресом записано имя или угловые скобки"),
    ("anything after the email address", "после адреса есть лишний текст"),
    ("too long", "адрес слишком длинный"),
    ("before the @-sign", "недопустимые символы перед @"),
    ("after the @-sign", "недопустимые символы в домене после @"),
    ("invalid character", "недопустимый символ в адресе"),
    ("unsafe characters", "недопустимый символ в адресе"),
    ("does not exist", "такого домена нет"),
    ("does not accept email", "домен не принимает почту"),
)


def reason_in_russian(reason: str) -> str:
    for marker, russian in _RUSSIAN_REASONS:
        if marker in reason:
            return russian
    return "неверный адрес"


# The common case, plain ASCII `local@label.label`, answered without email-validator (≈ 23 µs an
# address, most of the fan-out's CPU). Only a *valid* answer is given here, and only for a shape
# where email-validator's answer is certain: a dot-atom local part of its ASCII characters, host
# labels of letters, digits and inner hyphens (none with "--", which IDNA rules look at), a TLD
# ending in a letter, 100 characters at most (far inside every length limit). Anything else —
# quoted, IDN, special-use, RFC 2142 names, trailing dots — goes to email-validator, and so does
# every invalid address, so reasons are always its own. tests/test_address_fast_path.py compares
# both over a generated corpus.
_ATEXT = r"[A-Za-z0-9_!#$%&'*+\-/=?^`{|}~]"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_TOP = r"(?:[A-Za-z0-9][A-Za-z0-9-]{0,61})?[A-Za-z]"
_PLAIN = re.compile(rf"({_ATEXT}+(?:\.{_ATEXT}+)*)@((?:{_LABEL}\.)+{_TOP})")
_PLAIN_MAX = 100
_MAILBOX_NAMES = frozenset(CASE_INSENSITIVE_MAILBOX_NAMES)
_SPECIAL_USE = tuple("." + name for name in email_validator.SPECIAL_USE_DOMAIN_NAMES)


def _plain(candidate: str) -> str | None:
    """The normalised address when `candidate` is of the plain shape email-validator surely accepts."""
    if len(candidate) > _PLAIN_MAX or "--" in candidate:
        return None
    match = _PLAIN.fullmatch(candidate)
    if match is None:
        return None
    local, domain = match.groups()
    if local.lower() in _MAILBOX_NAMES:
        return None
    domain = domain.lower()
    if ("." + domain).endswith(_SPECIAL_USE):
        return None
    return f"{local}@{domain}"


def normal_address(raw: str) -> str | None:
    """`check_address(raw).normalized`, without building the reason (the fan-out's per-row check)."""
    candidate = raw.strip()
    return _plain(candidate) or check_address(candidate).normalized


def check_address(raw: str, *, check_dns: bool = False) -> CheckedAddress:
    candidate = raw.strip()
    if not candidate:
        return CheckedAddress(raw, None, "empty")
    if not check_dns and (plain := _plain(candidate)) is not None:
        return CheckedAddress(raw, plain)
    try:
        info = validate_email(candidate, check_deliverability=check_dns, allow_smtputf8=True)
    except EmailNotValidError as exc:
        return CheckedAddress(raw, None, str(exc))
    # Keep the local part as typed, send to the domain in its ASCII (punycode) form.
    ascii_domain = info.ascii_domain or info.domain
    return CheckedAddress(raw, f"{info.local_part}@{ascii_domain}")
