"""Every setting Sendpy reads, from environment variables, in one typed place.

Defaults are safe for a single machine: loopback services, private SMTP targets refused,
plaintext SMTP refused. The local stack (`sendpy dev`) and the tests turn on what they need
explicitly.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path


class SettingsError(ValueError):
    """A variable is set to something Sendpy cannot use."""


def _str(name: str, default: str) -> str:
    return os.environ.get(name, default).strip()


def _int(name: str, default: int, minimum: int = 0) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, got {value}")
    return value


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None


def _bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"{name} must be true or false, got {raw!r}")


def _choice(name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = _str(name, default).lower()
    if value not in allowed:
        raise SettingsError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    return value


@dataclass(frozen=True)
class Settings:
    database_url: str
    database_pool_max: int
    database_iam_auth: bool  # RDS (Proxy) IAM authentication: a fresh token as the password

    kafka_bootstrap: str
    kafka_security: str  # "plaintext" locally, "iam" on MSK
    kafka_region: str
    topic_campaigns: str
    topic_deliveries: str
    topic_dead_letters: str
    delivery_partitions: int
    kafka_replication: int
    kafka_session_timeout_ms: int  # how soon a dead worker's partitions move to the others
    consumer_group_fanout: str
    consumer_group_sender: str

    s3_endpoint_url: str | None
    s3_bucket_uploads: str
    max_upload_bytes: int
    aws_region: str

    key_provider: str  # "local" or "kms"
    local_master_key: str
    kms_key_id: str | None
    signing_key: str  # signs unsubscribe links; derived from the local master key when unset
    signing_key_secret_arn: str | None  # or a Secrets Manager secret holding it (AWS Lambda)

    smtp_allow_private: bool
    smtp_allow_plaintext: bool
    smtp_timeout: float
    smtp_ca_file: str | None  # extra CA to trust (the local sink's); system store always trusted
    smtp_pool_size: int

    delivery_batch_size: int
    fanout_chunk_rows: int  # recipients committed (and published) per fan-out step
    campaign_window: int  # delivery batches of one user's campaigns out in Kafka at once (default: 2 per partition)
    batches_per_partition: int  # delivery batches a sender worker works on at once per partition (default: window + 1)
    file_readers: int  # big contact files one fan-out worker reads at once (~1.8 GB each at the 200 MB limit)
    file_readers_per_user: int  # files of one user read at once, across every worker
    file_job_lease_seconds: float  # a dead reader's file is taken over after this
    file_job_seconds: float  # the longest one reading of a file may take; then it fails with the reason
    stall_seconds: float  # a sending campaign with no progress this long gets its batches again
    retry_base_seconds: float  # first retry after a 4xx or network error; then ×4 each time
    retry_max_attempts: int
    retry_max_delay_seconds: float
    sender_pause_seconds: float  # how long a quota / lock-out reply pauses the account
    claim_lease_seconds: float  # after this, a recipient claimed by a silent worker may be taken over
    batch_budget_seconds: float  # how long one delivery batch may hold its partition (and bounds each message)
    slow_backoff_seconds: float  # an account whose server is too slow first waits this long, then twice as long
    public_base_url: str
    # Connections one client address may hold open to a self-hosted API (functions/serve.py);
    # 0 turns the cap off, e.g. behind a reverse proxy that limits them itself.
    api_connections_per_client: int
    trusted_proxy_hops: int  # X-Forwarded-For entries appended by proxies we trust (CloudFront: 1)

    serve_web: bool  # the API also serves web/ (local stack, compose); in AWS the CDN does
    log_level: str
    heartbeat_file: str  # touched on every poll; the worker container's health check reads its age
    waker_interval: float  # how often due deferred batches are handed back to the sender workers
    bounce_poll_seconds: float  # how often each sender's INBOX is read for bounces
    bounce_concurrency: int  # INBOXes one bounce worker reads at once
    bounce_idle_connections: int  # IMAP IDLE sessions one bounce worker keeps (the rest are polled)
    bounce_idle_lease_seconds: float  # an IDLE session's claim on its sender, renewed every quarter of it

    # The lag publisher (functions/lag_publisher.py) scales this ECS service on consumer lag.
    ecs_cluster: str
    ecs_service: str
    scale_per_worker_lag: int
    scale_min: int
    scale_max: int


def load_settings() -> Settings:
    """Read the environment now; raises SettingsError with the variable's name on bad values."""
    key_provider = _choice("SENDPY_KEY_PROVIDER", "local", ("local", "kms"))
    kms_key_id = os.environ.get("SENDPY_KMS_KEY_ID") or None
    if key_provider == "kms" and not kms_key_id:
        raise SettingsError("SENDPY_KMS_KEY_ID is required when SENDPY_KEY_PROVIDER=kms")
    return Settings(
        database_url=_str("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
        database_pool_max=_int("SENDPY_DB_POOL_MAX", 5, minimum=1),
        database_iam_auth=_bool("SENDPY_DATABASE_IAM_AUTH", False),
        kafka_bootstrap=_str("SENDPY_KAFKA_BOOTSTRAP", "127.0.0.1:9092"),
        kafka_security=_choice("SENDPY_KAFKA_SECURITY", "plaintext", ("plaintext", "iam")),
        kafka_region=_str("SENDPY_KAFKA_REGION", _str("AWS_REGION", "us-east-1")),
        topic_campaigns=_str("SENDPY_TOPIC_CAMPAIGNS", "sendpy.campaigns"),
        topic_deliveries=_str("SENDPY_TOPIC_DELIVERIES", "sendpy.deliveries"),
        topic_dead_letters=_str("SENDPY_TOPIC_DEAD_LETTERS", "sendpy.dead-letters"),
        delivery_partitions=_int("SENDPY_DELIVERY_PARTITIONS", 6, minimum=1),
        kafka_replication=_int("SENDPY_KAFKA_REPLICATION", 1, minimum=1),
        kafka_session_timeout_ms=_int("SENDPY_KAFKA_SESSION_TIMEOUT_MS", 15_000, minimum=6_000),
        consumer_group_fanout=_str("SENDPY_GROUP_FANOUT", "sendpy-fanout"),
        consumer_group_sender=_str("SENDPY_GROUP_SENDER", "sendpy-sender"),
        s3_endpoint_url=os.environ.get("SENDPY_S3_ENDPOINT_URL") or None,
        s3_bucket_uploads=_str("SENDPY_S3_BUCKET_UPLOADS", "sendpy-uploads"),
        max_upload_bytes=_int("SENDPY_MAX_UPLOAD_BYTES", 200 * 1024 * 1024, minimum=1024),
        aws_region=_str("AWS_REGION", "us-east-1"),
        key_provider=key_provider,
        local_master_key=_str("SENDPY_LOCAL_MASTER_KEY", ""),
        kms_key_id=kms_key_id,
        signing_key=_str("SENDPY_SIGNING_KEY", ""),
        signing_key_secret_arn=os.environ.get("SENDPY_SIGNING_KEY_SECRET_ARN") or None,
        smtp_allow_private=_bool("SENDPY_SMTP_ALLOW_PRIVATE", False),
        smtp_allow_plaintext=_bool("SENDPY_SMTP_ALLOW_PLAINTEXT", False),
        smtp_timeout=_float("SENDPY_SMTP_TIMEOUT", 30.0),
        smtp_ca_file=os.environ.get("SENDPY_SMTP_CA_FILE") or None,
        smtp_pool_size=_int("SENDPY_SMTP_POOL_SIZE", 5, minimum=1),
        delivery_batch_size=_int("SENDPY_DELIVERY_BATCH_SIZE", 200, minimum=1),
        fanout_chunk_rows=_int("SENDPY_FANOUT_CHUNK_ROWS", 20_000, minimum=100),
        campaign_window=_int("SENDPY_CAMPAIGN_WINDOW", 0) or 2 * _int("SENDPY_DELIVERY_PARTITIONS", 6, minimum=1),
        # One more than a user's whole window: one user's batches never take every slot of a partition.
        batches_per_partition=_int("SENDPY_BATCHES_PER_PARTITION", 0) or 1 + (
            _int("SENDPY_CAMPAIGN_WINDOW", 0) or 2 * _int("SENDPY_DELIVERY_PARTITIONS", 6, minimum=1)),
        file_readers=_int("SENDPY_FILE_READERS", 2, minimum=1),
        file_readers_per_user=_int("SENDPY_FILE_READERS_PER_USER", 1, minimum=1),
        file_job_lease_seconds=_float("SENDPY_FILE_JOB_LEASE_SECONDS", 30.0),
        file_job_seconds=_float("SENDPY_FILE_JOB_SECONDS", 1800.0),
        stall_seconds=_float("SENDPY_STALL_SECONDS", 900.0),
        retry_base_seconds=_float("SENDPY_RETRY_BASE_SECONDS", 30.0),
        retry_max_attempts=_int("SENDPY_RETRY_MAX_ATTEMPTS", 10, minimum=1),
        retry_max_delay_seconds=_float("SENDPY_RETRY_MAX_DELAY_SECONDS", 3600.0),
        sender_pause_seconds=_float("SENDPY_SENDER_PAUSE_SECONDS", 3600.0),
        claim_lease_seconds=_float("SENDPY_CLAIM_LEASE_SECONDS", 120.0),
        batch_budget_seconds=_float("SENDPY_BATCH_BUDGET_SECONDS", 20.0),
        slow_backoff_seconds=_float("SENDPY_SLOW_BACKOFF_SECONDS", 60.0),
        public_base_url=_str("SENDPY_PUBLIC_BASE_URL", "http://127.0.0.1:8000").rstrip("/"),
        api_connections_per_client=_int("SENDPY_API_CONNECTIONS_PER_CLIENT", 200, minimum=0),
        trusted_proxy_hops=_int("SENDPY_TRUSTED_PROXY_HOPS", 0),
        serve_web=_bool("SENDPY_SERVE_WEB", False),
        log_level=_choice("SENDPY_LOG_LEVEL", "info", ("debug", "info", "warning", "error", "critical")).upper(),
        heartbeat_file=_str("SENDPY_HEARTBEAT_FILE", "") or str(Path(tempfile.gettempdir()) / "sendpy-heartbeat"),
        waker_interval=_float("SENDPY_WAKER_INTERVAL", 2.0),
        bounce_poll_seconds=_float("SENDPY_BOUNCE_POLL_SECONDS", 60.0),
        bounce_concurrency=_int("SENDPY_BOUNCE_CONCURRENCY", 4),
        bounce_idle_connections=_int("SENDPY_BOUNCE_IDLE_CONNECTIONS", 50),
        bounce_idle_lease_seconds=_float("SENDPY_BOUNCE_IDLE_LEASE_SECONDS", 120.0),
        ecs_cluster=_str("SENDPY_ECS_CLUSTER", ""),
        ecs_service=_str("SENDPY_ECS_SERVICE", ""),
        scale_per_worker_lag=_int("SENDPY_SCALE_PER_WORKER_LAG", 25, minimum=1),
        scale_min=_int("SENDPY_SCALE_MIN", 1),
        scale_max=_int("SENDPY_SCALE_MAX", 6, minimum=1),
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once (a Lambda container or worker never changes env)."""
    return load_settings()
