"""Every message a person can get about their input, in English and Russian (the catalogue).

`{field}` is the field's API name; in Russian, `{field_ru}` stands for it where the sentence needs
the Russian name (see shared/errors.py).
"""

from __future__ import annotations

from shared.messages_delivery import DELIVERY_MESSAGES
from shared.messages_suppressions import SUPPRESSION_MESSAGES
from shared.messages_templates import TEMPLATE_MESSAGES

MESSAGES: dict[str, dict[str, str]] = {
    **DELIVERY_MESSAGES,
    **SUPPRESSION_MESSAGES,
    **TEMPLATE_MESSAGES,
    "body_too_large": {
        "en": "The request body is larger than {limit_kb} KB.",
        "ru": "Тело запроса больше {limit_kb} КБ.",
    },
    "body_too_slow": {
        "en": "The request body did not arrive within {seconds:.0f} seconds.",
        "ru": "Тело запроса не пришло за {seconds:.0f} секунд.",
    },
    "json_too_deep": {
        "en": "The JSON is nested more than {limit} levels deep.",
        "ru": "JSON вложен глубже чем на {limit} уровней.",
    },
    "invalid_json": {
        "en": "The request body must be a JSON object.",
        "ru": "Тело запроса должно быть JSON-объектом.",
    },
    "json_required": {
        "en": "Send this request as JSON, with the header 'Content-Type: application/json'.",
        "ru": "Отправьте запрос в формате JSON с заголовком «Content-Type: application/json».",
    },
    "invalid_text": {
        "en": "The request contains characters that are not valid text (NUL or broken Unicode).",
        "ru": "В запросе есть недопустимые символы (NUL или повреждённый Unicode).",
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
    "test_to_suppressed": {
        "en": "{email} is on your suppression list: the test was sent, but campaigns will skip this address.",
        "ru": "{email} в вашем списке исключений: тестовое письмо отправлено, но рассылки этот адрес пропустят.",
    },
    "idempotency_in_progress": {
        "en": "A request with this Idempotency-Key is still being handled; retry in a few seconds"
              " (at most {seconds} s).",
        "ru": "Запрос с этим Idempotency-Key ещё выполняется; повторите через несколько секунд"
              " (не позже чем через {seconds} с).",
    },
    "changed_meanwhile": {
        "en": "Something this request refers to was deleted or changed at the same moment; nothing was saved."
              " Reload and try again.",
        "ru": "То, на что ссылается запрос, в этот же момент было удалено или изменено; ничего не сохранено."
              " Обновите страницу и повторите.",
    },
    "no_addresses": {
        "en": "No line of the file holds a valid email address; nothing was added.",
        "ru": "Ни в одной строке файла нет правильного адреса электронной почты; ничего не добавлено.",
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
        "en": "The server '{host}' cannot be used: {reason}",
        "ru": "Сервер «{host}» не подходит: {reason}",
    },
    "unauthorized": {
        "en": "An API key is required: send it as 'Authorization: Bearer <key>'.",
        "ru": "Нужен API-ключ: передайте его в заголовке «Authorization: Bearer <ключ>».",
    },
    "password_short": {
        "en": "The password must be at least {limit} characters long.",
        "ru": "Пароль должен быть не короче {limit} символов.",
    },
    "email_taken": {
        "en": "An account with this email already exists; log in instead.",
        "ru": "Учётная запись с этим адресом уже есть; войдите в неё.",
    },
    "bad_credentials": {
        "en": "Wrong email or password.",
        "ru": "Неверный адрес или пароль.",
    },
    "wrong_password": {
        "en": "The current password is not correct.",
        "ru": "Текущий пароль указан неверно.",
    },
    "too_many_attempts": {
        "en": "Too many failed log-ins. Try again in {minutes} minutes.",
        "ru": "Слишком много неудачных попыток входа. Повторите через {minutes} мин.",
    },
    "csrf": {
        "en": "This request lacks the CSRF token of your session; reload the page and try again.",
        "ru": "В запросе нет CSRF-токена вашей сессии; обновите страницу и повторите.",
    },
    "invalid_limit": {
        "en": "'{field}' must be a whole number from 1 to 10,000,000, or null for no limit.",
        "ru": "«{field}» должно быть целым числом от 1 до 10 000 000 или null (без ограничения).",
    },
    "unknown_preset": {
        "en": "Unknown provider preset; use one of: {choices}.",
        "ru": "Неизвестный почтовый провайдер; допустимы: {choices}.",
    },
    "invalid_host": {
        "en": "'{field}' is not a valid server name.",
        "ru": "«{field}» — недопустимое имя сервера.",
    },
    "invalid_security": {
        "en": "'security' must be 'tls' (port 465), 'starttls' (port 587), 'starttls_optional' (STARTTLS if"
              " offered, else plaintext) or 'none'.",
        "ru": "«security» должно быть 'tls' (порт 465), 'starttls' (порт 587), 'starttls_optional' (STARTTLS, если"
              " сервер его предлагает, иначе без шифрования) или 'none'.",
    },
    "plaintext_refused": {
        "en": "This deployment does not allow SMTP without TLS; choose 'tls' or 'starttls'.",
        "ru": "Этот сервер не разрешает SMTP без шифрования; выберите 'tls' или 'starttls'.",
    },
    "sender_exists": {
        "en": "You already have a sender with this address, server and login.",
        "ru": "У вас уже есть отправитель с этим адресом, сервером и логином.",
    },
    "sender_in_use": {
        "en": "This address cannot be deleted yet: the campaign {campaigns} sent from it has not finished. Cancel it"
              " on its page, or wait until it ends; finished campaigns do not stop you, their history stays.",
        "ru": "Этот адрес пока нельзя удалить: с него ещё не закончена рассылка {campaigns}. Отмените её на"
              " странице рассылки или дождитесь, пока она закончится; законченные рассылки не мешают.",
    },
    "imap_dns": {
        "en": "The IMAP server name {host} does not exist (DNS). Check its spelling.",
        "ru": "Имя IMAP-сервера {host} не найдено (DNS). Проверьте написание.",
    },
    "imap_private": {
        "en": "{host} is a private or internal address; this service only connects to public mail servers.",
        "ru": "{host} — частный или внутренний адрес; сервис подключается только к публичным почтовым серверам.",
    },
    "imap_refused": {
        "en": "{host}:{port} refused the IMAP connection. IMAP with SSL uses port 993.",
        "ru": "{host}:{port} отклонил подключение по IMAP. Для IMAP с SSL используется порт 993.",
    },
    "imap_timeout": {
        "en": "{host}:{port} did not answer in time. Check the IMAP server and port (993), or a firewall.",
        "ru": "{host}:{port} не ответил вовремя. Проверьте IMAP-сервер и порт (993) или брандмауэр.",
    },
    "imap_tls": {
        "en": "The secure connection to {host} failed: {detail}. IMAP must use SSL/TLS on port 993.",
        "ru": "Не удалось установить защищённое соединение с {host}: {detail}. IMAP должен работать"
              " по SSL/TLS на порту 993.",
    },
    "imap_auth": {
        "en": "The IMAP server did not accept the login or password ({detail}). Some providers need IMAP"
              " switched on in the mailbox settings, and an app password.",
        "ru": "IMAP-сервер не принял логин или пароль ({detail}). У некоторых почтовых сервисов IMAP нужно"
              " включить в настройках ящика и использовать пароль приложения.",
    },
    "imap_protocol": {
        "en": "The IMAP server answered something unexpected: {detail}.",
        "ru": "IMAP-сервер ответил неожиданно: {detail}.",
    },
    "smtp_password_required": {
        "en": "The SMTP server changed to {host}:{port}: enter the password again. A saved password is only"
              " sent to the server it was entered for.",
        "ru": "SMTP-сервер изменён на {host}:{port}: введите пароль ещё раз. Сохранённый пароль отправляется"
              " только тому серверу, для которого его ввели.",
    },
    "imap_too_slow": {
        "en": "The IMAP server {host}:{port} sends too slowly: {received} bytes of an answer in {seconds} s (at least"
              " {rate} KB a second is needed), so reading the mailbox was stopped, not to keep other mailboxes"
              " waiting. If this keeps happening, the server is overloaded or the connection to it is poor.",
        "ru": "IMAP-сервер {host}:{port} передаёт данные слишком медленно: {received} байт ответа за {seconds} с"
              " (нужно хотя бы {rate} КБ в секунду), поэтому чтение почтового ящика прервано, чтобы не задерживать"
              " другие ящики. Если это повторяется, сервер перегружен или связь с ним плохая.",
    },
    "imap_next_look_later": {
        "en": "The mailbox is checked again in {minutes} min; while the server stays this slow, the pauses grow.",
        "ru": "Ящик будет проверен снова через {minutes} мин; пока сервер так медленно отвечает, перерывы растут.",
    },
    "imap_too_large": {
        "en": "The IMAP server {host}:{port} sent an answer larger than {detail} MB, more than Sendpy takes at once"
              " (a big mailbox is read in parts: not the cause), so it stopped. If it repeats, ask the provider.",
        "ru": "IMAP-сервер {host}:{port} прислал ответ больше {detail} МБ — больше, чем Sendpy принимает за раз"
              " (большой ящик читается частями — дело не в нём); чтение прекращено. Повторится — спросите провайдера.",
    },
    "imap_password_required": {
        "en": "The IMAP server changed to {host}:{port}: enter the IMAP password again. A saved password is"
              " only sent to the server it was entered for.",
        "ru": "IMAP-сервер изменён на {host}:{port}: введите пароль IMAP ещё раз. Сохранённый пароль"
              " отправляется только на тот сервер, для которого его ввели.",
    },
    "slow_server": {
        "en": "The server {host} answers very slowly (at least {seconds} s per command): mail goes out late and is"
              " retried less and less often; if the server does not speed up, its recipients end as failed.",
        "ru": "Сервер {host} отвечает очень медленно (не меньше {seconds} с на команду): письма уходят с задержкой,"
              " попытки всё реже; если сервер не ускорится, получатели получат статус «ошибка» с этой причиной.",
    },
    "slow_server_attempt": {
        "en": "the server answers very slowly (at least {seconds} s per command): stopped before the message was sent",
        "ru": "сервер отвечает очень медленно (не меньше {seconds} с на команду): остановлено до передачи письма",
    },
    "smtp_dns": {
        "en": "The server name {host} does not exist (DNS). Check the spelling of the SMTP server.",
        "ru": "Имя сервера {host} не найдено (DNS). Проверьте написание адреса SMTP-сервера.",
    },
    "smtp_private": {
        "en": "{host} is a private or internal address; this service only connects to public mail servers.",
        "ru": "{host} — частный или внутренний адрес; сервис подключается только к публичным почтовым серверам.",
    },
    "smtp_refused": {
        "en": "{host}:{port} refused the connection. Check the port (465 for SSL, 587 for STARTTLS).",
        "ru": "{host}:{port} отклонил подключение. Проверьте порт (465 для SSL, 587 для STARTTLS).",
    },
    "smtp_timeout": {
        "en": "{host}:{port} did not answer in time. Check the server and port, or a firewall.",
        "ru": "{host}:{port} не ответил вовремя. Проверьте сервер и порт или брандмауэр.",
    },
    "smtp_tls": {
        "en": "The secure connection to {host} failed: {detail}. Check the security setting and port.",
        "ru": "Не удалось установить защищённое соединение с {host}: {detail}. Проверьте шифрование и порт.",
    },
    "smtp_starttls": {
        "en": "{host}:{port} does not offer STARTTLS, so the password would travel unencrypted. Use port 465"
              " with SSL/TLS, or a port where the server offers STARTTLS (usually 587).",
        "ru": "{host}:{port} не поддерживает STARTTLS, и пароль ушёл бы без шифрования. Укажите порт 465"
              " с SSL/TLS или порт, где сервер поддерживает STARTTLS (обычно 587).",
    },
    "smtp_auth": {
        "en": "The server did not accept the login or password ({detail}).{hint}",
        "ru": "Сервер не принял логин или пароль ({detail}).{hint}",
    },
    "smtp_auth_hint": {
        "en": " {provider} needs an app password, not your usual one: create it in the account's security settings.",
        "ru": " Для {provider} нужен пароль приложения, а не обычный пароль: создайте его в настройках безопасности.",
    },
    "smtp_sender_refused": {
        "en": "The server refused to send as {from_email}: {detail}. Use the address of this mailbox.",
        "ru": "Сервер не разрешил отправку от имени {from_email}: {detail}. Укажите адрес этого ящика.",
    },
    "smtp_relay_denied": {
        "en": "The server refused to relay mail for this account: {detail}.",
        "ru": "Сервер отказался пересылать почту для этой учётной записи: {detail}.",
    },
    "smtp_protocol": {
        "en": "The server answered something unexpected: {detail}.",
        "ru": "Сервер ответил неожиданно: {detail}.",
    },
    "smtp_plaintext": {
        "en": "This deployment does not allow SMTP without TLS.",
        "ru": "Этот сервер не разрешает SMTP без шифрования.",
    },
    "contacts_file_gone": {
        "en": "The contact file is no longer in storage (files are kept for 30 days). Upload it again.",
        "ru": "Файла контактов больше нет в хранилище (файлы хранятся 30 дней). Загрузите его снова.",
    },
    "contacts_file_changed": {
        "en": "The contact file was replaced after it was checked. Upload it again, so that what is sent is what"
              " you saw.",
        "ru": "Файл контактов заменили после проверки. Загрузите его снова, чтобы отправилось то, что вы видели.",
    },
    "upload_changed_while_read": {
        "en": "The file changed or disappeared while it was being read. Upload it again.",
        "ru": "Файл изменился или пропал, пока его читали. Загрузите его снова.",
    },
    "upload_unprocessable": {
        "en": "The file could not be read to the end ({error}). Upload it again; if this repeats, save it as"
              " UTF-8 CSV and try once more.",
        "ru": "Файл не удалось прочитать до конца ({error}). Загрузите его снова; если ошибка повторится,"
              " сохраните его как CSV в UTF-8 и попробуйте ещё раз.",
    },
    "upload_too_slow": {
        "en": "Reading the file took more than {minutes} minutes and was stopped. Split it into smaller files.",
        "ru": "Чтение файла заняло больше {minutes} мин. и было остановлено. Разделите его на файлы поменьше.",
    },
    "upload_missing": {
        "en": "The file has not arrived in storage yet; upload it to the URL you were given, then try again.",
        "ru": "Файл ещё не загружен в хранилище; загрузите его по выданной ссылке и повторите.",
    },
    "file_too_large": {
        "en": "The file is {size_mb} MB; the limit is {limit_mb} MB. Split it into smaller files.",
        "ru": "Файл весит {size_mb} МБ, а предел — {limit_mb} МБ. Разделите его на части.",
    },
    "empty_file": {
        "en": "The file is empty.",
        "ru": "Файл пустой.",
    },
    "no_rows": {
        "en": "The file has a header but no contacts.",
        "ru": "В файле есть заголовок, но нет ни одного контакта.",
    },
    "excel_file": {
        "en": "This is an Excel workbook, not CSV. In Excel choose File → Save As → CSV (UTF-8).",
        "ru": "Это книга Excel, а не CSV. В Excel выберите «Файл → Сохранить как → CSV UTF-8».",
    },
    "not_text": {
        "en": "This is not a text (CSV) file.",
        "ru": "Это не текстовый (CSV) файл.",
    },
    "bad_csv": {
        "en": "The file is not valid CSV: {reason}.",
        "ru": "Файл не является корректным CSV: {reason}.",
    },
    "wrong_encoding": {
        "en": "The file cannot be read as {encoding}; choose another encoding (e.g. windows-1251 for Russian Excel).",
        "ru": "Файл не читается в кодировке {encoding}; выберите другую (например, windows-1251 для русского Excel).",
    },
    "no_email_column": {
        "en": "No column with email addresses was found; choose the column yourself.",
        "ru": "Не найден столбец с адресами электронной почты; укажите его вручную.",
    },
    "correction_loses_addresses": {
        "en": "With these settings the address column “{column}” gives {valid} valid addresses in {rows} rows,"
              " and the current settings give {before}; the settings were not changed.",
        "ru": "С этими настройками в столбце адресов «{column}» верных адресов {valid} на {rows} строк,"
              " а с нынешними — {before}; настройки не изменены.",
    },
    "invalid_column": {
        "en": "'{field}' must be a column number from 0 to {count} - 1.",
        "ru": "«{field}» должно быть номером столбца от 0 до {count} - 1.",
    },
    "too_many_columns": {
        "en": "The file has more than {limit} columns.",
        "ru": "В файле больше {limit} столбцов.",
    },
    "upload_not_ready": {
        "en": "This contact file is not ready (still being checked, or it failed the check).",
        "ru": "Этот файл контактов ещё не готов (идёт проверка или проверка не пройдена).",
    },
    "upload_in_use": {
        "en": "A campaign uses this contact file; it cannot be deleted.",
        "ru": "Этот файл контактов используется в рассылке; удалить его нельзя.",
    },
    "invalid_choice": {
        "en": "'{field}' must be one of: {choices}.",
        "ru": "«{field}» должно быть одним из: {choices}.",
    },
    "unknown_field": {
        "en": "'{field}' is not a field of a campaign; use: {choices}.",
        "ru": "«{field}» — не поле рассылки; допустимы: {choices}.",
    },
    "unknown_sender": {
        "en": "No sender of yours has this id.",
        "ru": "У вас нет отправителя с таким id.",
    },
    "unknown_upload": {
        "en": "No contact file of yours has this id.",
        "ru": "У вас нет файла контактов с таким id.",
    },
    "schedule_moment": {
        "en": "'at' must be a date and time with its time zone, e.g. 2026-12-01T09:00:00+03:00.",
        "ru": "«at» — дата и время с часовым поясом, например 2026-12-01T09:00:00+03:00.",
    },
    "schedule_past": {
        "en": "That moment has already passed; choose a time in the future.",
        "ru": "Это время уже прошло; выберите время в будущем.",
    },
    "schedule_too_far": {
        "en": "A campaign can be scheduled at most a year ahead.",
        "ru": "Рассылку можно запланировать не больше чем на год вперёд.",
    },
    "campaign_state": {
        "en": "The campaign is {state}; it cannot {action} now.",
        "ru": "Рассылка в состоянии «{state}»; действие «{action}» сейчас невозможно.",
    },
    "start_needs": {
        "en": "Before sending, set '{field}'.",
        "ru": "Перед отправкой укажите: {field}.",
    },
    "empty_body": {
        "en": "The message is empty: it has no text and no image. Write the message before sending.",
        "ru": "Письмо пустое: в нём нет ни текста, ни картинки. Напишите письмо перед отправкой.",
    },
    "sender_not_verified": {
        "en": "Verify the sender first: Sendpy must log in to it successfully once.",
        "ru": "Сначала проверьте отправителя: Sendpy должен хотя бы раз успешно к нему подключиться.",
    },
    "undefined_fields": {
        "en": "The message uses merge fields the contact file does not have: {names}.",
        "ru": "В письме есть поля подстановки, которых нет в файле контактов: {names}.",
    },
    "row_out_of_range": {
        "en": "'row' must be a contact number from 1 to {count}.",
        "ru": "Номер контакта для просмотра — от 1 до {count}.",
    },
    "invalid_page": {
        "en": "Paging parameters must be whole numbers.",
        "ru": "Параметры страницы должны быть целыми числами.",
    },
    "idempotency_key_invalid": {
        "en": "The Idempotency-Key header must be 1 to {limit} characters.",
        "ru": "Заголовок Idempotency-Key должен содержать от 1 до {limit} символов.",
    },
    "idempotency_key_reused": {
        "en": "This Idempotency-Key was already used with a different request.",
        "ru": "Этот Idempotency-Key уже использован с другим запросом.",
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
