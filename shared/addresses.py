"""Email address checks, by email-validator (syntax and IDN; no DNS unless asked)."""

from __future__ import annotations

from dataclasses import dataclass

from email_validator import EmailNotValidError, validate_email


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


def check_address(raw: str, *, check_dns: bool = False) -> CheckedAddress:
    candidate = raw.strip()
    if not candidate:
        return CheckedAddress(raw, None, "empty")
    try:
        info = validate_email(candidate, check_deliverability=check_dns, allow_smtputf8=True)
    except EmailNotValidError as exc:
        return CheckedAddress(raw, None, str(exc))
    # Keep the local part as typed, send to the domain in its ASCII (punycode) form.
    ascii_domain = info.ascii_domain or info.domain
    return CheckedAddress(raw, f"{info.local_part}@{ascii_domain}")
