"""Messages about the delivery of a user's mail in English and Russian, part of the catalogue
(shared/messages.py, which is full)."""

from __future__ import annotations

DELIVERY_MESSAGES: dict[str, dict[str, str]] = {
    "own_mail_first": {
        "en": "Your other mail goes out first: all your campaigns and messages share one queue, and"
              " theirs fill it now. This one goes out by itself when its turn comes; to send it sooner, pause or"
              " cancel your other campaigns.",
        "ru": "Сначала уходят другие ваши письма: все ваши рассылки и письма отправляются через общую"
              " очередь, и сейчас она занята ими. Отправка пойдёт сама, когда подойдёт очередь; чтобы раньше,"
              " приостановите или отмените другие рассылки.",
    },
}
