"""The consume loop shared by every worker: at-least-once, never stuck on a bad record.

A record's offset is committed only after its handler returned, i.e. after its outcome is in
Postgres. A record that cannot be decoded, or whose handler keeps failing, is copied to the
dead-letter topic with the error and then committed, so it never blocks its partition.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError

from shared.work import MalformedWork

log = logging.getLogger("sendpy.worker")

Handler = Callable[[bytes], Awaitable[None]]
# Touched on every poll; the container health check reads its age.
HEARTBEAT = Path(os.environ.get("SENDPY_HEARTBEAT_FILE") or Path(tempfile.gettempdir()) / "sendpy-heartbeat")


def _beat() -> None:
    HEARTBEAT.touch()
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


async def _handle(
    handler: Handler, record: ConsumerRecord, producer: AIOKafkaProducer, dead_letters: str
) -> None:
    for attempt in range(1, HANDLER_ATTEMPTS + 1):
        try:
            await handler(record.value or b"")
            return
        except MalformedWork as exc:
            await _dead_letter(producer, dead_letters, record, f"malformed: {exc}")
            return
        except Exception as exc:
            if attempt == HANDLER_ATTEMPTS:
                await _dead_letter(producer, dead_letters, record, f"{type(exc).__name__}: {exc}")
                return
            log.warning("handler failed, retrying", exc_info=True,
                        extra={"offset": record.offset, "attempt": attempt})
            await asyncio.sleep(2**attempt)


async def run(
    consumer: AIOKafkaConsumer,
    producer: AIOKafkaProducer,
    handler: Handler,
    dead_letters: str,
    stopping: asyncio.Event,
) -> None:
    """Consume until `stopping` is set; the current batch always finishes first."""
    while not stopping.is_set():
        _beat()
        try:
            batches = await consumer.getmany(timeout_ms=500, max_records=None)
        except KafkaError:
            log.warning("poll failed; retrying", exc_info=True)
            await asyncio.sleep(1)
            continue
        for tp, records in batches.items():
            for record in records:
                await _handle(handler, record, producer, dead_letters)
                await _commit(consumer, tp, record.offset + 1)


async def _commit(consumer: AIOKafkaConsumer, tp: TopicPartition, offset: int) -> None:
    try:
        await consumer.commit({tp: offset})
    except CommitFailedError:
        # The partition moved to another worker mid-batch. It will redeliver from the last
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
