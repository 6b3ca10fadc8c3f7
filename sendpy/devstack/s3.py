"""S3 on loopback: moto's standalone server (what LocalStack's S3 is built on). In memory only."""

from __future__ import annotations

import sys
from pathlib import Path

from sendpy.devstack.ports import free_port, wait_for_port
from sendpy.devstack.process import Child


class S3Server:
    def __init__(self, log_dir: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self._child = Child(
            "s3", [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            log_dir / "s3.log",
        )

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        self._child.start()
        try:
            wait_for_port(self.port, timeout, alive=self._child.alive)
        except (TimeoutError, RuntimeError) as exc:
            raise RuntimeError(f"the S3 emulator did not start: {exc}\n{self._child.tail()}") from None

    def stop(self) -> None:
        self._child.stop()


def ensure_bucket(endpoint: str, bucket: str, region: str) -> None:
    import boto3

    s3 = boto3.client("s3", endpoint_url=endpoint, region_name=region,
                      aws_access_key_id="local", aws_secret_access_key="local")  # noqa: S106
    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    if bucket not in existing:
        if region == "us-east-1":
            s3.create_bucket(Bucket=bucket)
        else:
            s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})  # type: ignore[typeddict-item]
