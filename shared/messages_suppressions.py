"""The suppression list's messages in English and Russian, part of the catalogue (shared/messages.py)."""

from __future__ import annotations

SUPPRESSION_MESSAGES: dict[str, dict[str, str]] = {
    "suppressions_full": {
        "en": "The suppression list holds at most {limit} addresses you add or import; it has {count}, and these"
              " would add {adding}. Nothing was added: remove addresses you no longer need, or add fewer.",
        "ru": "В список исключений можно добавить или загрузить не больше {limit} адресов; в нём уже {count},"
              " а эти добавили бы ещё {adding}. Ничего не добавлено: удалите ненужные адреса или добавьте меньше.",
    },
    "import_running": {
        "en": "An import into your suppression list is already running. Wait for it to finish, then try again.",
        "ru": "В ваш список исключений уже идёт загрузка из файла. Дождитесь её окончания и попробуйте снова.",
    },
    # Why a line of an import was left out (shown after its number).
    "import_no_address": {"en": "no email address in this line", "ru": "в строке нет адреса электронной почты"},
    "import_bad_address": {"en": "not a valid email address: {reason}",
                           "ru": "неправильный адрес электронной почты: {reason}"},
    "import_line_too_long": {"en": "the line is longer than {limit} characters",
                             "ru": "строка длиннее {limit} символов"},
    "import_bad_line": {"en": "the line cannot be read as CSV", "ru": "строку не удаётся прочитать как CSV"},
}
