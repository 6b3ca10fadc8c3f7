"""Words the system writes for everyone, read in one language (issue 12): a deferral's reason as a
code with the sender's limit, replies Sendpy writes itself in the reader's language, and the
problems CSV's reasons in the chosen language only."""

from __future__ import annotations

import datetime as dt

import pytest

from shared.campaigns.next_batch import NextBatch, classify, deferral_text
from shared.export import recipient_row, reply_in
from shared.uploads import reason_in

AT = dt.datetime(2026, 12, 5, 18, 28, tzinfo=dt.UTC)


@pytest.mark.parametrize(("reason", "span", "per_minute", "per_day", "expected"), [
    ("rate limit", 45, 20, 500, ("minute_limit", 20)),
    ("rate limit", 5 * 3600, 20, 500, ("day_limit", 500)),  # put off for hours: the day's limit
    ("rate limit", 45, None, 500, ("day_limit", 500)),
    ("rate limit", 45, None, None, ("rate_limit", None)),
    ("sender paused", 300, 20, 500, ("sender_paused", None)),
    ("slow server", 60, 20, 500, ("slow_server", None)),
    ("time budget", 20, 20, 500, ("continuing", None)),
    ("retry", 600, 20, 500, ("retry", None)),
    ("421 4.7.0 Try again later", 600, 20, 500, ("error", None)),
])
def test_a_deferral_reason_becomes_a_code_and_the_limit_that_holds_it(
    reason: str, span: float, per_minute: int | None, per_day: int | None, expected: tuple[str, int | None]
) -> None:
    assert classify(reason, span, per_minute, per_day) == expected


def test_the_status_reason_of_a_wait_is_whole_in_each_language() -> None:
    russian, english = deferral_text(AT, "rate limit").split(" / ")
    assert russian == "Следующие письма около 18:28 (UTC) — лимит отправителя"
    assert english == "Next emails around 18:28 UTC — the sender's limit"
    # A server's words are quoted as they are; a " / " in them cannot split the languages.
    text = deferral_text(AT, "451 a / b")
    assert text.count(" / ") == 1 and "451 a - b" in text.split(" / ")[0]
    assert NextBatch(AT, "rate limit", "minute_limit", 20).to_json(deferral_text(AT, "rate limit")) == {
        "at": int(AT.timestamp()), "reason": "minute_limit", "limit": 20, "detail": None, "in_status_reason": True}
    other = NextBatch(AT, "421 busy", "error", None).to_json("Сервер … отвечает очень медленно / …")
    assert other["detail"] == "421 busy" and other["in_status_reason"] is False


@pytest.mark.parametrize(("reply", "ru", "en"), [
    ("suppressed", "в списке исключений", "on the suppression list"),
    ("cancelled", "рассылка отменена", "the campaign was cancelled"),
    ("10 попыток не удались; gave up after 10 attempts: 421 busy",
     "попыток сделано: 10; последний ответ: 421 busy", "gave up after 10 attempts: 421 busy"),
    ("ошибка шаблона: деление на ноль / template error: division by zero",
     "ошибка шаблона: деление на ноль", "template error: division by zero"),
    ("250 2.0.0 Ok: queued", "250 2.0.0 Ok: queued", "250 2.0.0 Ok: queued"),
    ("550 5.1.1 <a/b@example.com> / unknown", "550 5.1.1 <a/b@example.com> / unknown",
     "550 5.1.1 <a/b@example.com> / unknown"),  # a server's words, not ours: left whole
    (None, None, None),
])
def test_replies_sendpy_writes_itself_are_read_in_the_readers_language(reply: str | None, ru: str, en: str) -> None:
    assert (reply_in(reply, "ru"), reply_in(reply, "en")) == (ru, en)


def test_the_export_row_carries_the_translated_reply() -> None:
    row = {"position": 2, "email": "bob@example.com", "status": "skipped", "reply": "suppressed", "attempts": 0,
           "updated_at": AT, "fields": {}}
    assert recipient_row(row, "ru", [])[2:4] == ["пропущено", "в списке исключений"]


def test_a_problem_reason_in_the_chosen_language_only() -> None:
    assert (reason_in("пусто / empty", "ru"), reason_in("пусто / empty", "en")) == ("пусто", "empty")
    assert reason_in("нет знака @ / An email address must have an @-sign.", "en") == "An email address must have an @-sign."
