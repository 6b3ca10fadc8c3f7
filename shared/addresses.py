"""Email address checks, by email-validator (syntax and IDN; no DNS unless asked)."""

from __future__ import annotations

from dataclasses import dataclass

from email_validator import EmailNotValidError, validate_email


@dataclass(frozen=True)
class CheckedAddress:
    original: str
    normalized: str | None  # the address to send to (IDN domain in ASCII), None when invalid
    reason: str | None = None


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
