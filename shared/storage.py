"""The uploads bucket: presigned POSTs for browsers, and reads in chunks for inspection/fan-out.

boto3 is synchronous; async callers run these methods in a thread.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from shared.settings import Settings

CHUNK_BYTES = 1024 * 1024


class ObjectMissing(LookupError):
    """The file is not in the bucket: never uploaded, expired by the lifecycle rule, or deleted."""


class UploadStore:
    def __init__(self, settings: Settings) -> None:
        self.bucket = settings.s3_bucket_uploads
        self._client = boto3.client(
            "s3",
            endpoint_url=settings.s3_endpoint_url,
            region_name=settings.aws_region,
            config=Config(signature_version="s3v4", retries={"max_attempts": 3, "mode": "standard"},
                          connect_timeout=5, read_timeout=30),
        )

    def presigned_post(self, key: str, max_bytes: int, expires: int = 900) -> dict[str, Any]:
        """A form the browser posts the file with; S3 enforces the size (moto does not: we check)."""
        form: dict[str, Any] = self._client.generate_presigned_post(
            Bucket=self.bucket,
            Key=key,
            Fields={"Content-Type": "text/csv"},
            Conditions=[["content-length-range", 1, max_bytes], {"Content-Type": "text/csv"}],
            ExpiresIn=expires,
        )
        return form

    def size(self, key: str) -> int | None:
        try:
            head = self._client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return int(head["ContentLength"])

    def read_start(self, key: str, length: int) -> bytes:
        answer = self._client.get_object(Bucket=self.bucket, Key=key, Range=f"bytes=0-{length - 1}")
        data: bytes = answer["Body"].read()
        return data

    def chunks(self, key: str, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
        """The object's bytes in chunks; ObjectMissing when it is not (or no longer) there."""
        try:
            answer = self._client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                raise ObjectMissing(key) from None
            raise
        body = answer["Body"]
        try:
            yield from body.iter_chunks(chunk_bytes)
        finally:
            body.close()

    def delete(self, key: str) -> None:
        self._client.delete_object(Bucket=self.bucket, Key=key)

    def put(self, key: str, data: bytes) -> None:
        self._client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType="text/csv")
