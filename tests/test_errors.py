"""Error texts exist in Russian and English."""

from __future__ import annotations

from shared.errors import InputError


def test_input_errors_speak_russian_and_english() -> None:
    error = InputError("required", "message")
    assert error.message("en") == "The field 'message' is required."
    assert error.message("ru") == "Поле «текст письма (message)» обязательно."


def test_every_message_has_russian_and_english() -> None:
    from shared.errors import MESSAGES

    assert [code for code, texts in MESSAGES.items() if set(texts) != {"en", "ru"} or not texts["ru"]] == []


def test_field_names_and_address_problems_are_russian_in_russian() -> None:
    from shared.addresses import check_address
    from shared.errors import host_refused

    bad = check_address("ivan.example.com")
    assert bad.explained == "нет знака @ / An email address must have an @-sign."
    assert check_address("   ").explained == "пусто / empty"
    assert InputError("start_needs", "sender_id").message("ru") == "Перед отправкой укажите: отправитель."
    refused = host_refused("host", "smtp.gmial.com", "dns", "the name 'smtp.gmial.com' does not resolve")
    assert refused.message("ru") == "Сервер «smtp.gmial.com» не подходит: такого имени нет в DNS — проверьте, нет ли опечатки"
    assert "does not resolve" in refused.message("en")
