"""Errors a person can act on, with their Russian and English wording.

Domain code raises `InputError(code, field, **params)`; the HTTP layer picks the language.
"""

from __future__ import annotations

from typing import Any

from shared.addresses import reason_in_russian
from shared.messages import MESSAGES  # the catalogue lives on its own; re-exported here

# What a field is called in Russian messages; keys of the JSON API keep their name after it, so a
# developer reading Russian still knows which one.
FIELD_NAMES_RU = {
    "subject": "тема", "html_body": "текст письма", "text_body": "текстовая версия", "name": "название",
    "sender_id": "отправитель", "upload_id": "файл контактов", "file": "файл", "filename": "имя файла",
    "email": "эл. почта", "password": "пароль", "current_password": "текущий пароль",
    "new_password": "новый пароль", "from_email": "адрес отправителя", "from_name": "имя отправителя",
    "host": "SMTP-сервер", "port": "порт", "security": "шифрование", "username": "логин", "preset": "почтовый сервис",
    "per_minute": "писем в минуту", "per_day": "писем в сутки", "recipients_per_connection": "писем на соединение",
    "imap_host": "IMAP-сервер", "imap_port": "порт IMAP", "imap_username": "логин IMAP",
    "imap_password": "пароль IMAP", "encoding": "кодировка", "delimiter": "разделитель",
    "has_header": "строка заголовков", "email_column": "столбец с адресами", "row": "номер строки",
    "emails": "адреса", "status": "состояние", "at": "время отправки", "after": "страница", "sep": "разделитель",
    "recipient_email_list": "список получателей (recipient_email_list)",
    "message_subject": "тема (message_subject)", "message": "текст письма (message)",
    "sender_email": "адрес отправителя (sender_email)", "smtp_password": "пароль SMTP (smtp_password)",
    "server_host": "SMTP-сервер (server_host)", "server_port": "порт (server_port)",
}


class InputError(ValueError):
    """Bad input, described by a message code and its parameters."""

    def __init__(self, code: str, field: str | None = None, **params: Any) -> None:
        self.code = code
        self.field = field
        self.params = {"field": field, "field_ru": FIELD_NAMES_RU.get(field or "", field), **params}
        super().__init__(self.message("en"))

    def message(self, lang: str) -> str:
        return translate(self.code, lang, **self.params)


_HOST_PROBLEMS_RU = {
    "dns": "такого имени нет в DNS — проверьте, нет ли опечатки",
    "private": "это адрес внутренней сети или этой машины, а Sendpy здесь подключается только к публичным"
               " почтовым серверам",
    "timeout": "DNS-серверы этого имени не ответили вовремя; попробуйте ещё раз позже",
}


def host_refused(field: str, host: str, code: str, reason: str) -> InputError:
    """The 4xx for a server name the SSRF guard turned down (`code` as netguard names it)."""
    return InputError("host_refused", field, host=host, reason=reason,
                      reason_ru=_HOST_PROBLEMS_RU.get(code, reason))


def invalid_email(field: str, value: str, reason: str | None) -> InputError:
    """The 4xx for an address the validator refused, its reason in our Russian for Russian readers."""
    return InputError("invalid_email", field, value=value, reason=reason, reason_ru=reason_in_russian(reason or ""))


def translate(code: str, lang: str, **params: Any) -> str:
    """The message in `lang` (English if missing); a parameter `x_ru` stands for `{x}` in Russian."""
    texts = MESSAGES.get(code)
    if texts is None:
        return code
    chosen = lang if lang in texts else "en"
    suffix = f"_{chosen}"
    localized = {name[: -len(suffix)]: value for name, value in params.items() if name.endswith(suffix)}
    return texts[chosen].format(**{**params, **localized})
