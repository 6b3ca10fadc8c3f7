"""Sending under SMTP faults and limits, on the real stack (Kafka, Postgres, workers, SMTP socket).

What the README's guarantees promise is observed where it shows: when messages (and refused
attempts) reach the SMTP sink, what Postgres says about each recipient, and what is on the broker.
Nothing here sleeps to decide an outcome: every wait polls for a condition with a deadline, and
"nothing happens" is checked by polling for a bounded time. Random choices come from a seeded
`random.Random`; the seed is printed (set SENDPY_TEST_SEED to replay it).

The timings follow the test settings of conftest's app_env: retries 0.3 s ×4 capped at 2 s,
10 attempts, account pause 3 s, waker every 0.5 s.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import secrets
import time
import uuid
from collections import Counter
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner
from aiosmtpd.smtp import Envelope

from sendpy.devstack.smtp_sink import SmtpSink
from shared import broker
from shared.commands import DeliveryBatch
from shared.settings import get_settings
from tests.conftest import Workers
from tests.fault_report import record_user
from tests.helpers import (
    campaign_action,
    committed_offset,
    draft_campaign,
    eventually,
    get_campaign,
    list_recipients,
    mail_from,
    make_sender,
    make_upload,
    never,
    read_topic,
    run_campaign,
    start_campaign,
    wait_status,
    worker_log,
)

SEED = int(os.environ.get("SENDPY_TEST_SEED") or secrets.randbelow(1_000_000))
# Two processes read one clock (time.time() in the worker, in the sink, now() in Postgres); this
# covers rounding between them, not scheduling.
CLOCK_SLACK = 0.05
# Scheduling on a busy 2-core machine (other test runs share it): added to upper bounds only.
BUSY_SLACK = 3.0
FINAL = {"finished", "paused", "cancelled"}


@pytest.fixture
def auth(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> random.Random:
    print(f"random seed {SEED} for {request.node.name} (SENDPY_TEST_SEED={SEED} replays it)")
    return random.Random(f"{SEED}/{request.node.name}")


def addresses(n: int, tag: str) -> list[str]:
    return [f"{tag}{i}@example.com" for i in range(n)]


def arrived(sink: SmtpSink, emails: list[str]) -> Counter[str]:
    """How many times each of `emails` was accepted by the sink (absent: never)."""
    wanted = set(emails)
    return Counter(r for m in list(sink.messages) for r in m.rcpt_tos if r in wanted)


async def deferred(db: asyncpg.Pool, campaign_id: str) -> list[asyncpg.Record]:
    async with db.acquire() as conn:
        return list(await conn.fetch(
            "SELECT extract(epoch FROM not_before) AS not_before, reason FROM deferred_batches"
            " WHERE campaign_id = $1 ORDER BY not_before", uuid.UUID(campaign_id)))


async def test_random_451s_are_retried_until_everyone_has_it(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink, workers: Workers, rng: random.Random
) -> None:
    clean_sink.faults.rng = rng
    clean_sink.faults.random_451_rate = 0.3
    emails = addresses(300, "retry")
    campaign_id = await run_campaign(api, auth, clean_sink, emails)
    done = await wait_status(api, auth, campaign_id, FINAL, timeout=120)
    assert done["status"] == "finished", done
    assert done["counts"]["sent"] == 300 and done["counts"]["failed"] == 0
    received = arrived(clean_sink, emails)
    assert set(received) == set(emails)
    assert max(received.values()) == 1  # a 451 means not accepted: nothing was sent twice
    refused = [a for a in clean_sink.attempts if a.stage == "data" and a.reply.startswith("451")]
    assert refused, "the sink refused nothing: the fault was not injected"
    retried = await list_recipients(api, auth, campaign_id)
    assert any(r["attempts"] > 1 for r in retried)


async def test_a_recipient_refused_every_time_is_retried_on_schedule_then_fails_after_10_attempts(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink, workers: Workers
) -> None:
    settings = get_settings()
    doomed = "doomed@example.com"
    others = addresses(19, "bystander")
    clean_sink.faults.rcpt_reply = lambda rcpt: "451 4.3.0 Temporary local problem" if rcpt == doomed else None
    campaign_id = await run_campaign(api, auth, clean_sink, [doomed, *others])

    done = await wait_status(api, auth, campaign_id, FINAL, timeout=120)
    assert done["status"] == "finished", done
    assert done["counts"] == {"pending": 0, "sending": 0, "sent": 19, "failed": 1, "skipped": 0, "bounced": 0}
    [failed] = await list_recipients(api, auth, campaign_id, status="failed")
    assert failed["email"] == doomed and failed["attempts"] == settings.retry_max_attempts == 10
    assert failed["reply"].startswith("451 4.3.0"), failed["reply"]  # the count is `attempts`, not prose

    # Every attempt reached the sink (refused at RCPT), exactly ten of them.
    tries = [a.at for a in clean_sink.attempts if a.stage == "rcpt" and a.rcpt_tos == (doomed,)]
    assert all(not a.accepted for a in clean_sink.attempts if a.rcpt_tos == (doomed,))
    assert len(tries) == 10, tries
    gaps = [later - earlier for earlier, later in itertools.pairwise(tries)]
    # After attempt n the next is due after ceiling(n) × uniform(0.5, 1); the waker (every
    # `waker_interval`) and the broker add a little on top, never take anything away.
    ceilings = [min(settings.retry_base_seconds * 4 ** (n - 1), settings.retry_max_delay_seconds)
                for n in range(1, 10)]
    print("retry gaps (s):", [round(g, 2) for g in gaps], "ceilings:", ceilings)
    for n, (gap, ceiling) in enumerate(zip(gaps, ceilings, strict=True), start=1):
        assert gap >= ceiling / 2 - CLOCK_SLACK, f"retry {n} came {gap:.2f} s after attempt {n}, before {ceiling / 2} s"
        assert gap <= ceiling + settings.waker_interval + BUSY_SLACK, f"retry {n} waited {gap:.2f} s"
    # The schedule grows: 0.3 s, 1.2 s, then capped at 2 s; the whole run can't be shorter than half of it.
    assert ceilings[:3] == [0.3, 1.2, 2.0]
    assert sum(gaps) >= sum(ceilings) / 2 - CLOCK_SLACK
    assert sum(gaps) <= sum(ceilings) + 9 * settings.waker_interval + 3 * BUSY_SLACK

    # Nobody else waited for those retries: each was sent once, within seconds of the first attempt.
    received = arrived(clean_sink, others)
    assert received == Counter(others)
    latest = max(m.at for m in clean_sink.messages if m.rcpt_tos[0] in set(others))
    assert latest - tries[0] < 5, f"the others were held up: last arrived {latest - tries[0]:.1f} s in"


async def test_quota_reply_pauses_that_account_while_another_keeps_sending(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink, workers: Workers
) -> None:
    settings = get_settings()
    pause = settings.sender_pause_seconds
    in_flight = 1.0  # messages the other connections had already started may still land just after
    quota = await make_sender(api, auth, clean_sink)
    other = await make_sender(api, auth, clean_sink)
    refused: dict[str, float] = {}

    def quota_once(envelope: Envelope) -> str | None:
        if envelope.mail_from != quota["from_email"] or refused:
            return None
        if len(mail_from(clean_sink, quota)) >= 10:
            refused["at"] = time.time()
            return "550 5.4.5 Daily user sending limit exceeded"
        return None

    clean_sink.faults.data_reply = quota_once
    # Four batches: the ones the worker meets during the pause must be put off, not waited out.
    quota_emails, other_emails = addresses(200, "quota"), addresses(40, "neighbour")
    other_campaign = await draft_campaign(api, auth, other["id"], other_emails)
    quota_campaign = await start_campaign(api, auth, quota["id"], quota_emails)
    await eventually(lambda: refused.get("at"), 60, "the sink refused a message with the quota reply",
                     interval=0.02)
    # The other account's campaign starts while this one is paused: its mail must not wait.
    await campaign_action(api, auth, other_campaign, "start")

    for campaign_id in (quota_campaign, other_campaign):
        done = await wait_status(api, auth, campaign_id, FINAL, timeout=90)
        assert done["status"] == "finished", done
        assert done["counts"]["failed"] == 0 and done["counts"]["pending"] == 0, done
    assert arrived(clean_sink, quota_emails) == Counter(quota_emails)  # all sent, each once
    assert arrived(clean_sink, other_emails) == Counter(other_emails)

    at = refused["at"]
    quota_times = [m.at for m in mail_from(clean_sink, quota)]
    other_times = [m.at for m in mail_from(clean_sink, other)]
    straggling = [round(t - at, 3) for t in quota_times if at < t <= at + in_flight]
    during_pause = [round(t - at, 3) for t in quota_times if at + in_flight < t < at + pause - CLOCK_SLACK]
    other_during = [t - at for t in other_times if at < t < at + pause]
    print(f"quota account: {len(straggling)} in flight after the refusal, {len(during_pause)} during the pause,"
          f" resumed {min((t - at for t in quota_times if t > at + in_flight), default=0):.2f} s after it;"
          f" other account: first {other_times[0] - at:.2f} s after it, {len(other_during)} during the pause")
    assert len(straggling) <= settings.smtp_pool_size - 1, f"{len(straggling)} sent after the refusal: {straggling[:8]}"
    assert not during_pause, f"the paused account sent during its pause: {during_pause}"
    assert other_during, f"the other account waited for this one's pause: first at {other_times[0] - at:.2f} s"

    paused = (await api.get(f"/v1/senders/{quota['id']}", headers=auth)).json()
    assert "5.4.5" in paused["pause_reason"]
    assert (await api.get(f"/v1/senders/{other['id']}", headers=auth)).json()["paused_until"] is None


async def test_per_day_limit_stops_at_the_limit_and_waits_without_failing_anyone(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink, workers: Workers, db: asyncpg.Pool
) -> None:
    sender = await make_sender(api, auth, clean_sink, per_day=5)
    emails = addresses(8, "daily")
    campaign_id = await start_campaign(api, auth, sender["id"], emails)
    await eventually(lambda: len(mail_from(clean_sink, sender)) >= 5, 60, "five messages arrived")
    first = mail_from(clean_sink, sender)[0].at
    await never(lambda: len(mail_from(clean_sink, sender)) > 5, 10, "a sixth message arrived within the day")

    async def waiting() -> dict[str, Any] | None:
        found = await get_campaign(api, auth, campaign_id)
        return found if found["counts"]["sending"] == 0 else None

    found = await eventually(waiting, 10, "no recipient left claimed")
    assert found["status"] == "sending"  # it cannot finish today, and it did not give up
    assert found["counts"] == {"pending": 3, "sending": 0, "sent": 5, "failed": 0, "skipped": 0, "bounced": 0}
    [later] = await eventually(lambda: deferred(db, campaign_id), 10, "the rest was deferred")
    assert later["reason"] == "rate limit"
    assert later["not_before"] >= first + 86400 - 5  # a day after the first of the five

    await campaign_action(api, auth, campaign_id, "cancel")
    found = await get_campaign(api, auth, campaign_id)
    assert found["status"] == "cancelled"
    assert found["counts"] == {"pending": 0, "sending": 0, "sent": 5, "failed": 0, "skipped": 3, "bounced": 0}
    # Tomorrow comes: the deferred batch is republished, and nothing more goes out.
    async with db.acquire() as conn:
        await conn.execute("UPDATE deferred_batches SET not_before = now() WHERE campaign_id = $1",
                           uuid.UUID(campaign_id))

    async def republished() -> bool:
        return not await deferred(db, campaign_id)

    await eventually(republished, 15, "the waker republished the deferred batch")
    await never(lambda: len(mail_from(clean_sink, sender)) > 5, 3, "a message arrived after the cancel")


async def test_recipients_per_connection_opens_a_new_connection_after_n_messages(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink, workers: Workers
) -> None:
    per_connection = 3
    sender = await make_sender(api, auth, clean_sink, recipients_per_connection=per_connection)
    # More messages than the worker's connections (5) could carry at 3 each, so the limit must bite.
    emails = addresses(30, "perconn")
    campaign_id = await start_campaign(api, auth, sender["id"], emails)
    done = await wait_status(api, auth, campaign_id, FINAL, timeout=90)
    assert done["status"] == "finished" and done["counts"]["sent"] == 30, done
    assert arrived(clean_sink, emails) == Counter(emails)
    per_session = Counter(m.connection for m in mail_from(clean_sink, sender))
    print("messages per connection:", sorted(per_session.values()))
    assert max(per_session.values()) == per_connection, per_session  # reused up to the limit, never beyond
    assert len(per_session) >= len(emails) // per_connection


async def test_a_waiting_account_does_not_hold_up_another_accounts_campaign(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink, workers: Workers, db: asyncpg.Pool
) -> None:
    assert len(workers.running("sender")) == 1, "this test needs the session's one sender worker alone"
    limited = await make_sender(api, auth, clean_sink, per_minute=2)
    unlimited = await make_sender(api, auth, clean_sink)
    fast_emails = addresses(120, "unhurried")
    fast_campaign = await draft_campaign(api, auth, unlimited["id"], fast_emails)
    slow_campaign = await start_campaign(api, auth, limited["id"], addresses(6, "metered"))
    try:
        await eventually(lambda: len(mail_from(clean_sink, limited)) >= 2, 60, "the limited account sent 2")
        first = mail_from(clean_sink, limited)[0].at
        # Now the limited account must wait about a minute for its next message.
        started = time.monotonic()
        await campaign_action(api, auth, fast_campaign, "start")
        done = await wait_status(api, auth, fast_campaign, FINAL, timeout=20)
        took = time.monotonic() - started
        print(f"the unlimited campaign of {len(fast_emails)} finished {took:.1f} s after its start")
        assert done["status"] == "finished" and done["counts"]["sent"] == len(fast_emails), done
        assert arrived(clean_sink, fast_emails) == Counter(fast_emails)

        # … while the limited one was still waiting, deferred rather than slept on.
        assert len(mail_from(clean_sink, limited)) == 2
        slow = await get_campaign(api, auth, slow_campaign)
        assert slow["status"] == "sending" and slow["counts"]["sent"] == 2 and slow["counts"]["failed"] == 0
        [later] = await eventually(lambda: deferred(db, slow_campaign), 10, "the limited campaign was deferred")
        assert later["reason"] == "rate limit" and later["not_before"] >= first + 60 - 2
        # Nothing silent: the campaign says what it waits for, and until when.
        shown = await get_campaign(api, auth, slow_campaign)
        waiting = shown["status_reason"]
        assert waiting and "Next emails around" in waiting and "Следующие письма около" in waiting, waiting
        assert "the sender's limit" in waiting and "лимит отправителя" in waiting, waiting
        assert (shown["next_batch"]["reason"], shown["next_batch"]["limit"]) == ("minute_limit", 2), shown["next_batch"]
    finally:
        await campaign_action(api, auth, slow_campaign, "cancel")


async def test_a_batch_whose_handling_fails_three_times_is_dead_lettered_and_the_partition_flows(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink, workers: Workers, db: asyncpg.Pool
) -> None:
    settings = get_settings()

    def poison_failures() -> list[dict[str, Any]]:
        return [line for line in worker_log(workers.logs, "sender")
                if line["message"].endswith(", retrying") and "out of int32 range" in line.get("exception", "")]

    before = len(poison_failures())
    # A rate limit keys all of this account's batches to one partition, in order.
    sender = await make_sender(api, auth, clean_sink, per_minute=100_000)
    key = str(sender["id"]).encode()
    # A record whose handling always fails: a well-formed batch of a sending campaign whose last
    # position is past what Postgres' integer holds, so every query for it raises.
    poison_emails = addresses(5, "poisoned")
    poison = await start_campaign(api, auth, sender["id"], poison_emails)
    await wait_status(api, auth, poison, FINAL, timeout=60)
    clean_sink.messages.clear()
    await db.execute("UPDATE campaigns SET status = 'sending' WHERE id = $1", uuid.UUID(poison))
    batch = DeliveryBatch(uuid.UUID(poison), sender["id"], 1, 2**40)
    producer = AIOKafkaProducer(**broker.client_options(settings))
    await producer.start()
    try:
        await producer.send_and_wait(settings.topic_deliveries, batch.encode(), key=batch.key)
    finally:
        await producer.stop()
    published = time.monotonic()
    try:
        await eventually(lambda: len(poison_failures()) > before, 60, "the worker failed on the poison batch")
        # Published now, this campaign's batch sits behind the poison one on the same partition.
        emails = addresses(20, "after-poison")
        normal = await start_campaign(api, auth, sender["id"], emails)
        done = await wait_status(api, auth, normal, FINAL, timeout=60)
        assert done["status"] == "finished" and done["counts"]["sent"] == 20, done
        assert arrived(clean_sink, emails) == Counter(emails)

        async def dead_lettered() -> list[Any]:
            # Other tests put undecodable records there too: match the bytes, then decode.
            return [r for r in await read_topic(settings.topic_dead_letters)
                    if r.value and poison.encode() in r.value and json.loads(r.value)["campaign_id"] == poison]

        [record, *_] = await eventually(dead_lettered, 30, "the poison batch is in the dead-letter topic")
        headers = {name: value.decode() for name, value in record.headers}
        assert "out of int32 range" in headers["error"], headers
        assert headers["source-topic"] == settings.topic_deliveries
        assert record.key == key
        partition, offset = int(headers["source-partition"]), int(headers["source-offset"])
        all_partitions = list(range(settings.delivery_partitions))
        assert partition == DefaultPartitioner()(key, all_partitions, all_partitions)  # the normal one's too
        assert await committed_offset(settings.consumer_group_sender, settings.topic_deliveries, partition) > offset

        # Three attempts: two failures retried, the third dead-lettered.
        log = worker_log(workers.logs, "sender")
        retried = [line["attempt"] for line in log
                   if line["message"] == "handler failed, retrying" and line.get("offset") == offset
                   and "out of int32 range" in line.get("exception", "")]
        gave_up = [line for line in log if line["message"] == "dead-lettered" and line.get("offset") == offset
                   and line.get("partition") == partition and line.get("topic") == settings.topic_deliveries]
        assert retried == [1, 2] and len(gave_up) == 1, (retried, gave_up)
        assert not arrived(clean_sink, poison_emails)
        poisoned = await get_campaign(api, auth, poison)
        assert poisoned["counts"]["sent"] == 5 and poisoned["counts"]["sending"] == 0, poisoned  # before the poison
        # Nothing stalls silently: the campaign whose work was dead-lettered says so.
        assert poisoned["status"] == "paused", poisoned
        assert "could not be processed" in poisoned["status_reason"] and "int32" in poisoned["status_reason"]
        paused_in = time.monotonic() - published  # an upper bound: checked only now
        record_user("dead_lettered_work", "`paused`: «Часть рассылки не удалось обработать (…); нажмите"
                    " «Продолжить», чтобы повторить. / Part of this campaign could not be processed …»", paused_in)
    finally:
        await campaign_action(api, auth, poison, "cancel")


async def test_550_fails_those_recipients_with_the_reply(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink, workers: Workers, rng: random.Random
) -> None:
    emails = addresses(60, "some")
    gone = set(rng.sample(emails, 7))
    clean_sink.faults.rcpt_reply = lambda rcpt: f"550 5.1.1 <{rcpt}>: user unknown" if rcpt in gone else None
    campaign_id = await run_campaign(api, auth, clean_sink, emails)
    done = await wait_status(api, auth, campaign_id, FINAL)
    assert done["counts"] == {"pending": 0, "sending": 0, "sent": 53, "failed": 7, "skipped": 0, "bounced": 0}
    failed = await list_recipients(api, auth, campaign_id, status="failed")
    assert {r["email"] for r in failed} == gone
    assert all(r["reply"].startswith("550 5.1.1") and r["attempts"] == 1 for r in failed)
    assert set(arrived(clean_sink, emails)) == set(emails) - gone


async def test_rejected_password_pauses_the_campaign_and_fails_nobody(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink, workers: Workers
) -> None:
    sender = await make_sender(api, auth, clean_sink, password="soon-revoked")  # verified while it worked
    upload = await make_upload(api, auth, ("email\n" + "\n".join(addresses(40, "auth")) + "\n").encode())
    clean_sink.faults.rejected_passwords.add("soon-revoked")  # then the provider revokes it
    draft = (await api.post("/v1/campaigns", headers=auth, json={
        "sender_id": sender["id"], "upload_id": upload["id"], "subject": "s", "html_body": "<p>b</p>"})).json()
    assert (await api.post(f"/v1/campaigns/{draft['id']}/start", headers=auth)).status_code == 202
    done = await wait_status(api, auth, draft["id"], FINAL)
    assert done["status"] == "paused"
    assert "535" in done["status_reason"] or "password" in done["status_reason"].lower()
    assert done["counts"] == {"pending": 40, "sending": 0, "sent": 0, "failed": 0, "skipped": 0, "bounced": 0}

    clean_sink.faults.rejected_passwords.clear()  # the user fixes the password, then resumes
    assert (await api.post(f"/v1/campaigns/{draft['id']}/resume", headers=auth)).status_code == 202
    done = await wait_status(api, auth, draft["id"], {"finished"})
    assert done["counts"]["sent"] == 40


async def test_a_sender_address_refused_mid_campaign_pauses_it_with_the_reason_in_both_languages(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink, workers: Workers
) -> None:
    # The attack of 2026-12-01: the provider stops taking the From address after 20 messages; the
    # campaign paused with the server's English words only ("553 5.7.1 …"), as the only reason.
    taken = itertools.count(1)
    clean_sink.faults.mail_reply = lambda sender: (
        None if next(taken) <= 20 else "553 5.7.1 <news@example.org>: Sender address rejected: not owned by user")
    campaign_id = await run_campaign(api, auth, clean_sink, addresses(120, "refused-from"))
    done = await wait_status(api, auth, campaign_id, FINAL)
    assert done["status"] == "paused", done
    reason = done["status_reason"]
    assert "Сервер не разрешил отправку от имени" in reason and "The server refused to send as" in reason, reason
    assert "553 5.7.1" in reason
    assert done["counts"]["failed"] == 0 and done["counts"]["sent"] + done["counts"]["pending"] == 120, done


async def test_per_minute_limit_holds_at_the_sink(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink, workers: Workers
) -> None:
    limit = 15
    emails = addresses(35, "paced")
    campaign_id = await run_campaign(api, auth, clean_sink, emails, per_minute=limit)
    done = await wait_status(api, auth, campaign_id, FINAL, timeout=200)
    assert done["status"] == "finished" and done["counts"]["sent"] == 35
    arrivals = sorted(m.at for m in clean_sink.messages if m.rcpt_tos[0].startswith("paced"))
    assert len(arrivals) == 35
    busiest = max(sum(1 for t in arrivals if start <= t < start + 60) for start in arrivals)
    assert busiest <= limit, busiest
    assert arrivals[-1] - arrivals[0] >= 120  # 35 at 15 a minute cannot take less than two minutes
