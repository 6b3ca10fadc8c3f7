"""Envelope encryption for SMTP passwords.

Each secret gets its own random data key (AES-256-GCM); the data key is stored wrapped by a
master key: a local key in development, an AWS KMS key in production. The stored blob is
self-describing so that the master key provider can change without a data migration of old rows.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import os
from typing import Any, Protocol

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.settings import Settings, SettingsError


class DecryptionError(Exception):
    """The blob was tampered with, or was sealed under another key or context."""


class KeyProvider(Protocol):
    name: str

    async def new_data_key(self, context: str) -> tuple[bytes, bytes]:
        """Return (plaintext data key, wrapped data key)."""

    async def unwrap(self, wrapped: bytes, context: str) -> bytes: ...


class LocalKeyProvider:
    """A master key held by the process (development and tests)."""

    name = "local"

    def __init__(self, master_key: bytes) -> None:
        if len(master_key) != 32:
            raise SettingsError("the local master key must be 32 bytes (base64 in SENDPY_LOCAL_MASTER_KEY)")
        self._master = AESGCM(master_key)

    async def new_data_key(self, context: str) -> tuple[bytes, bytes]:
        data_key = AESGCM.generate_key(bit_length=256)
        nonce = os.urandom(12)
        return data_key, nonce + self._master.encrypt(nonce, data_key, context.encode())

    async def unwrap(self, wrapped: bytes, context: str) -> bytes:
        try:
            return self._master.decrypt(wrapped[:12], wrapped[12:], context.encode())
        except Exception as exc:
            raise DecryptionError("data key does not open with this master key") from exc


class KmsKeyProvider:
    """AWS KMS: GenerateDataKey / Decrypt, bound to the same encryption context."""

    name = "kms"

    def __init__(self, key_id: str, region: str, client: Any | None = None) -> None:
        import boto3

        self._key_id = key_id
        self._client = client or boto3.client("kms", region_name=region)

    async def new_data_key(self, context: str) -> tuple[bytes, bytes]:
        answer = await asyncio.to_thread(
            self._client.generate_data_key,
            KeyId=self._key_id,
            KeySpec="AES_256",
            EncryptionContext={"sendpy": context},
        )
        return answer["Plaintext"], answer["CiphertextBlob"]

    async def unwrap(self, wrapped: bytes, context: str) -> bytes:
        try:
            answer = await asyncio.to_thread(
                self._client.decrypt, CiphertextBlob=wrapped, EncryptionContext={"sendpy": context}
            )
        except Exception as exc:
            raise DecryptionError("KMS refused to decrypt the data key") from exc
        return bytes(answer["Plaintext"])


def key_provider_from_settings(settings: Settings) -> KeyProvider:
    if settings.key_provider == "kms":
        assert settings.kms_key_id is not None
        return KmsKeyProvider(settings.kms_key_id, settings.aws_region)
    if not settings.local_master_key:
        raise SettingsError(
            "SENDPY_LOCAL_MASTER_KEY is not set; generate one with `sendpy new-master-key`"
        )
    try:
        raw = base64.b64decode(settings.local_master_key, validate=True)
    except ValueError:
        raise SettingsError("SENDPY_LOCAL_MASTER_KEY is not valid base64") from None
    return LocalKeyProvider(raw)


def new_master_key() -> str:
    return base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()


async def seal(provider: KeyProvider, plaintext: str, context: str) -> bytes:
    """Encrypt a secret; `context` (e.g. "user:42") must be given again to open it."""
    data_key, wrapped = await provider.new_data_key(context)
    nonce = os.urandom(12)
    ciphertext = AESGCM(data_key).encrypt(nonce, plaintext.encode(), context.encode())
    blob = {
        "v": 1,
        "provider": provider.name,
        "key": base64.b64encode(wrapped).decode(),
        "nonce": base64.b64encode(nonce).decode(),
        "data": base64.b64encode(ciphertext).decode(),
    }
    return json.dumps(blob, separators=(",", ":")).encode()


async def open_sealed(provider: KeyProvider, blob: bytes, context: str) -> str:
    try:
        fields = json.loads(blob)
        wrapped = base64.b64decode(fields["key"])
        nonce = base64.b64decode(fields["nonce"])
        ciphertext = base64.b64decode(fields["data"])
    except (ValueError, KeyError, TypeError) as exc:
        raise DecryptionError("not a sealed secret") from exc
    data_key = await provider.unwrap(wrapped, context)
    try:
        return AESGCM(data_key).decrypt(nonce, ciphertext, context.encode()).decode()
    except Exception as exc:
        raise DecryptionError("secret does not open in this context") from exc


def same_secret(given: str, expected: str) -> bool:
    """Whether two secrets are equal, in a time that does not tell where they differ. Compared as
    UTF-8 bytes: `compare_digest` refuses a str that is not ASCII (a Cyrillic app password)."""
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass"))


async def holds(provider: KeyProvider, blob: bytes | None, context: str, plaintext: str) -> bool:
    """Whether `blob` is sealed `plaintext` (compared in constant time); False when there is no
    blob or it no longer opens (sealed under a key gone since)."""
    if blob is None:
        return False
    try:
        return same_secret(plaintext, await open_sealed(provider, bytes(blob), context))
    except DecryptionError:
        return False
