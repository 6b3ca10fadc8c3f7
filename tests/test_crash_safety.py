"""The delivery guarantees under crashes, on the real stack.

Every test runs a campaign of thousands of recipients against the SMTP sink, breaks something in
the middle (SIGKILL a worker, stop the broker, restart Postgres, poison a topic), and then checks
at the sink that every recipient reached a final state: none lost, and duplicates only among the
recipients that were `sending` (claimed, outcome not yet written) at the moment of a kill. The
stall sweeper is off for these tests (conftest), so "none lost" proves that offsets are committed
only after outcomes are durable: nothing else would send work whose offset was committed early.
The counts go to this run's fault report (tests/fault_report.py).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from sendpy.devstack.kafka import KafkaServer
from sendpy.devstack.postgres import PostgresServer
from sendpy.devstack.process import Child
from sendpy.devstack.smtp_sink import SmtpSink
from tests import fault_report
from tests.conftest import Workers
from tests.fault_report import record, record_user
from tests.helpers import make_sender, make_upload, wait_status


@pytest.fixture
def auth(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


@pytest.fixture(autouse=True)
def workers_restored(workers: Workers) -> Iterator[Workers]:
    """Whatever a test kills or adds, the next test gets one fan-out and one sender worker; and
    no test may have been rescued by the stall sweeper."""
    marks = workers.log_marks()
    try:
        yield workers
        assert workers.logged("stalled campaigns republished", since=marks, usual_only=True) == []
    finally:
        workers.restore()


async def sending_now(db: Any, campaign_id: str) -> set[str]:
    """Recipients claimed but not yet recorded: the only ones a crash may duplicate."""
    rows = await db.fetch("SELECT email FROM recipients WHERE campaign_id = $1 AND status = 'sending'",
                          uuid.UUID(campaign_id))
    return {r["email"] for r in rows}


def assigned_partitions(child: Child) -> list[int]:
    """The partitions a worker held last, from its log."""
    held: list[int] = []
    for line in child.log_path.read_text(errors="replace").splitlines():
        if '"message": "partitions assigned"' in line:
            held = json.loads(line)["partitions"]
        elif '"message": "partitions revoked"' in line:
            held = [p for p in held if p not in json.loads(line)["partitions"]]
    return held


async def wait_until(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f} s: {what}")
        await asyncio.sleep(0.2)


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


def duplicated(sink: SmtpSink, emails: list[str]) -> set[str]:
    received = Counter(r for m in sink.messages for r in m.rcpt_tos if r in set(emails))
    return {r for r, n in received.items() if n > 1}


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
    lost, duplicates = audit(clean_sink, emails, done)
    record("poison_records", recipients=len(emails), lost=lost, duplicates=duplicates)
    assert (lost, duplicates) == (0, 0)

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
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink, workers: Workers, db: Any
) -> None:
    slow_sink(clean_sink, 0.01)
    emails = [f"kill{n}@example.com" for n in range(3000)]
    campaign_id = await start(api, auth, clean_sink, emails)
    kills, at_risk = 0, set()
    for threshold in (300, 1200, 2100):
        await wait_sent(api, auth, campaign_id, threshold + random.randint(0, 300))
        for child in workers.running("sender"):
            assert assigned_partitions(child), f"{child.name} held no partition when killed"
            workers.kill(child)
            kills += 1
        at_risk |= await sending_now(db, campaign_id)  # nothing can change them until a worker runs again
        await asyncio.sleep(random.uniform(0, 1))
        workers.start("sender")
    done = await wait_status(api, auth, campaign_id, {"finished", "paused"}, timeout=180)
    lost, duplicates = audit(clean_sink, emails, done)
    record("sigkill_sender_worker", recipients=len(emails), kills=kills, lost=lost, duplicates=duplicates,
           at_risk=len(at_risk))
    assert lost == 0
    assert duplicated(clean_sink, emails) <= at_risk  # only what was in flight or unrecorded at a kill


async def test_two_workers_one_killed_its_partitions_move(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink, workers: Workers, db: Any
) -> None:
    slow_sink(clean_sink, 0.005)
    workers.start("sender")  # now two in the group
    await wait_until(lambda: all(assigned_partitions(c) for c in workers.running("sender")),
                     "both sender workers hold partitions")
    batches = [[f"w{c}-{n}@example.com" for n in range(700)] for c in range(4)]
    campaign_ids = [await start(api, auth, clean_sink, emails) for emails in batches]
    await wait_sent(api, auth, campaign_ids[0], 100)
    victim = workers.running("sender")[0]
    assert assigned_partitions(victim)
    workers.kill(victim)
    at_risk: set[str] = set()
    for campaign_id in campaign_ids:
        at_risk |= await sending_now(db, campaign_id)
    results = []
    for campaign_id, emails in zip(campaign_ids, batches, strict=True):
        done = await wait_status(api, auth, campaign_id, {"finished", "paused"}, timeout=180)
        results.append(audit(clean_sink, emails, done))
    lost = sum(r[0] for r in results)
    duplicates = sum(r[1] for r in results)
    record("two_workers_one_killed", recipients=sum(map(len, batches)), kills=1, lost=lost, duplicates=duplicates,
           at_risk=len(at_risk))
    assert lost == 0
    assert set().union(*(duplicated(clean_sink, emails) for emails in batches)) <= at_risk


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
    still_loading = await db.fetchrow("SELECT recipient_count, recipients_loaded FROM campaigns WHERE id = $1",
                                      uuid.UUID(campaign_id))
    assert not still_loading["recipients_loaded"] and still_loading["recipient_count"] < 30_000  # killed mid-load
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
    # nothing in Kafka or deferred_batches. The sweeper must notice and send them anyway. The
    # session's workers sweep only after an hour, so this test starts a fan-out worker of its own.
    sweeper = workers.start("fanout", SENDPY_STALL_SECONDS="5")
    sender = await make_sender(api, auth, clean_sink)
    user_id = await db.fetchval("SELECT user_id FROM senders WHERE id = $1", sender["id"])
    campaign_id = uuid.uuid4()
    emails = [f"stalled{n}@example.com" for n in range(50)]
    async with db.acquire() as conn:
        await conn.execute(
            "INSERT INTO campaigns (id, user_id, sender_id, subject, html_body, status, recipient_count,"
            " recipients_loaded, started_at, updated_at) VALUES ($1, $2, $3, 'Hi', '<p>Hi</p>', 'sending', $4,"
            " true, now(), now() - interval '60 seconds')",
            campaign_id, user_id, sender["id"], len(emails),
        )
        await conn.copy_records_to_table("recipients", records=[
            (campaign_id, n + 1, email, "{}") for n, email in enumerate(emails)],
            columns=["campaign_id", "position", "email", "fields"])
    try:
        done = await wait_status(api, auth, str(campaign_id), {"finished"}, timeout=60)
        assert any(sweeper.name in line for line in workers.logged("stalled campaigns republished"))
    finally:
        workers.kill(sweeper)
    lost, duplicates = audit(clean_sink, emails, done)
    assert lost == 0 and duplicates == 0


async def test_a_campaign_started_while_the_broker_is_down_goes_out_when_it_returns(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink, workers: Workers, kafka: KafkaServer, db: Any
) -> None:
    # The start is written to the outbox with the campaign; the API answers without the broker,
    # and the fan-out's relay publishes the command once the broker is back.
    sender = await make_sender(api, auth, clean_sink)
    emails = [f"outbox{n}@example.com" for n in range(300)]
    upload = await make_upload(api, auth, ("email\n" + "\n".join(emails) + "\n").encode())
    draft = (await api.post("/v1/campaigns", headers=auth, json={
        "sender_id": sender["id"], "upload_id": upload["id"], "subject": "Hello", "html_body": "<p>Hi</p>"})).json()
    one_shot = {"message": "<p>Hi</p>", "message_subject": "s", "sender_email": "me@example.org",
                "smtp_password": "p", "recipient_email_list": ["outbox-one-shot@example.com"],
                "server_host": "127.0.0.1", "server_port": clean_sink.port}
    kafka.stop()
    try:
        began = time.monotonic()
        started = await api.post(f"/v1/campaigns/{draft['id']}/start", headers=auth)
        answered_in = time.monotonic() - began
        assert started.status_code == 202 and started.json()["status"] == "queued", started.text
        sent = await api.post("/api/send-message", headers=auth, json=one_shot)
        assert sent.status_code == 202, sent.text
        waiting = await db.fetchval("SELECT count(*) FROM outbox WHERE key = ANY($1::bytea[])",
                                    [draft["id"].encode(), sent.json()["campaign_id"].encode()])
        assert waiting == 2
        # Nothing silent: after 10 s in the outbox the campaign says what it waits for.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            shown = (await api.get(f"/v1/campaigns/{draft['id']}", headers=auth)).json()
            if shown["status_reason"]:
                break
            await asyncio.sleep(0.5)
        assert shown["status"] == "queued" and "Waiting for the message queue" in shown["status_reason"], shown
        assert "ждёт очереди" in shown["status_reason"]
        reason_after = time.monotonic() - began
    finally:
        kafka.start()
    done = await wait_status(api, auth, draft["id"], {"finished", "paused"}, timeout=180)
    lost, duplicates = audit(clean_sink, emails, done)
    one = await wait_status(api, auth, sent.json()["campaign_id"], {"finished", "paused"}, timeout=60)
    assert one["status"] == "finished" and one["counts"]["sent"] == 1, one
    record("kafka_down_at_start", recipients=len(emails) + 1, lost=lost, duplicates=duplicates)
    print(f"start answered in {answered_in:.1f} s with the broker down; the reason showed after {reason_after:.0f} s")
    assert lost == 0 and duplicates == 0


async def test_a_campaign_left_queued_or_loading_gets_its_command_again(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink, workers: Workers, db: Any
) -> None:
    # A start command consumed and then lost (say, a bug): the campaign is queued, nothing in the
    # outbox, nothing in Kafka. The sweeper writes the command again after stall_seconds.
    sweeper = workers.start("fanout", SENDPY_STALL_SECONDS="5")
    try:
        ids = []
        for status in ("queued", "sending"):
            emails = [f"stuck-{status}{n}@example.com" for n in range(20)]
            campaign_id = await start(api, auth, clean_sink, emails)
            await wait_status(api, auth, campaign_id, {"finished"}, timeout=60)
            ids.append((campaign_id, emails))
        clean_sink.messages.clear()
        for (campaign_id, _), status in zip(ids, ("queued", "sending"), strict=True):
            # Back to how a lost command would leave it: not loaded (or never taken), long idle.
            await db.execute("DELETE FROM recipients WHERE campaign_id = $1", uuid.UUID(campaign_id))
            await db.execute(
                "UPDATE campaigns SET status = $2, recipients_loaded = false, recipient_count = 0, loaded_rows = 0,"
                " duplicates_removed = 0, updated_at = now() - interval '60 seconds' WHERE id = $1",
                uuid.UUID(campaign_id), status)
        began = time.monotonic()
        for campaign_id, emails in ids:
            done = await wait_status(api, auth, campaign_id, {"finished"}, timeout=60)
            lost, duplicates = audit(clean_sink, emails, done)
            assert lost == 0 and duplicates == 0
        assert any(sweeper.name in line for line in workers.logged("stuck commands written again"))
        record_user("lost_command", "`queued` / `sending` until `stall_seconds` (900 s by default, 5 here), then"
                    " the command is written again and the campaign `finished`", time.monotonic() - began)
    finally:
        workers.kill(sweeper)


async def test_cancel_mid_way_gives_exact_counts(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink, workers: Workers, db: Any
) -> None:
    slow_sink(clean_sink, 0.01)
    emails = [f"cancel{n}@example.com" for n in range(1500)]
    campaign_id = await start(api, auth, clean_sink, emails)
    await wait_sent(api, auth, campaign_id, 200)
    assert (await api.post(f"/v1/campaigns/{campaign_id}/cancel", headers=auth)).status_code == 200
    cancelled_at = time.time()
    in_flight = await sending_now(db, campaign_id)  # claimed before the cancel landed: may still finish

    deadline = time.monotonic() + 30
    while True:
        counts = (await api.get(f"/v1/campaigns/{campaign_id}", headers=auth)).json()["counts"]
        if counts["pending"] + counts["sending"] == 0 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert counts["pending"] == counts["sending"] == 0, counts
    assert counts["sent"] + counts["skipped"] == 1500 and counts["skipped"] > 0
    arrivals = [(m.at, r) for m in clean_sink.messages for r in m.rcpt_tos if r.startswith("cancel")]
    received = [r for _, r in arrivals]
    assert len(received) == len(set(received)) == counts["sent"]
    late = {r for at, r in arrivals if at > cancelled_at}
    assert late <= in_flight, sorted(late - in_flight)[:5]  # after the cancel, only sends already under way
    record("cancel_mid_way", recipients=len(emails), lost=0, duplicates=len(received) - len(set(received)),
           sent=counts["sent"], skipped=counts["skipped"], after_cancel=len(late))


def test_this_runs_report_has_no_loss() -> None:
    report = fault_report.load()
    assert report["faults"], "no fault was recorded in this run"
    assert all(entry["lost"] == 0 for entry in report["faults"].values()), report["faults"]
