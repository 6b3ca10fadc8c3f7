"""Envelope encryption with AWS KMS, against moto's server (the same code path as production)."""

from __future__ import annotations

import boto3
import pytest

from sendpy.devstack.s3 import S3Server
from shared.crypto import DecryptionError, KmsKeyProvider, open_sealed, seal


async def test_kms_seals_and_opens_with_context(s3: S3Server) -> None:
    kms = boto3.client("kms", endpoint_url=s3.endpoint, region_name="us-east-1",
                       aws_access_key_id="test", aws_secret_access_key="test")
    key_id = kms.create_key(Description="sendpy test")["KeyMetadata"]["KeyId"]
    provider = KmsKeyProvider(key_id, "us-east-1", client=kms)
    blob = await seal(provider, "app password", "user:7")
    assert b"app password" not in blob and b'"provider":"kms"' in blob
    assert await open_sealed(provider, blob, "user:7") == "app password"
    with pytest.raises(DecryptionError):
        await open_sealed(provider, blob, "user:8")
