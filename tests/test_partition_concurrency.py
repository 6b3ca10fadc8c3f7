"""Several records of one partition in progress at once (worker_image/consume.py), on real Kafka.

A record slow to handle (a batch waiting on a silent SMTP server) must not hold the records
behind it on its partition; the committed offset must still never pass a record not yet done,
so a worker killed mid-way loses nothing: its successor gets the unfinished record again, and
the records done out of order behind it (harmless for deliveries: claims skip final recipients).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from shared import broker
from shared.settings import get_settings
from tests.helpers import committed_offset, eventually
from worker_image.consume import Revocations, run

SLOW = b"slow"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
async def topic(app_env: dict[str, str]) -> str:
    """A fresh one-partition topic: every record of the test on the same partition."""
    name = f"test.partition-slots.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(**broker.client_options(get_settings()))
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()
    return name


async def produce(topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(**broker.client_options(get_settings()))
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value=value, key=b"one-sender")
    finally:
        await producer.stop()


@pytest.fixture
async def consuming(topic: str) -> AsyncIterator[Callable[[str, Callable[[bytes], Awaitable[None]], int],
                                                          Awaitable[None]]]:
    """Starts `run` in this process for a group; everything started is stopped at the end."""
    stops: list[tuple[asyncio.Event, asyncio.Task[None], AIOKafkaProducer]] = []

    async def start(group: str, handler: Callable[[bytes], Awaitable[None]], slots: int) -> None:
        settings = get_settings()
        consumer = broker.new_consumer(settings, group)
        producer = AIOKafkaProducer(**broker.client_options(settings))
        await producer.start()
        revocations = Revocations()
        consumer.subscribe([topic], listener=revocations)
        await consumer.start()
        stopping = asyncio.Event()

        async def consume() -> None:
            try:
                await run(consumer, producer, handler, f"{topic}.dead", stopping, revocations, per_partition=slots)
            finally:
                await consumer.stop()

        stops.append((stopping, asyncio.create_task(consume()), producer))

    yield start
    for stopping, task, producer in stops:
        stopping.set()
        await asyncio.wait([task], timeout=30)
        task.cancel()  # a handler a failed test never let go of
        await asyncio.gather(task, return_exceptions=True)
        await producer.stop()


@pytest.mark.parametrize("slots", [4, 1])
async def test_a_slow_record_does_not_hold_the_records_behind_it(
    topic: str, consuming: Callable[..., Awaitable[None]], slots: int
) -> None:
    group = f"slots-{uuid.uuid4().hex[:8]}"
    release = asyncio.Event()
    handled: dict[bytes, float] = {}

    async def handler(value: bytes) -> None:
        if value == SLOW:
            await release.wait()  # a batch on a server that never answers, until the test lets go
        handled[value] = time.monotonic()

    await produce(topic, [SLOW, *(b"fast%d" % n for n in range(9))])
    began = time.monotonic()
    await consuming(group, handler, slots)
    if slots == 1:  # the fan-out's commands: strictly one at a time, in order
        await asyncio.sleep(3)
        assert handled == {}, handled
    else:
        await eventually(lambda: len(handled) == 9, 30, "the nine records behind the slow one handled")
        assert SLOW not in handled and time.monotonic() - began < 30
        await asyncio.sleep(1)  # a commit past the slow record would have landed by now
        assert await committed_offset(group, topic, 0) in (-1, 0)  # never past the record in progress
    release.set()

    async def all_committed() -> bool:
        return await committed_offset(group, topic, 0) == 10

    await eventually(all_committed, 30, "every record committed once the slow one is done")
    assert len(handled) == 10
    if slots == 1:
        assert sorted(handled, key=handled.__getitem__) == [SLOW, *(b"fast%d" % n for n in range(9))]


# A worker of its own process, killed with SIGKILL: no `finally`, no commit on the way out.
WORKER = """
import asyncio, sys
from aiokafka import AIOKafkaProducer
from shared import broker
from shared.settings import get_settings
from worker_image.consume import Revocations, run

topic, group, done_file = sys.argv[1:4]

async def handler(value: bytes) -> None:
    if value.startswith(b"slow"):
        await asyncio.sleep(3600)
    with open(done_file, "ab") as out:
        out.write(value + b"\\n")

async def main() -> None:
    settings = get_settings()
    consumer = broker.new_consumer(settings, group)
    producer = AIOKafkaProducer(**broker.client_options(settings))
    await producer.start()
    revocations = Revocations()
    consumer.subscribe([topic], listener=revocations)
    await consumer.start()
    await run(consumer, producer, handler, topic + ".dead", asyncio.Event(), revocations, per_partition=4)

asyncio.run(main())
"""


async def test_a_worker_killed_with_records_in_progress_loses_none(
    topic: str, consuming: Callable[..., Awaitable[None]], workdir: Path
) -> None:
    group = f"slots-{uuid.uuid4().hex[:8]}"
    values = [b"slow-a", *(b"fast%d" % n for n in range(10)), b"slow-b", *(b"fast%d" % n for n in range(10, 20))]
    done_file = workdir / f"{group}.done"
    done_file.touch()
    await produce(topic, values)
    child = await asyncio.create_subprocess_exec(sys.executable, "-c", WORKER, topic, group, str(done_file),
                                                 cwd=ROOT, env=dict(os.environ))
    try:
        await eventually(lambda: len(done_file.read_bytes().split()) == 20, 60,
                         "the killed worker's twenty fast records handled around the two slow ones")
        await asyncio.sleep(1)
        assert await committed_offset(group, topic, 0) in (-1, 0)  # the first slow record is still in progress
    finally:
        child.send_signal(signal.SIGKILL)
        await asyncio.wait_for(child.wait(), 10)
    first_worker = set(done_file.read_bytes().split())

    handled: list[bytes] = []

    async def successor(value: bytes) -> None:
        handled.append(value)

    await consuming(group, successor, 4)

    async def all_committed() -> bool:
        return await committed_offset(group, topic, 0) == len(values)

    await eventually(all_committed, 60, "the successor commits every record")
    assert first_worker | set(handled) == set(values)  # nothing lost
    # Redelivered: at most the records in progress (the slow ones) or done out of order behind them.
    assert set(handled) == set(values) and sorted(handled) == sorted(values), handled
