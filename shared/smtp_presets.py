"""Known mail providers: server, security and the sending limits they publish.

Limits are the providers' documented ceilings for ordinary accounts, rounded down; a user can
override them per sender.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Preset:
    key: str
    title: str
    host: str
    port: int
    security: str  # "tls" (implicit, 465), "starttls" (587) or "none"
    per_minute: int | None
    per_day: int | None
    app_password_hint: bool
    imap_host: str  # where its bounces land (port 993, implicit TLS)


# Where the daily figures come from (rolling 24 hours, recipients counted; the per-minute pace is
# ours, slow enough that none of these providers has throttled it):
# - Gmail: "Gmail sending limits", support.google.com/mail/answer/22839 — 500 recipients a day
#   for a personal account over SMTP.
# - Google Workspace: "Gmail sending limits in Google Workspace", support.google.com/a/answer/166852
#   — 2,000 messages a day per user.
# - Yandex Mail: "Sending a large number of messages", yandex.com/support/mail/web/letter/create/
#   send-many-letters.html — 500 emails a day per mailbox, each recipient counted; over it sending
#   is blocked for 24 hours (longer if sending goes on).
# - Mail.ru publishes no number; its support answers and Russian mail-merge guides put personal
#   mailboxes at about 500 recipients a day, so 500 it is.
# - Outlook.com: "Sending limits in Outlook.com", support.microsoft.com — 300 recipients a day for
#   a personal account until it has history.
# - Office 365: "Exchange Online limits" (service description), learn.microsoft.com — 10,000
#   recipients a day and 30 messages a minute.
PRESETS: dict[str, Preset] = {
    p.key: p
    for p in (
        Preset("gmail", "Gmail", "smtp.gmail.com", 465, "tls", 20, 500, True, "imap.gmail.com"),
        Preset("google_workspace", "Google Workspace", "smtp.gmail.com", 465, "tls", 60, 2000, True, "imap.gmail.com"),
        Preset("yandex", "Yandex Mail", "smtp.yandex.ru", 465, "tls", 20, 500, True, "imap.yandex.ru"),
        Preset("mailru", "Mail.ru", "smtp.mail.ru", 465, "tls", 20, 500, True, "imap.mail.ru"),
        Preset("outlook", "Outlook.com", "smtp-mail.outlook.com", 587, "starttls", 30, 300, True,
               "outlook.office365.com"),
        Preset("office365", "Office 365", "smtp.office365.com", 587, "starttls", 30, 10000, False,
               "outlook.office365.com"),
    )
}

_DOMAINS: dict[str, str] = {
    "gmail.com": "gmail",
    "googlemail.com": "gmail",
    "yandex.ru": "yandex",
    "yandex.com": "yandex",
    "ya.ru": "yandex",
    "yandex.by": "yandex",
    "yandex.kz": "yandex",
    "yandex.ua": "yandex",
    "mail.ru": "mailru",
    "inbox.ru": "mailru",
    "list.ru": "mailru",
    "bk.ru": "mailru",
    "internet.ru": "mailru",
    "outlook.com": "outlook",
    "hotmail.com": "outlook",
    "live.com": "outlook",
    "msn.com": "outlook",
}


def preset_for_address(email: str) -> Preset | None:
    """The provider of a mailbox, from its domain; None for domains we do not know."""
    domain = email.rpartition("@")[2].strip().lower()
    key = _DOMAINS.get(domain)
    return PRESETS[key] if key else None


def security_for_port(port: int) -> str:
    """What a bare host:port most likely speaks: 465 is implicit TLS, anything else STARTTLS."""
    return "tls" if port == 465 else "starttls"
