"""The uploads bucket: presigned POSTs for browsers, and reads in chunks for inspection/fan-out.

boto3 is synchronous; async callers run these methods in a thread.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from shared.settings import Settings

CHUNK_BYTES = 1024 * 1024


class ObjectMissing(LookupError):
    """The file is not in the bucket: never uploaded, expired by the lifecycle rule, or deleted."""


class ObjectChanged(LookupError):
    """The file was replaced after it was inspected (its upload form stays valid for a while)."""


@dataclass(frozen=True)
class StoredObject:
    size: int
    etag: str  # reads pass it as If-Match, so what is sent is what was inspected


def _missing(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound")


def _changed(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") in ("412", "PreconditionFailed")


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

    def head(self, key: str) -> StoredObject | None:
        try:
            head = self._client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _missing(exc):
                return None
            raise
        return StoredObject(int(head["ContentLength"]), str(head["ETag"]))

    def read_start(self, key: str, length: int, etag: str | None = None) -> bytes:
        answer = self._get(key, etag, Range=f"bytes=0-{length - 1}")
        data: bytes = answer["Body"].read()
        return data

    def chunks(self, key: str, etag: str | None = None, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
        """The object's bytes in chunks; ObjectMissing when it is not (or no longer) there,
        ObjectChanged when it is no longer the version with `etag`."""
        body = self._get(key, etag)["Body"]
        try:
            yield from body.iter_chunks(chunk_bytes)
        finally:
            body.close()

    def _get(self, key: str, etag: str | None, **extra: Any) -> Any:
        if etag:
            extra["IfMatch"] = etag
        try:
            answer = self._client.get_object(Bucket=self.bucket, Key=key, **extra)
        except ClientError as exc:
            if _missing(exc):
                raise ObjectMissing(key) from None
            if _changed(exc):
                raise ObjectChanged(key) from None
            raise
        return answer

    def delete(self, key: str) -> None:
        self._client.delete_object(Bucket=self.bucket, Key=key)

    def put(self, key: str, data: bytes) -> None:
        self._client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType="text/csv")
