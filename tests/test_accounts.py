"""Passwords (Argon2id) and API keys: the pure parts of shared/accounts.py (the API tests cover the rest)."""

from __future__ import annotations

from shared.accounts import api_secret_matches, hash_password, new_api_key, split_api_key, verify_password


def test_api_keys_and_passwords() -> None:
    key = new_api_key()
    parts = split_api_key(key.token)
    assert parts is not None and parts[0] == key.prefix
    assert api_secret_matches(parts[1], key.secret_hash)
    assert not api_secret_matches(parts[1] + "x", key.secret_hash)
    assert split_api_key("sp_short_x") is None and split_api_key("nope") is None


async def test_passwords_are_argon2id_hashed_off_the_event_loop() -> None:
    hashed = await hash_password("correct horse")
    assert hashed.startswith("$argon2id$")
    assert await verify_password(hashed, "correct horse") and not await verify_password(hashed, "wrong")
