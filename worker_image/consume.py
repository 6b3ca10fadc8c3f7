"""The consume loop shared by every worker: at-least-once, never stuck on a bad record.

A record's offset is committed only after its handler returned, i.e. after its outcome is in
Postgres. A record that cannot be decoded, or whose handler keeps failing, is copied to the
dead-letter topic with the error and then committed, so it never blocks its partition.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
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


class Revocations(ConsumerRebalanceListener):  # type: ignore[misc]
    """Remembers partitions taken away mid-batch, so their remaining records are left alone (the
    new owner gets them from the last committed offset), and lets the record in hand on a revoked
    partition finish before the partition moves, so two workers never send the same record."""

    def __init__(self) -> None:
        self.revoked: set[TopicPartition] = set()
        self.in_flight: dict[TopicPartition, asyncio.Task[None]] = {}

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        self.revoked.update(revoked)
        if revoked:
            log.info("partitions revoked", extra={"partitions": sorted(tp.partition for tp in revoked)})
            busy = [task for tp, task in self.in_flight.items() if tp in revoked and not task.done()]
            if busy:
                await asyncio.wait(busy, timeout=REVOKE_WAIT_SECONDS)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self.revoked.difference_update(assigned)
        if assigned:
            log.info("partitions assigned", extra={"partitions": sorted(tp.partition for tp in assigned)})


# How long a rebalance waits for the record in hand on a revoked partition (a batch is bounded by
# the deliverer's own deadlines well inside this).
REVOKE_WAIT_SECONDS = 60.0


async def run(
    consumer: AIOKafkaConsumer,
    producer: AIOKafkaProducer,
    handler: Handler,
    dead_letters: str,
    stopping: asyncio.Event,
    revocations: Revocations,
    on_give_up: GiveUp | None = None,
) -> None:
    """Consume until `stopping` is set; records in hand always finish first.

    Partitions are worked on concurrently, each in order: a partition with records in hand is
    paused until they are done, so one slow record (a silent SMTP server, a big contact file)
    holds up only its own partition, never the worker. Each record is committed as soon as its
    outcome is durable, so a rebalance or a crash redelivers at most the records in progress.
    """
    in_flight = revocations.in_flight

    async def work_on(tp: TopicPartition, records: list[ConsumerRecord]) -> None:
        for record in records:
            if tp in revocations.revoked or stopping.is_set():
                return
            if not await _handle(handler, record, producer, dead_letters, stopping, on_give_up):
                return
            await _commit(consumer, tp, record.offset + 1)

    while not stopping.is_set():
        beat()
        for tp, task in list(in_flight.items()):
            if task.done():
                del in_flight[tp]
                if tp in consumer.assignment() and tp not in revocations.revoked:
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
            if tp in in_flight:
                # Fetched before the pause took effect (or after a rebalance gave the partition
                # back): moved back, to come again once the records in hand are done.
                consumer.seek(tp, records[0].offset)
                consumer.pause(tp)
                continue
            consumer.pause(tp)
            in_flight[tp] = asyncio.create_task(work_on(tp, records))
    if in_flight:
        await asyncio.gather(*in_flight.values(), return_exceptions=True)


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
