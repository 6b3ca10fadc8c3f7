"""The suppression list's and the bounce reader's messages in English and Russian, part of the catalogue
(shared/messages.py, which is full)."""

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
    "search_too_short": {
        "en": "Type at least {min} characters of the address, or of the domain after @ (for example @mail.ru).",
        "ru": "Введите хотя бы {min} символа адреса или домена после @ (например, @mail.ru).",
    },
    "search_too_slow": {
        "en": "The search took longer than {seconds} s and was stopped. Refine it: type more of the start of the"
              " address, or the whole domain after @.",
        "ru": "Поиск занял больше {seconds} с и был остановлен. Уточните его: введите больше начальных символов"
              " адреса или весь домен после @.",
    },
    # A look at the sender's mailbox that the IMAP server made too slow (shown on the sender's page).
    "imap_slow": {
        "en": "The IMAP server {host}:{port} was too slow: an answer did not come within {seconds} s, so reading the"
              " mailbox was stopped. Bounces are read at the next check; if this keeps happening, the server"
              " is overloaded or the connection to it is poor.",
        "ru": "IMAP-сервер {host}:{port} отвечал слишком медленно: ответ не пришёл за {seconds} с, поэтому чтение"
              " почтового ящика прервано. Возвраты будут прочитаны при следующей проверке; если это повторяется,"
              " сервер перегружен или связь с ним плохая.",
    },
    # Answers that each began in time, but kept the look waiting long in all (issue 11).
    "imap_stalled": {
        "en": "The IMAP server {host}:{port} keeps Sendpy waiting: its answers took {seconds} s in all to begin"
              " ({answers} answers; a working server begins each within a second or two), so reading the mailbox"
              " was stopped, not to keep other mailboxes waiting. If this keeps happening, the server is"
              " overloaded or the connection to it is poor.",
        "ru": "IMAP-сервер {host}:{port} заставляет себя ждать: его ответы начинались в сумме {seconds} с"
              " ({answers} ответов; исправный сервер начинает каждый за секунду-две), поэтому чтение почтового"
              " ящика прервано, чтобы не задерживать другие ящики. Если это повторяется, сервер перегружен"
              " или связь с ним плохая.",
    },
    "imap_stalling": {
        "en": "The IMAP server {host}:{port} answers slowly: its answers took {seconds} s in all to begin"
              " ({answers} answers; a working server begins each within a second or two). The new mail was"
              " read, but the mailbox is checked less often while this lasts.",
        "ru": "IMAP-сервер {host}:{port} отвечает медленно: его ответы начинались в сумме {seconds} с"
              " ({answers} ответов; исправный сервер начинает каждый за секунду-две). Новые письма прочитаны,"
              " но пока это продолжается, ящик проверяется реже.",
    },
}
