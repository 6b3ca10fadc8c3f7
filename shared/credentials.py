"""User passwords (Argon2id) and API keys (random, stored as SHA-256 digests)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()  # argon2-cffi's defaults are Argon2id with RFC 9106 parameters

API_KEY_PREFIX = "sp_"


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@dataclass(frozen=True)
class NewApiKey:
    token: str  # shown once to the user, never stored
    prefix: str  # stored in clear to find the row and to show in lists
    secret_hash: bytes


def new_api_key() -> NewApiKey:
    # A 256-bit random secret needs no slow hash: nobody can guess it offline.
    prefix = secrets.token_hex(4)
    secret = secrets.token_urlsafe(32)
    return NewApiKey(
        token=f"{API_KEY_PREFIX}{prefix}_{secret}",
        prefix=prefix,
        secret_hash=hashlib.sha256(secret.encode()).digest(),
    )


def split_api_key(token: str) -> tuple[str, str] | None:
    """Return (prefix, secret) of a well-formed token, or None."""
    if not token.startswith(API_KEY_PREFIX):
        return None
    prefix, sep, secret = token[len(API_KEY_PREFIX) :].partition("_")
    if not sep or len(prefix) != 8 or not secret:
        return None
    return prefix, secret


def api_secret_matches(secret: str, secret_hash: bytes) -> bool:
    return hmac.compare_digest(hashlib.sha256(secret.encode()).digest(), secret_hash)
