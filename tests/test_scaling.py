from __future__ import annotations

import pytest

from shared.scaling import ScalingPolicy, desired_workers

POLICY = ScalingPolicy(per_worker_lag=1000, min_workers=1, max_workers=8,
                       scale_in_cooldown_seconds=300, scale_out_cooldown_seconds=60)


@pytest.mark.parametrize(
    ("lag", "partitions", "current", "since", "expected"),
    [
        (0, 6, 1, 999, 1),            # idle: the minimum
        (4500, 6, 1, 999, 5),         # backlog: ceil(4500 / 1000)
        (100_000, 6, 1, 999, 6),      # never more than partitions
        (100_000, 12, 1, 999, 8),     # nor more than max_workers
        (4500, 6, 1, 10, 1),          # scale-out cooldown
        (0, 6, 5, 100, 5),            # scale-in cooldown
        (0, 6, 5, 301, 2),            # scale in by halves
        (1500, 6, 5, 301, 2),         # never below what the lag needs
        (None, 6, 4, 999, 4),         # missing metric: hold
        (None, 6, 0, 999, 1),         # missing metric never keeps us below the minimum
        (2500, 6, 0, 0, 3),           # from zero: no cooldown applies
    ],
)
def test_desired_workers(lag: int | None, partitions: int, current: int, since: float, expected: int) -> None:
    assert desired_workers(lag, partitions, current, since, POLICY) == expected


def test_a_million_recipient_campaign_scales_up_and_back_down() -> None:
    """Simulated minute by minute: 1M recipients in 5,000 batches of 200, each worker clearing
    25 batches (5,000 messages) a minute."""
    policy = ScalingPolicy(per_worker_lag=25, min_workers=1, max_workers=12,
                           scale_in_cooldown_seconds=300, scale_out_cooldown_seconds=60)
    lag, workers, since, history = 5000, 1, 0.0, []
    for _minute in range(60):
        lag = max(lag - workers * 25, 0)
        wanted = desired_workers(lag, 12, workers, since, policy)
        since = 60.0 if wanted != workers else since + 60
        workers = wanted
        history.append(workers)
    assert max(history) == 12 and history[-1] == 1
    assert history.index(12) <= 2


async def test_consumer_lag_is_read_from_the_real_broker(app_env: dict[str, str]) -> None:
    import uuid

    from aiokafka import AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    from shared.broker import consumer_lag, new_consumer
    from shared.settings import get_settings

    settings = get_settings()
    topic, group = f"lag-{uuid.uuid4().hex[:6]}", f"group-{uuid.uuid4().hex[:6]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    for n in range(30):
        await producer.send_and_wait(topic, b"x", partition=n % 3)
    await producer.stop()
    assert await consumer_lag(settings, group, topic) == {0: 10, 1: 10, 2: 10}

    consumer = new_consumer(settings, group)
    consumer.subscribe([topic])
    await consumer.start()
    try:
        records = []
        while len(records) < 12:
            for batch in (await consumer.getmany(timeout_ms=1000, max_records=12 - len(records))).values():
                records.extend(batch)
        from aiokafka import TopicPartition

        last: dict[TopicPartition, int] = {}
        for r in records:
            last[TopicPartition(r.topic, r.partition)] = r.offset + 1
        await consumer.commit(last)
    finally:
        await consumer.stop()
    assert sum((await consumer_lag(settings, group, topic)).values()) == 18
