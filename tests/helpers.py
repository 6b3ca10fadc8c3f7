"""Helpers for API tests: uploads the way the browser does them, senders, campaigns, waiting
for a condition with a deadline, the broker's topics and the workers' logs."""

from __future__ import annotations

import asyncio
import inspect
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from sendpy.devstack.smtp_sink import Received, SmtpSink

T = TypeVar("T")


async def upload_file(api: httpx.AsyncClient, headers: dict[str, str], data: bytes,
                      filename: str = "contacts.csv") -> dict[str, Any]:
    created = await api.post("/v1/uploads", json={"filename": filename}, headers=headers)
    assert created.status_code == 201, created.text
    form = created.json()["post"]
    async with httpx.AsyncClient() as s3:
        posted = await s3.post(form["url"], data=form["fields"], files={"file": (filename, data, "text/csv")})
    assert posted.status_code in (200, 204), posted.text
    upload: dict[str, Any] = created.json()["upload"]
    return upload


async def complete(api: httpx.AsyncClient, headers: dict[str, str], upload_id: str) -> httpx.Response:
    return await api.post(f"/v1/uploads/{upload_id}/complete", headers=headers)


async def wait_ready(api: httpx.AsyncClient, headers: dict[str, str], upload_id: str,
                     timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        found: dict[str, Any] = (await api.get(f"/v1/uploads/{upload_id}", headers=headers)).json()
        if found["status"] in ("ready", "failed") or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.3)


async def make_sender(api: httpx.AsyncClient, auth: dict[str, str], sink: SmtpSink, **extra: Any) -> dict[str, Any]:
    body = {"from_email": f"news{time.monotonic_ns()}@example.org", "from_name": "Новости", "host": "127.0.0.1",
            "port": sink.port, "security": "starttls", "password": "secret-pass", **extra}
    made = await api.post("/v1/senders", json=body, headers=auth)
    assert made.status_code == 201, made.text
    verified = await api.post(f"/v1/senders/{made.json()['id']}/verify", headers=auth)
    assert verified.status_code == 200, verified.text
    return dict(made.json())

async def make_upload(api: httpx.AsyncClient, auth: dict[str, str], data: bytes) -> dict[str, Any]:
    """An uploaded, inspected contact file; larger files are inspected by the worker, so wait for it."""
    upload = await upload_file(api, auth, data)
    ready = await complete(api, auth, upload["id"])
    assert ready.status_code in (200, 202), ready.text
    if ready.status_code == 202:
        inspected = await wait_ready(api, auth, upload["id"])
        assert inspected["status"] == "ready", inspected
        return inspected
    return dict(ready.json())

async def wait_status(api: httpx.AsyncClient, auth: dict[str, str], campaign_id: str, wanted: set[str],
                      timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        answer = await api.get(f"/v1/campaigns/{campaign_id}", headers=auth)
        found: dict[str, Any] = answer.json()
        # A 5xx can happen while a test restarts Postgres; keep polling through it.
        if answer.status_code == 200 and (found["status"] in wanted or time.monotonic() > deadline):
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"campaign {campaign_id} still not {wanted}: {answer.text}")
        await asyncio.sleep(0.3)


async def run_campaign(api: httpx.AsyncClient, auth: dict[str, str], sink: SmtpSink, emails: list[str],
                       html: str = "<p>Hello {{ email }}</p>", **sender: Any) -> str:
    """Sender (verified) + contact file + draft, started; returns the campaign id."""
    made = await make_sender(api, auth, sink, **sender)
    return await start_campaign(api, auth, made["id"], emails, html)


async def draft_campaign(api: httpx.AsyncClient, auth: dict[str, str], sender_id: int, emails: list[str],
                         html: str = "<p>Hello {{ email }}</p>", subject: str = "Test") -> str:
    """A contact file of `emails` and a draft on an existing sender; returns the campaign id."""
    upload = await make_upload(api, auth, ("email\n" + "\n".join(emails) + "\n").encode())
    draft = await api.post("/v1/campaigns", headers=auth, json={
        "sender_id": sender_id, "upload_id": upload["id"], "subject": subject, "html_body": html})
    assert draft.status_code == 201, draft.text
    return str(draft.json()["id"])


async def campaign_action(api: httpx.AsyncClient, auth: dict[str, str], campaign_id: str, action: str) -> None:
    """start / pause / resume / cancel, which must be accepted."""
    answer = await api.post(f"/v1/campaigns/{campaign_id}/{action}", headers=auth)
    assert answer.status_code in (200, 202), f"{action}: {answer.status_code} {answer.text}"


async def start_campaign(api: httpx.AsyncClient, auth: dict[str, str], sender_id: int, emails: list[str],
                         html: str = "<p>Hello {{ email }}</p>", subject: str = "Test") -> str:
    """A draft on an existing sender, started; returns the campaign id."""
    campaign_id = await draft_campaign(api, auth, sender_id, emails, html, subject)
    await campaign_action(api, auth, campaign_id, "start")
    return campaign_id


async def get_campaign(api: httpx.AsyncClient, auth: dict[str, str], campaign_id: str) -> dict[str, Any]:
    answer = await api.get(f"/v1/campaigns/{campaign_id}", headers=auth)
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


async def list_recipients(api: httpx.AsyncClient, auth: dict[str, str], campaign_id: str,
                          status: str | None = None) -> list[dict[str, Any]]:
    """Every recipient of the campaign (all pages), optionally of one state."""
    items: list[dict[str, Any]] = []
    after: int | None = 0
    while after is not None:
        query = f"after={after}&limit=500" + (f"&status={status}" if status else "")
        page = (await api.get(f"/v1/campaigns/{campaign_id}/recipients?{query}", headers=auth)).json()
        items.extend(page["items"])
        after = page["next_after"]
    return items


async def _check(condition: Callable[[], T | Awaitable[T]]) -> T:
    value = condition()
    if inspect.isawaitable(value):
        return await value  # type: ignore[no-any-return]
    return value


async def eventually(condition: Callable[[], T | Awaitable[T]], timeout: float, what: str,
                     interval: float = 0.1) -> T:
    """Poll `condition` (sync or async) until it returns something truthy, which is returned;
    fail with `what` once `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        value = await _check(condition)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what} (last: {value!r})")
        await asyncio.sleep(interval)


async def never(condition: Callable[[], T | Awaitable[T]], seconds: float, what: str,
                interval: float = 0.1) -> None:
    """Poll `condition` for `seconds`; fail as soon as it returns something truthy."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = await _check(condition)
        assert not value, f"{what}: {value!r}"
        await asyncio.sleep(interval)


def mail_from(sink: SmtpSink, sender: dict[str, Any]) -> list[Received]:
    """What the sink accepted from `sender` (an API sender object), in arrival order."""
    return sorted((m for m in list(sink.messages) if m.mail_from == sender["from_email"]), key=lambda m: m.at)


async def read_topic(topic: str) -> list[ConsumerRecord]:
    """Every record of every partition of `topic`, read up to the end offsets of this moment."""
    from shared import broker
    from shared.settings import get_settings

    options = broker.client_options(get_settings())
    admin = AIOKafkaAdminClient(**options)
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    partitions = [TopicPartition(topic, p["partition"]) for p in described[0]["partitions"]]
    assert partitions, f"no topic {topic}"
    consumer = AIOKafkaConsumer(**options, enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        # An explicit seek: seek_to_beginning() races with the reset the fetcher starts on assign.
        for tp, first in (await consumer.beginning_offsets(partitions)).items():
            consumer.seek(tp, first)
        records: list[ConsumerRecord] = []
        deadline = time.monotonic() + 30
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            assert time.monotonic() < deadline, f"could not read {topic} to its end offsets {ends}"
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                records.extend(batch)
        return records
    finally:
        await consumer.stop()


async def committed_offset(group: str, topic: str, partition: int) -> int:
    """The offset `group` has committed on one partition (-1 when none)."""
    from shared import broker
    from shared.settings import get_settings

    admin = AIOKafkaAdminClient(**broker.client_options(get_settings()))
    await admin.start()
    try:
        tp = TopicPartition(topic, partition)
        offsets = await admin.list_consumer_group_offsets(group, partitions=[tp])
        found = offsets.get(tp)
        return found.offset if found is not None else -1
    finally:
        await admin.close()


def worker_log(logs: Path, kind: str) -> list[dict[str, Any]]:
    """The JSON lines every `kind` worker of this session logged (other lines skipped)."""
    lines: list[dict[str, Any]] = []
    for path in sorted(logs.glob(f"{kind}-*.log")):
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    lines.append(json.loads(line))
                except ValueError:
                    pass
    return lines
