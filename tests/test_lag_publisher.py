"""The lag publisher (functions/lag_publisher.py) against the real broker and moto's ECS and CloudWatch.

It must scale the sender service out when deliveries pile up, publish the lag it read, and, when
the lag cannot be read, hold the worker count and publish nothing rather than take a missing
number for an empty queue.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from moto import mock_aws

from sendpy.devstack.ports import free_port

CLUSTER, SERVICE = "sendpy-test", "sender"
LONG_AGO = dt.timedelta(minutes=10)  # past both cooldowns of shared/scaling.py


@pytest.fixture
def lag_env(app_env: dict[str, str]) -> Iterator[dict[str, str]]:
    """Settings of a lag publisher for a deliveries topic and sender group of this test only."""
    from shared.settings import get_settings

    env = {
        "SENDPY_ECS_CLUSTER": CLUSTER,
        "SENDPY_ECS_SERVICE": SERVICE,
        "SENDPY_SCALE_PER_WORKER_LAG": "10",
        "SENDPY_SCALE_MIN": "1",
        "SENDPY_SCALE_MAX": "6",
        "SENDPY_TOPIC_DELIVERIES": f"lag-deliveries-{uuid.uuid4().hex[:8]}",
        "SENDPY_GROUP_SENDER": f"lag-sender-{uuid.uuid4().hex[:8]}",
        "AWS_DEFAULT_REGION": app_env["AWS_REGION"],
    }
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    get_settings.cache_clear()
    try:
        yield env
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        get_settings.cache_clear()


@pytest.fixture
def aws(lag_env: dict[str, str]) -> Iterator[None]:
    with mock_aws():
        yield


def _service_deployed(desired: int, ago: dt.timedelta, monkeypatch: pytest.MonkeyPatch) -> None:
    """An ECS cluster and the sender service, whose last deployment changed `ago`."""
    import moto.ecs.models

    when = dt.datetime.now(dt.UTC).replace(tzinfo=None) - ago  # moto keeps naive UTC times
    with monkeypatch.context() as patch:
        patch.setattr(moto.ecs.models, "utcnow", lambda: when)
        ecs = boto3.client("ecs")
        ecs.create_cluster(clusterName=CLUSTER)
        ecs.create_service(cluster=CLUSTER, serviceName=SERVICE, desiredCount=desired)


def _desired_count() -> int:
    found = boto3.client("ecs").describe_services(cluster=CLUSTER, services=[SERVICE])["services"][0]
    return int(found["desiredCount"])


def _lag_datapoints() -> list[dict[str, Any]]:
    now = dt.datetime.now(dt.UTC)
    answer = boto3.client("cloudwatch").get_metric_statistics(
        Namespace="Sendpy", MetricName="DeliveryLag", Dimensions=[{"Name": "Service", "Value": SERVICE}],
        StartTime=now - dt.timedelta(minutes=10), EndTime=now + dt.timedelta(minutes=10), Period=60,
        Statistics=["Maximum", "SampleCount"])
    return list(answer["Datapoints"])


async def _run_handler() -> dict[str, Any]:
    from functions.lag_publisher import handler

    # The handler runs its own event loop (asyncio.run), as it does in Lambda: give it a thread.
    result: dict[str, Any] = await asyncio.to_thread(handler, {}, None)
    return result


async def test_lag_on_the_deliveries_topic_scales_the_senders_out_and_is_published(
    lag_env: dict[str, str], aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shared import broker
    from shared.settings import get_settings

    settings = get_settings()
    topic = settings.topic_deliveries
    assert topic == lag_env["SENDPY_TOPIC_DELIVERIES"]
    admin = AIOKafkaAdminClient(**broker.client_options(settings))
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=settings.delivery_partitions,
                                            replication_factor=1)])
    finally:
        await admin.close()
    producer = await broker.start_producer(settings)
    try:
        for n in range(30):  # 30 batches waiting, nobody consuming
            await producer.send_and_wait(topic, b"batch", partition=n % settings.delivery_partitions)
    finally:
        await producer.stop()
    _service_deployed(1, LONG_AGO, monkeypatch)

    result = await _run_handler()

    assert _desired_count() == 3  # 30 waiting / 10 per worker
    points = _lag_datapoints()
    assert [(p["Maximum"], p["SampleCount"], p["Unit"]) for p in points] == [(30.0, 1.0, "Count")]
    assert result == {"lag": 30, "current": 1, "desired": 3}


async def test_unreadable_lag_holds_the_worker_count_and_publishes_nothing(
    lag_env: dict[str, str], aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shared.settings import get_settings

    # Three workers, long past the cooldowns: a lag taken as zero would halve them.
    _service_deployed(3, LONG_AGO, monkeypatch)
    monkeypatch.setenv("SENDPY_KAFKA_BOOTSTRAP", f"127.0.0.1:{free_port()}")  # nothing listens there
    get_settings.cache_clear()
    try:
        result = await _run_handler()
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()

    assert _desired_count() == 3
    assert boto3.client("cloudwatch").list_metrics(Namespace="Sendpy")["Metrics"] == []
    assert _lag_datapoints() == []
    assert result == {"lag": None, "current": 3, "desired": 3}
