"""The consume loop shared by every worker: at-least-once, never stuck on a bad record.

A record's offset is committed only after its handler returned, i.e. after its outcome is in
Postgres. A record that cannot be decoded, or whose handler keeps failing, is copied to the
dead-letter topic with the error and then committed, so it never blocks its partition.

A sender worker works on up to `SENDPY_BATCHES_PER_PARTITION` delivery batches of one partition
at once. Worked one at a time, a batch waiting on a server that never greets held every batch
behind it for its whole connect deadline (another user's one-recipient mail: 8.7 s, 29 s behind
15 such servers, 40 s in tests/test_user_faults_slow_smtp.py). Batches are keyed by sender, and one
user has at most `SENDPY_CAMPAIGN_WINDOW` batches in Kafka (12 at the default 6 partitions, all of
them on one partition at worst: one limited sender, or senders made until they share one); the
default is one more (13), so one user's batches never fill a partition's slots and another user's
batch always starts at once. (Two users each filling their window on one partition can still
queue a third; the slots bound what one user costs, they are not fair queueing.) Batches of one
account running together share its `SenderState`: the connection cap, the limiter and the pause
(shared/delivery/connections.py, shared/limits.py), so the account's limits stay exact.

The committed offset is the first one not yet done, never past a record in progress. A crash or
a rebalance therefore redelivers at most the records in progress and those done out of order
behind them — harmless: a claim skips recipients already final and is atomic, so none is mailed
twice for it. The fan-out keeps one slot: a campaign's commands must stay in order.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError

from shared.commands import MalformedWork
from shared.db import TRANSIENT_DB_ERRORS
from shared.settings import get_settings

log = logging.getLogger("sendpy.worker")

Handler = Callable[[bytes], Awaitable[None]]
def beat() -> None:
    """Touched on every poll (and every bounce round); the container health check reads its age."""
    Path(get_settings().heartbeat_file).touch()
HANDLER_ATTEMPTS = 3


async def _dead_letter(
    producer: AIOKafkaProducer, topic: str, record: ConsumerRecord, error: str
) -> None:
    headers = [
        ("error", error.encode()[:1000]),
        ("source-topic", record.topic.encode()),
        ("source-partition", str(record.partition).encode()),
        ("source-offset", str(record.offset).encode()),
    ]
    await producer.send_and_wait(topic, value=record.value, key=record.key, headers=headers)
    log.error("dead-lettered", extra={"topic": record.topic, "partition": record.partition,
                                      "offset": record.offset, "error": error})


def is_transient(exc: BaseException) -> bool:
    """Trouble with Postgres or Kafka that passes: retried until it does, never dead-lettered."""
    if isinstance(exc, BaseExceptionGroup):
        return all(is_transient(inner) for inner in exc.exceptions)
    return isinstance(exc, (*TRANSIENT_DB_ERRORS, KafkaError))


GiveUp = Callable[[bytes, str], Awaitable[None]]


async def _handle(
    handler: Handler, record: ConsumerRecord, producer: AIOKafkaProducer, dead_letters: str,
    stopping: asyncio.Event, on_give_up: GiveUp | None = None,
) -> bool:
    """True when the record is done with (handled or dead-lettered) and may be committed."""
    failures = 0
    delay = 0.5
    while True:
        try:
            await handler(record.value or b"")
            return True
        except MalformedWork as exc:
            await _dead_letter(producer, dead_letters, record, f"malformed: {exc}")
            return True
        except Exception as exc:
            if is_transient(exc):
                log.warning("transient failure, retrying", exc_info=True, extra={"offset": record.offset})
            else:
                failures += 1
                if failures >= HANDLER_ATTEMPTS:
                    error = f"{type(exc).__name__}: {exc}"
                    await _dead_letter(producer, dead_letters, record, error)
                    if on_give_up is not None:
                        try:
                            await on_give_up(record.value or b"", error)
                        except Exception:  # telling the user must never block the partition
                            log.warning("could not record why a record was dead-lettered", exc_info=True)
                    return True
                log.warning("handler failed, retrying", exc_info=True,
                            extra={"offset": record.offset, "attempt": failures})
            if stopping.is_set():
                return False  # leave it uncommitted: the next owner of the partition retries it
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)


class Partition:
    """One assigned partition's records in hand: waiting for a slot, or in progress.

    `order` holds the offsets in hand in the order they came; `done` those finished (handled or
    dead-lettered) out of that order. The committed offset is the first one not yet done, so it
    never passes a record in progress, and a record finished early is committed once every one
    before it is done.
    """

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self.waiting: deque[ConsumerRecord] = deque()
        self.order: deque[int] = deque()
        self.done: set[int] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.revoked = False  # taken away: nothing more starts here, its records go to the new owner
        self.committed = -1
        self.committing = asyncio.Lock()

    def take(self, records: list[ConsumerRecord]) -> None:
        self.waiting.extend(records)
        self.order.extend(record.offset for record in records)

    def finished(self, offset: int) -> int | None:
        """Mark `offset` done; the offset to commit now, if the done prefix grew."""
        self.done.add(offset)
        upto = None
        while self.order and self.order[0] in self.done:
            upto = self.order.popleft()
            self.done.discard(upto)
        return None if upto is None else upto + 1

    @property
    def busy(self) -> bool:
        return bool(self.tasks) and not all(task.done() for task in self.tasks)


class Revocations(ConsumerRebalanceListener):  # type: ignore[misc]
    """Remembers partitions taken away mid-batch, so their remaining records are left alone (the
    new owner gets them from the last committed offset), and lets the records in progress on a
    revoked partition finish before the partition moves, so two workers never send the same record."""

    def __init__(self) -> None:
        self.revoked: set[TopicPartition] = set()
        self.partitions: dict[TopicPartition, Partition] = {}

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        self.revoked.update(revoked)
        if revoked:
            log.info("partitions revoked", extra={"partitions": sorted(tp.partition for tp in revoked)})
            busy: list[asyncio.Task[None]] = []
            for tp in revoked:
                partition = self.partitions.get(tp)
                if partition is not None:
                    partition.revoked = True
                    partition.waiting.clear()
                    busy += [task for task in partition.tasks if not task.done()]
            if busy:
                await asyncio.wait(busy, timeout=REVOKE_WAIT_SECONDS)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self.revoked.difference_update(assigned)
        if assigned:
            log.info("partitions assigned", extra={"partitions": sorted(tp.partition for tp in assigned)})


# How long a rebalance waits for the records in progress on a revoked partition (a batch is bounded
# by the deliverer's own deadlines well inside this).
REVOKE_WAIT_SECONDS = 60.0


async def run(
    consumer: AIOKafkaConsumer,
    producer: AIOKafkaProducer,
    handler: Handler,
    dead_letters: str,
    stopping: asyncio.Event,
    revocations: Revocations,
    on_give_up: GiveUp | None = None,
    per_partition: int = 1,
) -> None:
    """Consume until `stopping` is set; records in progress always finish first.

    Partitions are worked on concurrently, and within one partition up to `per_partition`
    records at once (1: strictly in order). A partition with records waiting for a slot is paused
    until they have one, so the worker holds at most one fetch of each partition.
    """
    partitions = revocations.partitions

    async def slot(tp: TopicPartition, partition: Partition) -> None:
        while partition.waiting and not partition.revoked and not stopping.is_set():
            record = partition.waiting.popleft()
            if not await _handle(handler, record, producer, dead_letters, stopping, on_give_up):
                return  # left in hand, uncommitted: the next owner retries it
            upto = partition.finished(record.offset)
            if upto is not None:
                async with partition.committing:
                    if upto > partition.committed:
                        partition.committed = upto
                        await _commit(consumer, tp, upto)

    def fill(tp: TopicPartition, partition: Partition) -> None:
        partition.tasks = {task for task in partition.tasks if not task.done()}
        for _ in range(min(partition.slots - len(partition.tasks), len(partition.waiting))):
            partition.tasks.add(asyncio.create_task(slot(tp, partition)))

    while not stopping.is_set():
        beat()
        owned = consumer.assignment()
        for tp, partition in list(partitions.items()):
            if tp not in owned or tp in revocations.revoked:
                partition.revoked = True
                partition.waiting.clear()
            if partition.revoked:
                if not partition.busy:
                    del partitions[tp]  # its records go to whoever owns the partition now
                    if tp in owned and tp not in revocations.revoked:
                        consumer.resume(tp)  # given back to this worker meanwhile: read it afresh
                continue
            fill(tp, partition)
            if partition.waiting:
                consumer.pause(tp)
            else:
                consumer.resume(tp)
        try:
            batches = await consumer.getmany(timeout_ms=200, max_records=None)
        except KafkaError:
            log.warning("poll failed; retrying", exc_info=True)
            await asyncio.sleep(1)
            continue
        for tp, records in batches.items():
            if tp in revocations.revoked or tp not in consumer.assignment():
                continue  # its new owner reads them from the last committed offset
            held = partitions.get(tp)
            if held is not None and held.revoked:
                # Given back to this worker while records of its earlier turn are still in
                # progress: moved back, to come again once those are done.
                consumer.seek(tp, records[0].offset)
                consumer.pause(tp)
                continue
            partition = held or partitions.setdefault(tp, Partition(per_partition))
            partition.take(records)
            fill(tp, partition)
            if partition.waiting:
                consumer.pause(tp)
    running = [task for partition in partitions.values() for task in partition.tasks]
    if running:
        await asyncio.gather(*running, return_exceptions=True)


async def _commit(consumer: AIOKafkaConsumer, tp: TopicPartition, offset: int) -> None:
    try:
        await consumer.commit({tp: offset})
    except CommitFailedError:
        # The partition moved to another worker mid-record. It redelivers from the last
        # committed offset, and recipients already final are skipped there, not resent.
        log.warning("commit refused after a rebalance", extra={"partition": tp.partition, "offset": offset})
    except KafkaError:
        log.warning("commit failed; the record may be redelivered", exc_info=True)


def stop_on_signals(stopping: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line; `extra` fields included. Secrets never reach a log call."""

    _standard = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        payload = {"time": self.formatTime(record), "level": record.levelname, "logger": record.name,
                   "message": record.getMessage()}
        payload.update({k: v for k, v in record.__dict__.items() if k not in self._standard})
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str, ensure_ascii=False)


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonLogFormatter())
    logging.basicConfig(level=level, handlers=[handler], force=True)
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
