"""Error texts exist in Russian and English."""

from __future__ import annotations

from shared.errors import InputError


def test_input_errors_speak_russian_and_english() -> None:
    error = InputError("required", "message")
    assert error.message("en") == "The field 'message' is required."
    assert error.message("ru") == "Поле «message» обязательно."
