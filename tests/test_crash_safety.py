"""The delivery guarantees under crashes, on the real stack.

Every test runs a campaign of thousands of recipients against the SMTP sink, breaks something in
the middle (SIGKILL a worker, stop the broker, restart Postgres, poison a topic), and then checks
at the sink that every recipient reached a final state: none lost, duplicates counted. The counts
are written to test-artifacts/fault-report.json for the README.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from sendpy.devstack.kafka import KafkaServer
from sendpy.devstack.postgres import PostgresServer
from sendpy.devstack.smtp_sink import SmtpSink
from tests.conftest import ROOT, Workers
from tests.helpers import make_sender, make_upload, wait_status

REPORT = ROOT / "test-artifacts" / "fault-report.json"


@pytest.fixture
def auth(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


def record(name: str, **numbers: Any) -> None:
    REPORT.parent.mkdir(exist_ok=True)
    report = json.loads(REPORT.read_text()) if REPORT.exists() else {}
    report[name] = numbers
    REPORT.write_text(json.dumps(report, indent=2, sort_keys=True))


def slow_sink(sink: SmtpSink, seconds: float) -> None:
    def delay(envelope: object) -> None:
        time.sleep(seconds)
        return None

    sink.faults.data_reply = delay  # type: ignore[assignment]


async def start(api: httpx.AsyncClient, auth: dict[str, str], sink: SmtpSink, emails: list[str]) -> str:
    sender = await make_sender(api, auth, sink)
    upload = await make_upload(api, auth, ("email\n" + "\n".join(emails) + "\n").encode())
    draft = (await api.post("/v1/campaigns", headers=auth, json={
        "sender_id": sender["id"], "upload_id": upload["id"], "subject": "Hello", "html_body": "<p>Hi</p>"})).json()
    assert (await api.post(f"/v1/campaigns/{draft['id']}/start", headers=auth)).status_code == 202
    return str(draft["id"])


async def wait_sent(api: httpx.AsyncClient, auth: dict[str, str], campaign_id: str, at_least: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        answer = await api.get(f"/v1/campaigns/{campaign_id}", headers=auth)
        if answer.status_code == 200 and answer.json()["counts"]["sent"] >= at_least:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"fewer than {at_least} sent after a minute")


def audit(sink: SmtpSink, emails: list[str], done: dict[str, Any]) -> tuple[int, int]:
    """(lost, duplicates) as the SMTP server saw them; asserts every recipient is final and sent."""
    wanted = set(emails)
    received = Counter(r for m in sink.messages for r in m.rcpt_tos if r in wanted)
    lost = len(wanted - set(received))
    duplicates = sum(n - 1 for n in received.values())
    assert done["status"] == "finished", done
    assert done["counts"]["sent"] == len(emails), done["counts"]
    assert done["counts"]["pending"] == done["counts"]["sending"] == 0
    return lost, duplicates


async def test_poison_records_go_to_the_dead_letter_topic(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink, workers: Workers, app_env: dict[str, str]
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=app_env["SENDPY_KAFKA_BOOTSTRAP"])
    await producer.start()
    try:
        for partition in range(4):  # every partition of the deliveries topic gets a poison pill
            await producer.send_and_wait("sendpy.deliveries", b"\x00 not json", partition=partition)
        await producer.send_and_wait("sendpy.campaigns", b'{"kind": "campaign", "campaign_id": 7}')
    finally:
        await producer.stop()
    emails = [f"after-poison{n}@example.com" for n in range(200)]
    campaign_id = await start(api, auth, clean_sink, emails)
    done = await wait_status(api, auth, campaign_id, {"finished", "paused"})
    assert audit(clean_sink, emails, done) == (0, 0)

    consumer = AIOKafkaConsumer("sendpy.dead-letters", bootstrap_servers=app_env["SENDPY_KAFKA_BOOTSTRAP"],
                                auto_offset_reset="earliest", group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        records = [r for batch in (await consumer.getmany(timeout_ms=3000)).values() for r in batch]
    finally:
        await consumer.stop()
    poison = [r for r in records if r.value in (b"\x00 not json", b'{"kind": "campaign", "campaign_id": 7}')]
    assert len(poison) >= 5
    for dead in poison:
        headers = dict(dead.headers)
        assert headers["error"].startswith(b"malformed")
        assert headers["source-topic"] in (b"sendpy.deliveries", b"sendpy.campaigns")


async def test_sigkill_the_sender_worker_again_and_again(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink, workers: Workers
) -> None:
    slow_sink(clean_sink, 0.01)
    emails = [f"kill{n}@example.com" for n in range(3000)]
    campaign_id = await start(api, auth, clean_sink, emails)
    kills = 0
    for threshold in (300, 1200, 2100):
        await wait_sent(api, auth, campaign_id, threshold + random.randint(0, 300))
        for child in workers.running("sender"):
            workers.kill(child)
            kills += 1
        await asyncio.sleep(random.uniform(0, 1))
        workers.start("sender")
    done = await wait_status(api, auth, campaign_id, {"finished", "paused"}, timeout=180)
    lost, duplicates = audit(clean_sink, emails, done)
    record("sigkill_sender_worker", recipients=len(emails), kills=kills, lost=lost, duplicates=duplicates)
    assert lost == 0
    assert duplicates <= kills * 30, duplicates  # at most what was in flight or unflushed at each kill


async def test_two_workers_one_killed_its_partitions_move(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink, workers: Workers
) -> None:
    slow_sink(clean_sink, 0.005)
    workers.start("sender")  # now two in the group
    await asyncio.sleep(8)  # let the group settle with both members
    batches = [[f"w{c}-{n}@example.com" for n in range(700)] for c in range(4)]
    campaign_ids = [await start(api, auth, clean_sink, emails) for emails in batches]
    await wait_sent(api, auth, campaign_ids[0], 100)
    victim = workers.running("sender")[0]
    workers.kill(victim)
    results = []
    for campaign_id, emails in zip(campaign_ids, batches, strict=True):
        done = await wait_status(api, auth, campaign_id, {"finished", "paused"}, timeout=180)
        results.append(audit(clean_sink, emails, done))
    lost = sum(r[0] for r in results)
    duplicates = sum(r[1] for r in results)
    record("two_workers_one_killed", recipients=sum(map(len, batches)), kills=1, lost=lost, duplicates=duplicates)
    assert lost == 0 and duplicates <= 30


async def restart_mid_campaign(
    api: httpx.AsyncClient, auth: dict[str, str], sink: SmtpSink, service: KafkaServer | PostgresServer,
    down_seconds: float, tag: str,
) -> tuple[int, int]:
    """Stop `service` once 500 of 2,500 mails are out, start it again; (lost, duplicates)."""
    slow_sink(sink, 0.01)
    emails = [f"{tag}{n}@example.com" for n in range(2500)]
    campaign_id = await start(api, auth, sink, emails)
    await wait_sent(api, auth, campaign_id, 500)
    service.stop()
    await asyncio.sleep(down_seconds)
    service.start()
    done = await wait_status(api, auth, campaign_id, {"finished", "paused"}, timeout=240)
    return audit(sink, emails, done)


async def test_broker_stopped_and_restarted_mid_campaign(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink, workers: Workers, kafka: KafkaServer
) -> None:
    lost, duplicates = await restart_mid_campaign(api, auth, clean_sink, kafka, 5, "broker")
    record("kafka_broker_restarted", recipients=2500, lost=lost, duplicates=duplicates)
    assert lost == 0 and duplicates == 0  # the broker going away loses no outcome: they live in Postgres


async def test_postgres_restarted_mid_campaign(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink, workers: Workers, postgres: PostgresServer
) -> None:
    lost, duplicates = await restart_mid_campaign(api, auth, clean_sink, postgres, 4, "pg")
    record("postgres_restarted", recipients=2500, lost=lost, duplicates=duplicates)
    assert lost == 0 and duplicates == 0  # outcomes wait in the worker until Postgres is back


async def test_sigkill_the_fanout_worker_while_it_loads_recipients(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink, workers: Workers, db: Any
) -> None:
    emails = [f"loading{n}@example.com" for n in range(30_000)] + ["loading7@example.com"]  # one duplicate
    campaign_id = await start(api, auth, clean_sink, emails)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # wait until some chunks are committed, not all
        loaded = await db.fetchval("SELECT recipient_count FROM campaigns WHERE id = $1", uuid.UUID(campaign_id))
        if loaded >= 2000:
            break
        await asyncio.sleep(0.05)
    assert 0 < loaded < 30_000, loaded
    for child in workers.running("fanout"):
        workers.kill(child)
    workers.start("fanout")
    done = await wait_status(api, auth, campaign_id, {"finished", "paused"}, timeout=240)
    wanted = emails[:-1]
    lost, duplicates = audit(clean_sink, wanted, done)
    rows = await db.fetchrow(
        "SELECT count(*) AS n, count(DISTINCT lower(email)) AS unique_n, max(position) AS last"
        " FROM recipients WHERE campaign_id = $1", uuid.UUID(campaign_id))
    assert (rows["n"], rows["unique_n"], rows["last"]) == (30_000, 30_000, 30_000)  # loaded exactly once
    assert done["duplicates_removed"] == 1
    record("sigkill_fanout_while_loading", recipients=len(wanted), kills=1, lost=lost, duplicates=duplicates)
    assert lost == 0 and duplicates == 0


async def test_a_campaign_whose_kafka_work_was_lost_is_swept_up(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink, workers: Workers, db: Any
) -> None:
    # Delivery work that vanished (say, dead-lettered during an outage): recipients pending,
    # nothing in Kafka or deferred_batches. The sweeper must notice and send them anyway.
    sender = await make_sender(api, auth, clean_sink)
    user_id = await db.fetchval("SELECT user_id FROM senders WHERE id = $1", sender["id"])
    campaign_id = uuid.uuid4()
    emails = [f"stalled{n}@example.com" for n in range(50)]
    async with db.acquire() as conn:
        await conn.execute(
            "INSERT INTO campaigns (id, user_id, sender_id, subject, html_body, status, recipient_count,"
            " recipients_loaded, started_at, updated_at) VALUES ($1, $2, $3, 'Hi', '<p>Hi</p>', 'sending', $4,"
            " true, now(), now() - interval '1 hour')",
            campaign_id, user_id, sender["id"], len(emails),
        )
        await conn.copy_records_to_table("recipients", records=[
            (campaign_id, n + 1, email, "{}") for n, email in enumerate(emails)],
            columns=["campaign_id", "position", "email", "fields"])
    done = await wait_status(api, auth, str(campaign_id), {"finished"}, timeout=60)
    lost, duplicates = audit(clean_sink, emails, done)
    assert lost == 0 and duplicates == 0


async def test_cancel_mid_way_gives_exact_counts(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink, workers: Workers
) -> None:
    slow_sink(clean_sink, 0.01)
    emails = [f"cancel{n}@example.com" for n in range(1500)]
    campaign_id = await start(api, auth, clean_sink, emails)
    await wait_sent(api, auth, campaign_id, 200)
    assert (await api.post(f"/v1/campaigns/{campaign_id}/cancel", headers=auth)).status_code == 200
    await asyncio.sleep(3)
    counts = (await api.get(f"/v1/campaigns/{campaign_id}", headers=auth)).json()["counts"]
    assert counts["pending"] == counts["sending"] == 0
    assert counts["sent"] + counts["skipped"] == 1500 and counts["skipped"] > 0
    received = [r for m in clean_sink.messages for r in m.rcpt_tos if r.startswith("cancel")]
    assert len(received) == len(set(received)) == counts["sent"]
    await asyncio.sleep(2)
    assert len([r for m in clean_sink.messages for r in m.rcpt_tos if r.startswith("cancel")]) == counts["sent"]


def test_report_is_written() -> None:
    report = json.loads(Path(REPORT).read_text())
    assert all(entry["lost"] == 0 for entry in report.values())
