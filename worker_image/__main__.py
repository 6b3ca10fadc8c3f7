"""Worker entry point: `python -m worker_image sender|fanout|bounce` (one process per container)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from collections.abc import Awaitable, Callable

import asyncpg

from shared import broker, fanout, outbox, send_window, uploads
from shared.bounces.idle import IdleSessions
from shared.bounces.reader import due_senders, look, release_claim
from shared.bounces.record import forget_old
from shared.bounces.slots import QUEUE_SECONDS, FairSlots
from shared.campaigns import states
from shared.campaigns.schedule import start_due
from shared.commands import DeliveryBatch, InspectUpload, Publish, campaign_of, decode_command, upload_of
from shared.crypto import key_provider_from_settings
from shared.db import create_pool, migrate
from shared.deferrals import republish_due
from shared.delivery.postgres_store import PostgresDeliveryStore
from shared.delivery.scheduler import Deliverer, RetryPolicy
from shared.mail.messenger import ConnectPolicy
from shared.settings import get_settings
from shared.storage import UploadStore
from shared.sweeper import republish_stalled, requeue_stuck
from shared.unsubscribe import signing_key
from worker_image.consume import Revocations, beat, configure_logging, run, stop_on_signals
from worker_image.file_readers import FileReaders

log = logging.getLogger("sendpy.worker")
IDLE_FILL_SECONDS = 5.0  # how soon a free IDLE place is taken (a new sender, a watch that ended)
FORGET_SECONDS = 3600.0  # how often bounce messages past their REMEMBER_DAYS are deleted


async def run_worker(kind: str) -> None:
    settings = get_settings()
    stopping = asyncio.Event()
    stop_on_signals(stopping)
    db = await create_pool(settings, session_free=kind == "sender")  # no reset round trip per release
    async with db.acquire() as conn:
        await migrate(conn)
    await broker.ensure_topics(settings)
    producer = await broker.start_producer(settings)
    deliverer: Deliverer | None = None
    background: list[asyncio.Task[None]] = []
    window = send_window.Window(settings.delivery_batch_size, settings.campaign_window)

    async def publish(batches: list[DeliveryBatch]) -> None:
        sends = [await producer.send(settings.topic_deliveries, value=b.encode(), key=b.key) for b in batches]
        await asyncio.gather(*sends)  # every batch acknowledged before anything is committed

    if kind == "sender":
        deliverer = Deliverer(
            PostgresDeliveryStore(db), key_provider_from_settings(settings), ConnectPolicy.from_settings(settings),
            connections_per_sender=settings.smtp_pool_size,
            retry=RetryPolicy(settings.retry_base_seconds, settings.retry_max_attempts,
                              settings.sender_pause_seconds, settings.retry_max_delay_seconds,
                              settings.slow_backoff_seconds),
            unsubscribe_key=signing_key(settings), public_base_url=settings.public_base_url,
            claim_lease_seconds=settings.claim_lease_seconds, batch_budget_seconds=settings.batch_budget_seconds,
        )
        consumer = broker.new_consumer(settings, settings.consumer_group_sender)
        topic = settings.topic_deliveries

        async def handle(raw: bytes) -> None:
            assert deliverer is not None
            batch = DeliveryBatch.decode(raw)
            await deliverer.deliver(batch)
            # Its place in the campaign's window goes to the next batch before the offset is committed.
            await send_window.finished(db, batch, publish, window)
    else:
        consumer = broker.new_consumer(settings, settings.consumer_group_fanout)
        topic = settings.topic_campaigns
        store = UploadStore(settings)
        # Big contact files are read beside this topic, never in front of other users' starts.
        readers = FileReaders(db, store, publish, window, settings)

        async def handle(raw: bytes) -> None:
            command = decode_command(raw)
            if isinstance(command, InspectUpload):  # written by an earlier version
                await uploads.queue_inspection(db, command.upload_id)
            else:
                await fanout.run(db, command, publish, window, store, settings.fanout_chunk_rows)
            readers.wake()

        async def send_commands(records: list[tuple[bytes, bytes]]) -> None:
            sends = [await producer.send(settings.topic_campaigns, value=v, key=k) for k, v in records]
            await asyncio.gather(*sends)

        background = [*background_steps(db, store, publish, send_commands, stopping),
                      asyncio.create_task(readers.run(stopping))]

    async def gave_up(raw: bytes, error: str) -> None:
        """Work that went to the dead-letter topic pauses its campaign with the reason, so the
        campaign does not sit in `sending` with nothing happening and nothing said."""
        campaign_id, upload_id = campaign_of(raw), upload_of(raw)
        async with db.acquire() as conn:
            if campaign_id is not None:
                await states.pause(conn, campaign_id, states.could_not_process(error))
            if upload_id is not None:
                await uploads.could_not_inspect(conn, upload_id, error)

    revocations = Revocations()
    consumer.subscribe([topic], listener=revocations)
    await consumer.start()
    log.info("worker started", extra={"kind": kind, "pid": os.getpid()})
    try:
        # A sender works on several batches of a partition at once, so one slow server (or one user's
        # big campaign) does not hold the other users' batches behind it; a campaign's commands
        # must stay in order, so the fan-out takes them one at a time.
        slots = settings.batches_per_partition if kind == "sender" else 1
        await run(consumer, producer, handle, settings.topic_dead_letters, stopping, revocations, gave_up, slots)
    finally:
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        await consumer.stop()
        await producer.stop()
        if deliverer is not None:
            await deliverer.close()
        await db.close()
        log.info("worker stopped", extra={"kind": kind})


async def repeat(step: Callable[[], Awaitable[int]], interval: float, stopping: asyncio.Event, what: str,
                 level: int = logging.INFO) -> None:
    """Run `step` every `interval` seconds until stopping; a failure is logged and retried."""
    while not stopping.is_set():
        try:
            count = await step()
            if count:
                log.log(level, what, extra={"count": count})
        except Exception:
            log.warning("%s: failed; will retry", what, exc_info=True)
        try:
            await asyncio.wait_for(stopping.wait(), timeout=interval)
        except TimeoutError:
            pass


def background_steps(db: asyncpg.Pool, store: UploadStore, publish: Publish, send_commands: outbox.SendRecords,
                     stopping: asyncio.Event) -> list[asyncio.Task[None]]:
    """The fan-out's timers: due deferrals, scheduled campaigns, the outbox relay, and the stall
    sweeper (sweeper.py)."""
    settings = get_settings()
    sweep_interval = max(settings.stall_seconds / 10, 1.0)

    async def relay_all() -> int:
        relayed = 0
        while count := await outbox.relay(db, send_commands):
            relayed += count
        return relayed

    return [
        asyncio.create_task(repeat(lambda: republish_due(db, publish), settings.waker_interval, stopping,
                                   "deferred batches republished")),
        asyncio.create_task(repeat(lambda: start_due(db, store), settings.waker_interval, stopping,
                                   "scheduled campaigns started")),
        asyncio.create_task(repeat(relay_all, settings.waker_interval, stopping, "outbox commands published")),
        asyncio.create_task(repeat(
            lambda: republish_stalled(db, publish, settings.delivery_batch_size, settings.stall_seconds,
                                      settings.campaign_window),
            sweep_interval, stopping, "stalled campaigns republished", logging.WARNING)),
        asyncio.create_task(repeat(lambda: requeue_stuck(db, settings.stall_seconds), sweep_interval, stopping,
                                   "stuck commands written again", logging.WARNING)),
    ]


async def run_bounce_worker() -> None:
    """Read the senders' INBOXes for bounces: Postgres and IMAP only, no Kafka. Up to
    SENDPY_BOUNCE_IDLE_CONNECTIONS senders are watched with IMAP IDLE (shared/bounces/idle.py);
    the others, and any whose watch failed, are polled every SENDPY_BOUNCE_POLL_SECONDS."""
    settings = get_settings()
    stopping = asyncio.Event()
    stop_on_signals(stopping)
    db = await create_pool(settings)
    async with db.acquire() as conn:
        await migrate(conn)
    keys = key_provider_from_settings(settings)
    tag_key = signing_key(settings)  # a bounce counts only with our keyed tag in its Message-ID
    policy = ConnectPolicy.from_settings(settings)
    # Shared by the poller's looks and the IDLE sessions' alike, fairly between accounts (slots.py).
    slots = FairSlots(settings.bounce_concurrency)

    async def check(sender_id: int, user_id: int, held: bool = False) -> int | None:
        # A look that stopped at its cap with mail left is followed by another at once, after
        # its turn for a slot: a watched sender would otherwise wait for new mail or IDLE's re-issue.
        total, more = 0, True
        try:
            while more:
                # A poller's claim lasts a while, not for ever: given up after QUEUE_SECONDS in line.
                async with slots.take(user_id, polled=not held, wait=None if held else QUEUE_SECONDS):
                    try:
                        marked, more = await asyncio.wait_for(
                            look(db, keys, policy, sender_id, signing_key=tag_key, held=held), timeout=600)
                    except Exception:
                        log.warning("checking a mailbox failed", extra={"sender": sender_id}, exc_info=True)
                        return None
                if marked is None:
                    return None
                if marked:
                    log.info("bounces recorded", extra={"sender": sender_id, "count": marked})
                total += marked
            return total
        except TimeoutError:  # no slot within QUEUE_SECONDS: the sender is due again in a later round
            return None
        finally:
            if more and not held:  # stopped between looks: the claim kept for the next one ends
                await release_claim(db, sender_id)

    async def watched(sender_id: int, user_id: int) -> int | None:
        return await check(sender_id, user_id, held=True)

    # Checks run on their own, as many as there are slots: a slow mailbox (one server answering
    # every command just in time) holds one slot, not the round that everyone else waits for. The
    # senders claimed wait in line for a slot with the IDLE sessions' looks (slots.py).
    running: set[asyncio.Task[int | None]] = set()

    async def round_of_checks() -> int:
        beat()
        room, share, load = slots.for_poller()
        due = []
        if room > 0:
            due = await due_senders(db, settings.bounce_poll_seconds, limit=room, per_user=share, load=load)
        # An account with no look here gets one claimed even when the line is full.
        newcomers = slots.newcomer_room() - len(due)
        if newcomers > 0:
            busy = {**{user: 1 for user in load}, **{user: 1 for _, user in due}}
            due += await due_senders(db, settings.bounce_poll_seconds, limit=newcomers, per_user=1, load=busy)
        for sender_id, user_id in due:
            task = asyncio.create_task(check(sender_id, user_id))
            running.add(task)
            task.add_done_callback(running.discard)
        return len(due)

    async def forget_old_bounces() -> int:
        async with db.acquire() as conn:
            return await forget_old(conn)

    idle = IdleSessions(db, keys, policy, watched, limit=settings.bounce_idle_connections,
                        lease_seconds=settings.bounce_idle_lease_seconds)
    log.info("worker started", extra={"kind": "bounce", "pid": os.getpid()})
    try:  # IDLE sessions are claimed first, so a sender that can be watched is not polled at start
        await idle.fill()
    except Exception:
        log.warning("starting IDLE sessions failed; will retry", exc_info=True)
    loops = [
        asyncio.create_task(repeat(round_of_checks, min(settings.bounce_poll_seconds / 4, 15.0), stopping,
                                   "mailboxes checked")),
        asyncio.create_task(repeat(idle.fill, IDLE_FILL_SECONDS, stopping, "mailboxes watched")),
        asyncio.create_task(repeat(idle.renew, max(settings.bounce_idle_lease_seconds / 4, 0.5), stopping,
                                   "watches ended")),
        asyncio.create_task(repeat(forget_old_bounces, FORGET_SECONDS, stopping, "old bounce messages forgotten")),
    ]
    try:
        await stopping.wait()
    finally:
        # A round of checks may be in the middle of a look: cancelled, check_sender cuts its
        # connection and releases its claim, so the stop does not wait for the mailbox. The loops
        # go first, so that no session starts while the others end.
        for task in [*loops, *running]:
            task.cancel()
        await asyncio.gather(*loops, *running, return_exceptions=True)
        await idle.close()
        await db.close()
        log.info("worker stopped", extra={"kind": "bounce"})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="worker_image", description="Run one Sendpy worker.")
    parser.add_argument("kind", choices=["sender", "fanout", "bounce"])
    args = parser.parse_args(argv)
    configure_logging(get_settings().log_level)
    work = run_bounce_worker() if args.kind == "bounce" else run_worker(args.kind)
    try:
        import uvloop  # about 1.7× the messages per second of the default loop, measured

        uvloop.run(work)
    except ImportError:
        asyncio.run(work)


if __name__ == "__main__":
    main()
