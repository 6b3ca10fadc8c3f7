"""No secret leaks: run last (file order), after the end-to-end and fault tests.

Every SMTP password the tests gave the API (and every one sealed in the database), every API key
and every session token is searched for in every Kafka topic, read to its end, and in every log
file the servers and workers wrote. API answers were checked as they came (conftest.SecretWatch).
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from shared.crypto import DecryptionError, LocalKeyProvider, open_sealed
from tests.conftest import ISSUED_API_KEYS, SecretWatch

# Shorter values (a test's "p") would match innocent text; the tests' real secrets are longer.
MIN_SECRET = 6


async def sealed_passwords(db: asyncpg.Pool, master_key: str) -> set[str]:
    keys = LocalKeyProvider(base64.b64decode(master_key))
    rows = await db.fetch("SELECT user_id, password_encrypted FROM senders")
    opened = set()
    for row in rows:
        try:
            opened.add(await open_sealed(keys, bytes(row["password_encrypted"]), f"user:{row['user_id']}"))
        except DecryptionError:
            pass  # rows some tests write straight into the table, with no real secret in them
    return opened


async def every_partition(bootstrap: str) -> list[TopicPartition]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        topics = [t for t in await admin.list_topics() if not t.startswith("__")]
        described = await admin.describe_topics(topics)
    finally:
        await admin.close()
    return [TopicPartition(d["topic"], p["partition"]) for d in described for p in d["partitions"]]


async def every_record(bootstrap: str) -> list[bytes]:
    partitions = await every_partition(bootstrap)
    assert partitions
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        consumer.assign(partitions)
        starts = await consumer.beginning_offsets(partitions)
        for tp in partitions:
            consumer.seek(tp, starts[tp])  # explicit: a reset racing the assignment could start at the end
        ends = await consumer.end_offsets(partitions)
        values: list[bytes] = []
        remaining = {tp for tp in partitions if ends[tp] > starts[tp]}
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=2000)
            if not batches:
                break
            for tp, records in batches.items():
                for r in records:
                    values.append((r.key or b"") + b"\n" + (r.value or b"") + b"\n"
                                  + b"\n".join(v for _, v in r.headers))
                if records and records[-1].offset + 1 >= ends[tp]:
                    remaining.discard(tp)
        assert not remaining, f"could not read to the end of {sorted(map(str, remaining))}"
        return values
    finally:
        await consumer.stop()


async def test_no_secret_in_topics_logs_or_answers(
    db: asyncpg.Pool, app_env: dict[str, str], workdir: Path, secret_watch: SecretWatch, topics: Any
) -> None:
    passwords = secret_watch.smtp_passwords | await sealed_passwords(db, app_env["SENDPY_LOCAL_MASTER_KEY"])
    secrets = {s for s in passwords | secret_watch.tokens | ISSUED_API_KEYS if len(s) >= MIN_SECRET}
    assert len(secrets) >= 3, "the suite should have handed the API some secrets by now"
    assert secret_watch.leaks == []

    records = await every_record(app_env["SENDPY_KAFKA_BOOTSTRAP"])
    for secret in secrets:
        needle = secret.encode()
        assert not any(needle in value for value in records), "a secret is in a Kafka record"

    leaked = logs_with_secrets(workdir, secrets)
    assert leaked == [], f"secrets in {leaked}"


def logs_with_secrets(workdir: Path, secrets: set[str]) -> list[str]:
    logs = [p for p in workdir.rglob("*.log") if p.is_file()]
    assert logs
    return [str(p.relative_to(workdir)) for p in logs
            if any(secret in p.read_text(errors="replace") for secret in secrets)]
