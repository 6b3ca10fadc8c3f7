"""Envelope encryption: a secret sealed for one context opens only there."""

from __future__ import annotations

import pytest

from shared.crypto import DecryptionError, LocalKeyProvider, open_sealed, seal


async def test_sealed_secret_opens_only_in_its_context() -> None:
    provider = LocalKeyProvider(b"k" * 32)
    blob = await seal(provider, "s3cret пароль", "user:1")
    assert b"s3cret" not in blob
    assert await open_sealed(provider, blob, "user:1") == "s3cret пароль"
    with pytest.raises(DecryptionError):
        await open_sealed(provider, blob, "user:2")
    with pytest.raises(DecryptionError):
        await open_sealed(LocalKeyProvider(b"x" * 32), blob, "user:1")
    tampered = blob.replace(b'"data":"', b'"data":"AA')
    with pytest.raises(DecryptionError):
        await open_sealed(provider, tampered, "user:1")
