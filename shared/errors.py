"""Errors a person can act on, with their Russian and English wording.

Domain code raises `InputError(code, field, **params)`; the HTTP layer picks the language.
"""

from __future__ import annotations

from typing import Any

MESSAGES: dict[str, dict[str, str]] = {
    "invalid_json": {
        "en": "The request body must be a JSON object.",
        "ru": "Тело запроса должно быть JSON-объектом.",
    },
    "required": {
        "en": "The field '{field}' is required.",
        "ru": "Поле «{field}» обязательно.",
    },
    "type_string": {
        "en": "The field '{field}' must be a string.",
        "ru": "Поле «{field}» должно быть строкой.",
    },
    "type_list": {
        "en": "The field '{field}' must be a list of email addresses.",
        "ru": "Поле «{field}» должно быть списком адресов электронной почты.",
    },
    "empty_list": {
        "en": "The field '{field}' needs at least one recipient.",
        "ru": "В поле «{field}» нужен хотя бы один получатель.",
    },
    "too_many": {
        "en": "The field '{field}' has {count} entries; at most {limit} are accepted in one request.",
        "ru": "В поле «{field}» {count} записей; в одном запросе принимается не больше {limit}.",
    },
    "too_long": {
        "en": "The field '{field}' is longer than {limit} characters.",
        "ru": "Поле «{field}» длиннее {limit} символов.",
    },
    "line_break": {
        "en": "The field '{field}' must be a single line.",
        "ru": "Поле «{field}» должно быть в одну строку.",
    },
    "invalid_email": {
        "en": "'{value}' in '{field}' is not a valid email address: {reason}",
        "ru": "«{value}» в поле «{field}» — не адрес электронной почты: {reason}",
    },
    "invalid_recipients": {
        "en": "{count} recipient address(es) are not valid, for example '{value}': {reason}",
        "ru": "Адресов с ошибками: {count}, например «{value}»: {reason}",
    },
    "invalid_port": {
        "en": "The field 'server_port' must be a port number from 1 to 65535.",
        "ru": "Поле «server_port» должно быть номером порта от 1 до 65535.",
    },
    "host_without_port": {
        "en": "Give both 'server_host' and 'server_port', or leave both empty to detect them.",
        "ru": "Укажите и «server_host», и «server_port» или оставьте оба пустыми для автоопределения.",
    },
    "unknown_provider": {
        "en": "Cannot detect the SMTP server for '{domain}'; give 'server_host' and 'server_port'.",
        "ru": "Не удалось определить SMTP-сервер для «{domain}»; укажите «server_host» и «server_port».",
    },
    "host_refused": {
        "en": "The SMTP server '{host}' cannot be used: {reason}",
        "ru": "SMTP-сервер «{host}» нельзя использовать: {reason}",
    },
    "template": {
        "en": "The {part} template has an error{where}: {reason}",
        "ru": "В шаблоне ({part}) ошибка{where}: {reason}",
    },
    "unauthorized": {
        "en": "An API key is required: send it as 'Authorization: Bearer <key>'.",
        "ru": "Нужен API-ключ: передайте его в заголовке «Authorization: Bearer <ключ>».",
    },
    "not_found": {
        "en": "Not found.",
        "ru": "Не найдено.",
    },
    "unavailable": {
        "en": "The service cannot accept this right now ({what}); nothing was saved, please retry.",
        "ru": "Сервис сейчас не может принять запрос ({what}); ничего не сохранено, повторите попытку.",
    },
}


class InputError(ValueError):
    """Bad input, described by a message code and its parameters."""

    def __init__(self, code: str, field: str | None = None, **params: Any) -> None:
        self.code = code
        self.field = field
        self.params = {"field": field, **params}
        super().__init__(self.message("en"))

    def message(self, lang: str) -> str:
        return translate(self.code, lang, **self.params)


def translate(code: str, lang: str, **params: Any) -> str:
    texts = MESSAGES.get(code)
    if texts is None:
        return code
    return texts.get(lang, texts["en"]).format(**params)
