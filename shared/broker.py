"""Kafka plumbing: client options (PLAINTEXT locally, IAM on MSK), topics, producer, consumers.

Only this module and the worker entry points know that the broker is Kafka.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.abc import AbstractTokenProvider
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    CoordinatorLoadInProgressError,
    GroupCoordinatorNotAvailableError,
    TopicAlreadyExistsError,
)

from shared.settings import Settings


class MskIamTokenProvider(AbstractTokenProvider):  # type: ignore[misc]
    """OAUTHBEARER tokens for MSK IAM auth, reused until close to their 15-minute expiry."""

    def __init__(self, region: str) -> None:
        self._region = region
        self._token = ""
        self._expires_at = 0.0

    async def token(self) -> str:
        if time.time() > self._expires_at - 60:
            from aws_msk_iam_sasl_signer import MSKAuthTokenProvider

            # The signer is synchronous (botocore credential chain): keep it off the event loop.
            token, expiry_ms = await asyncio.get_running_loop().run_in_executor(
                None, MSKAuthTokenProvider.generate_auth_token, self._region
            )
            self._token, self._expires_at = token, expiry_ms / 1000
        return self._token


def client_options(settings: Settings) -> dict[str, Any]:
    options: dict[str, Any] = {"bootstrap_servers": settings.kafka_bootstrap.split(",")}
    if settings.kafka_security == "iam":
        options.update(
            security_protocol="SASL_SSL",
            sasl_mechanism="OAUTHBEARER",
            sasl_oauth_token_provider=MskIamTokenProvider(settings.kafka_region),
            ssl_context=ssl.create_default_context(),
        )
    return options


def topic_partitions(settings: Settings) -> dict[str, int]:
    return {
        settings.topic_campaigns: max(1, settings.delivery_partitions // 2),
        settings.topic_deliveries: settings.delivery_partitions,
        settings.topic_dead_letters: 1,
    }


async def ensure_topics(settings: Settings) -> list[str]:
    """Create missing topics with the configured partition counts; returns the ones created."""
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(name, num_partitions=count, replication_factor=settings.kafka_replication)
            for name, count in topic_partitions(settings).items()
            if name not in existing
        ]
        if wanted:
            try:
                await admin.create_topics(wanted)
            except TopicAlreadyExistsError:
                pass  # another process created them first
        return [topic.name for topic in wanted]
    finally:
        await admin.close()


async def start_producer(settings: Settings) -> AIOKafkaProducer:
    # Idempotent rather than transactional: MSK IAM auth does not support transactions.
    producer = AIOKafkaProducer(
        **client_options(settings),
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        request_timeout_ms=15_000,
    )
    await producer.start()
    return producer


def new_consumer(settings: Settings, group: str, **overrides: Any) -> AIOKafkaConsumer:
    """A consumer in `group`, not yet subscribed (subscribe with a rebalance listener)."""
    options: dict[str, Any] = {
        **client_options(settings),
        "group_id": group,
        "enable_auto_commit": False,  # offsets move only after outcomes are durable
        "auto_offset_reset": "earliest",
        "max_poll_records": 20,
        "max_poll_interval_ms": 600_000,
        "session_timeout_ms": settings.kafka_session_timeout_ms,
        "heartbeat_interval_ms": max(settings.kafka_session_timeout_ms // 5, 500),
    }
    options.update(overrides)
    return AIOKafkaConsumer(**options)


async def consumer_lag(settings: Settings, group: str, topic: str) -> dict[int, int]:
    """Messages not yet committed by `group`, per partition of `topic` (what scaling reads)."""
    options = client_options(settings)
    admin = AIOKafkaAdminClient(**options)
    await admin.start()
    try:
        consumer = AIOKafkaConsumer(**options, enable_auto_commit=False)
        await consumer.start()
        try:
            return await _lag(admin, consumer, group, topic)
        finally:
            await consumer.stop()
    finally:
        await admin.close()


async def _lag(admin: AIOKafkaAdminClient, consumer: AIOKafkaConsumer, group: str, topic: str) -> dict[int, int]:
    described = await admin.describe_topics([topic])
    partitions = [TopicPartition(topic, p["partition"]) for p in described[0]["partitions"]]
    for attempt in range(20):
        try:
            committed = await admin.list_consumer_group_offsets(group, partitions=partitions)
            break
        except (GroupCoordinatorNotAvailableError, CoordinatorLoadInProgressError):
            # A fresh cluster creates its offsets topic on first use; the answer comes shortly.
            if attempt == 19:
                raise
            await asyncio.sleep(0.5)
    ends = await consumer.end_offsets(partitions)
    lag = {}
    for tp in partitions:
        position = committed.get(tp)
        done = position.offset if position is not None and position.offset >= 0 else 0
        lag[tp.partition] = max(ends[tp] - done, 0)
    return lag
