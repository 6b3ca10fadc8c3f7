"""Messages about templates in English and Russian, part of the catalogue (shared/messages.py,
which is full)."""

from __future__ import annotations

TEMPLATE_MESSAGES: dict[str, dict[str, str]] = {
    "template": {
        "en": "The {part} template has an error{where}: {reason}",
        "ru": "В шаблоне ({part}) ошибка{where}: {reason}",
    },
    "template_construct": {
        "en": "The {part} template uses {what_en}{where}. Merge fields support {{{{ field }}}}, filters such as"
              " upper or default, and {{% if %}} conditions.",
        "ru": "В шаблоне ({part}) есть {what_ru}{where}, а в полях подстановки их нет. Можно использовать"
              " {{{{ поле }}}}, фильтры вроде upper или default и условия {{% if %}}.",
    },
    "template_filter": {
        "en": "The {part} template uses the filter '{name}'{where}, which is not available. Available: {allowed}.",
        "ru": "В шаблоне ({part}) фильтр «{name}»{where} недоступен. Доступны: {allowed}.",
    },
    "template_test": {
        "en": "The {part} template uses the test '{name}'{where}, which is not available. Available: {allowed}.",
        "ru": "В шаблоне ({part}) проверка «{name}»{where} недоступна. Доступны: {allowed}.",
    },
    "template_too_deep": {
        "en": "The {part} template nests conditions or brackets too deeply (at most {limit} levels).",
        "ru": "В шаблоне ({part}) слишком глубокая вложенность условий или скобок (не больше {limit} уровней).",
    },
    "template_too_large": {
        "en": "The {part} for this contact would be longer than {limit} characters. Shorten the template"
              " or the contact's fields.",
        "ru": "Текст ({part}) для этого контакта получился бы длиннее {limit} символов. Сократите шаблон"
              " или поля контакта.",
    },
    "template_html_elements": {
        "en": "The HTML has more than {limit} elements (tags such as <p>, <td> or <a>){footer}; a message may have"
              " at most {limit}. Simplify the layout or split it into several emails.",
        "ru": "В HTML больше {limit} элементов (тегов вроде <p>, <td> или <a>){footer}, а в письме их может быть не"
              " больше {limit}. Упростите вёрстку или разделите письмо на несколько.",
    },
    # Refused where it is written: the part is over the limit sending applies to each recipient's
    # message even with the merge fields empty, so every recipient would fail.
    "template_always_too_large": {
        "en": "The {part_en} part of the message{derived} would be longer than {limit} characters even with the"
              " file's columns empty and the shortest address, so sending would fail for every recipient. Shorten"
              " the template.",
        "ru": "Часть письма «{part_ru}»{derived} получилась бы длиннее {limit} символов даже с пустыми столбцами"
              " файла и самым коротким адресом, и отправка не удалась бы ни одному получателю. Сократите шаблон.",
    },
    "template_fails": {
        "en": "The {part} template cannot be filled in for {whom}: {reason}. Sending would fail the same way,"
              " so it was not accepted.",
        "ru": "Шаблон ({part}) не удаётся заполнить для {whom}: {reason}. Отправка завершилась бы этой же"
              " ошибкой, поэтому шаблон не принят.",
    },
}
