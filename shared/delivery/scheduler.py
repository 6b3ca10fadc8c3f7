"""The scheduler of the sender workers: decides which recipient goes out, through which connection,
and when — the messenger only talks SMTP.

For one delivery batch it reads the recipients that are due, claims them in chunks, renders each
message from the campaign compiled once, sends through the account's pooled connections within
its limits, and records outcomes in bulk. Whatever cannot go out now (a rate limit, a 4xx to retry
later, a paused account, a claim still held by a worker that may be alive) is written down as a
deferred batch that the fan-out worker republishes when it is due. The caller commits the Kafka
offset only after `deliver` returns, so every outcome and every deferral is in Postgres first.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from shared.campaigns.preview import template_problem
from shared.campaigns.states import OPEN_FOR_SENDING, CampaignForSending
from shared.commands import DeliveryBatch
from shared.crypto import KeyProvider
from shared.delivery import slowness
from shared.delivery.connections import AccountPaused, Connect, SenderState
from shared.delivery.outcomes import RetryPolicy as RetryPolicy  # built here by the workers and tests
from shared.delivery.outcomes import Stop, refusal_problem, settings_problem
from shared.delivery.store import DeliveryStore
from shared.limits import SendLimiter, Window
from shared.mail.compose import CampaignContent, CompiledCampaign, TemplateError
from shared.mail.messenger import ConnectError, ConnectPolicy, Reply, ReplyKind, SmtpConnection
from shared.mail.template_reasons import failure_in_english, failure_in_russian
from shared.recipients import CLAIM_LEASE_SECONDS, Claimed, RecipientResult
from shared.smtp_accounts import Sender
from shared.unsubscribe import Unsubscriber

log = logging.getLogger("sendpy.delivery")

CLAIM_CHUNK = 100
# How long one batch may start new messages on its partition. A slow or silent server then costs
# the other users on that partition this much, not the whole batch: the rest is deferred to "now"
# and comes back behind whatever the partition holds meanwhile. Each message's steps before DATA
# have deadlines tied to it too (slowness.py), so one that starts late ends soon after.
BATCH_BUDGET_SECONDS = 20.0
FLUSH_SECONDS = 0.1
# How often a running batch asks whether its campaign was cancelled or paused meanwhile.
STATUS_SECONDS = 1.0
# Unexpected errors writing outcomes are retried this many times before the batch gives up.
FLUSH_SURPRISES = 3
SENDER_REFRESH_SECONDS = 10.0
LANES_PER_CONNECTION = 2
RENDER_THREADS = 4  # threads that compile templates and render the ones with filters or conditions
# An account this worker has not sent for in this long is dropped with its connections.
SENDER_IDLE_SECONDS = 300.0
# Connection problems that retrying cannot fix: a person has to change the sender's settings.
_SETTINGS_PROBLEMS = {"auth", "tls", "starttls", "private", "plaintext", "dns"}


class Deliverer:
    def __init__(
        self,
        store: DeliveryStore,
        keys: KeyProvider,
        policy: ConnectPolicy,
        *,
        connections_per_sender: int = 5,
        retry: RetryPolicy | None = None,
        unsubscribe_key: bytes | None = None,
        public_base_url: str = "",
        claim_lease_seconds: float = CLAIM_LEASE_SECONDS,
        connect: Connect = SmtpConnection,
        batch_budget_seconds: float = BATCH_BUDGET_SECONDS,
    ) -> None:
        self._lease = claim_lease_seconds
        self._budget = batch_budget_seconds
        self._phase = slowness.phase_seconds(batch_budget_seconds)  # each step before DATA, per message
        self._store = store
        self._connect = connect
        self._keys = keys
        self._policy = policy
        self._connections = connections_per_sender
        self._retry = retry or RetryPolicy()
        self._slow = slowness.SlowServers(self._retry, store)
        self._unsubscribe_key = unsubscribe_key
        self._base_url = public_base_url
        # Being compiled or compiled: the batches of a campaign that start together wait for one
        # compilation and go on together, in the order they came (turns.py then keeps the rows' order).
        self._compiled: OrderedDict[uuid.UUID, asyncio.Future[CompiledCampaign]] = OrderedDict()
        self._render_pool = ThreadPoolExecutor(RENDER_THREADS, thread_name_prefix="sendpy-render")
        self._senders: dict[int, SenderState] = {}
        self._loading: dict[int, asyncio.Lock] = {}

    async def close(self) -> None:
        states, self._senders = self._senders, {}
        await asyncio.gather(*(state.close() for state in states.values()))
        self._render_pool.shutdown(wait=False, cancel_futures=True)

    async def _compiled_campaign(self, campaign: CampaignForSending, sender: Sender) -> CompiledCampaign:
        compiled = self._compiled.get(campaign.id)
        if compiled is None or (compiled.done() and (compiled.cancelled() or compiled.exception() is not None)):
            content = CampaignContent(
                str(campaign.id), sender.from_email, sender.from_name,
                campaign.subject, campaign.html, campaign.text,
            )
            unsubscriber = (Unsubscriber(self._unsubscribe_key, self._base_url, campaign.id, campaign.user_id)
                            if self._unsubscribe_key else None)
            # Compiling a large template takes a good part of a second: not on the loop that
            # carries every other account's sends and the Kafka heartbeats.
            compiled = asyncio.get_running_loop().run_in_executor(
                self._render_pool, functools.partial(CompiledCampaign, content, unsubscriber=unsubscriber))
            self._compiled[campaign.id] = compiled
            if len(self._compiled) > 64:
                self._compiled.popitem(last=False)
        return await asyncio.shield(compiled)  # a batch cancelled while it waits leaves it to the others

    async def _sender_state(self, sender_id: int) -> SenderState | None:
        """The account, re-read every few seconds so pauses and new limits take effect. One state
        per account however many of its batches run at once: they share its connections and pause."""
        async with self._loading.setdefault(sender_id, asyncio.Lock()):
            return await self._load_sender_state(sender_id)

    async def _load_sender_state(self, sender_id: int) -> SenderState | None:
        await self._evict_idle(keep=sender_id)
        state = self._senders.get(sender_id)
        if state is not None and time.monotonic() - state.loaded_at < SENDER_REFRESH_SECONDS:
            return state
        sender = await self._store.sender(sender_id)
        if sender is None:
            return None
        paused_until = await self._store.sender_paused_until(sender_id)
        if state is None or state.sender != sender:
            if state is not None:
                await state.close()
            limiter = SendLimiter([Window(60, sender.per_minute or 0), Window(86400, sender.per_day or 0)])
            if limiter.limited:
                limiter.seed(await self._store.recent_sends(sender_id))
            state = SenderState(sender, self._keys, self._policy, self._connect, self._connections, limiter)
            self._senders[sender_id] = state
        state.loaded_at = time.monotonic()
        state.paused_until = max(state.paused_until, paused_until)  # a pause seen here may not be stored yet
        return state

    async def _evict_idle(self, keep: int) -> None:
        """Forget accounts not used for a while, closing their connections."""
        cutoff = time.monotonic() - SENDER_IDLE_SECONDS
        idle = [sid for sid, state in self._senders.items() if sid != keep and state.used_at < cutoff]
        for sender_id in idle:
            await self._senders.pop(sender_id).close()
        self._slow.forget_all_but(set(self._senders))

    async def deliver(self, batch: DeliveryBatch) -> None:
        state = await self._sender_state(batch.sender_id)
        if state is None:
            return
        # From here until its rows ask for connections, the campaign's later rows wait (turns.py).
        ready = state.hold((batch.campaign_id.int, batch.last))
        try:
            await self._deliver(batch, state, ready)
        finally:
            ready()

    async def _deliver(self, batch: DeliveryBatch, state: SenderState, ready: Callable[[], None]) -> None:
        campaign = await self._store.campaign(batch.campaign_id)
        if campaign is None or campaign.status not in OPEN_FOR_SENDING or campaign.sender_id != batch.sender_id:
            return  # deleted, paused or cancelled: a resume re-plans whatever is still open
        streak = self._slow.streak(batch.sender_id)
        stop = Stop()
        if state.paused_until > time.time():
            stop = Stop(ReplyKind.PAUSE_SENDER, "sender paused", state.paused_until)
            if streak.strikes:  # backing off a slow server: this campaign waits for the same reason
                await self._store.note_slow_server(batch.campaign_id, streak.reason)
        elif streak.strikes and streak.running:
            # A server known to be slow gets one batch of the account at a time, not one per partition.
            stop = Stop(ReplyKind.RETRY, "slow server", time.time() + self._phase)
        else:
            streak.running += 1
            try:
                await self._send_due(batch, campaign, state, stop, ready)
            finally:
                streak.running -= 1
        await self._after(batch, stop)

    async def _send_due(self, batch: DeliveryBatch, campaign: CampaignForSending,
                        state: SenderState, stop: Stop, ready: Callable[[], None]) -> None:
        """Claim ahead, send on every connection, write outcomes every ~100 ms.

        Outcomes are flushed often, not per chunk, because a crash between the server's "250"
        and the status write is the one window in which a recipient can get a duplicate.
        """
        positions = await self._store.due_positions(batch.campaign_id, batch.first, batch.last, self._lease)
        if not positions:
            return
        try:
            compiled = await self._compiled_campaign(campaign, state.sender)
        except TemplateError as exc:  # passed the checks of its day, not today's: the person must edit it
            stop.outcome, stop.reason = ReplyKind.PAUSE_CAMPAIGN, template_problem(exc)
            return
        # Two lanes per connection: on a pipelining server the second's commands go out with the
        # first's body (one write a message); elsewhere the second waits for a free connection.
        lanes = min(state.size * LANES_PER_CONNECTION, len(positions))
        queue: asyncio.Queue[Claimed | None] = asyncio.Queue(maxsize=CLAIM_CHUNK)
        done: list[RecipientResult] = []

        claim_failure: list[Exception] = []

        deadline = time.monotonic() + self._budget

        def over_budget() -> bool:
            if stop.outcome is None and time.monotonic() > deadline:
                stop.outcome, stop.reason, stop.not_before = ReplyKind.RETRY, "time budget", time.time()
            return stop.outcome is not None

        async def claimer() -> None:
            try:
                for start in range(0, len(positions), CLAIM_CHUNK):
                    if over_budget():
                        break
                    claimed = await self._store.claim(batch.campaign_id, campaign.user_id,
                                                      positions[start : start + CLAIM_CHUNK], self._lease)
                    if claimed is None:
                        break  # paused or cancelled: takes effect between chunks, within seconds
                    for item in claimed:
                        if item.suppressed:  # since the recipients were loaded: not mailed
                            done.append(RecipientResult(item.position, "skipped", "suppressed"))
                        else:
                            await queue.put(item)
            except Exception as exc:
                # Stop handing out work but let the sends in flight finish and be recorded:
                # cancelling them mid-DATA would turn accepted mail into later duplicates.
                claim_failure.append(exc)
                if stop.outcome is None:
                    stop.outcome, stop.reason = ReplyKind.RETRY, f"claiming failed: {exc}"
            finally:
                for _ in range(lanes):
                    await queue.put(None)

        async def lane() -> None:
            while (item := await queue.get()) is not None:
                if stop.outcome is None and state.paused_until > time.time():  # paused by another batch
                    stop.outcome, stop.reason, stop.not_before = (ReplyKind.PAUSE_SENDER, "sender paused",
                                                                  state.paused_until)
                if over_budget():
                    done.append(RecipientResult(item.position, "released", None))
                    continue
                done.append(await self._send_one(state, compiled, batch, item, stop, deadline))
            ready()  # every row of the batch has asked for a connection

        async def together() -> None:
            async with asyncio.TaskGroup() as group:  # one failing cancels the others
                group.create_task(claimer())
                for _ in range(lanes):
                    group.create_task(lane())

        sending = asyncio.create_task(together())
        looked = time.monotonic()
        try:
            while not sending.done():
                await asyncio.wait([sending], timeout=FLUSH_SECONDS)
                await self._flush(batch.campaign_id, done)
                if stop.outcome is None and time.monotonic() - looked > STATUS_SECONDS:
                    # Cancel and pause reach what is already claimed too: a slow server would
                    # otherwise go on taking this batch's claimed recipients for minutes.
                    looked = time.monotonic()
                    status = await self._campaign_status(batch.campaign_id)
                    if status is not None and status not in OPEN_FOR_SENDING and stop.outcome is None:
                        stop.outcome, stop.reason = ReplyKind.RETRY, f"campaign {status}"
        except Exception:
            # The batch is about to be handed back for a retry. Its sends in flight finish and are
            # recorded first: a retry running beside them would claim them again once their lease
            # ran out, and mail those people twice.
            if stop.outcome is None:
                stop.outcome, stop.reason = ReplyKind.RETRY, "recording outcomes failed"
            await asyncio.wait([sending])
            await self._flush(batch.campaign_id, done)
            raise
        await sending  # re-raise what failed
        await self._flush(batch.campaign_id, done)
        if claim_failure:
            raise claim_failure[0]  # the consume loop retries the batch (transient) or dead-letters it

    async def _campaign_status(self, campaign_id: uuid.UUID) -> str | None:
        """The campaign's status, or None when Postgres cannot say right now (asked again soon)."""
        try:
            return await self._store.campaign_status(campaign_id)
        except self._store.transient_errors:
            return None

    async def _flush(self, campaign_id: uuid.UUID, done: list[RecipientResult]) -> None:
        """Write outcomes so far; while Postgres is away, keep them and retry, never drop them.

        An error that is not a lost connection is retried a few times too: after a restart a
        pooled connection can fail in ways the driver does not call "connection lost".
        """
        if not done:
            return
        outcomes = done[:]
        delay = 0.2
        surprises = 0
        while True:
            try:
                await self._store.record(campaign_id, outcomes)
                break
            except Exception as exc:
                if not isinstance(exc, self._store.transient_errors):
                    surprises += 1
                    if surprises > FLUSH_SURPRISES:
                        raise
                log.warning("recording outcomes failed; retrying", exc_info=True,
                            extra={"campaign": str(campaign_id), "outcomes": len(outcomes)})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        del done[: len(outcomes)]

    async def _after(self, batch: DeliveryBatch, stop: Stop) -> None:
        """Pause what must pause, defer what is left, finish what is done."""
        store = self._store
        # A campaign's updated_at is its heartbeat: the stall sweeper (deferrals.py) reads it.
        await store.heartbeat(batch.campaign_id)
        if await store.campaign_status(batch.campaign_id) == "cancelled":
            # Recipients handed back while the cancel landed must not stay pending.
            await store.skip_open(batch.campaign_id, "cancelled")
            return
        if stop.outcome is ReplyKind.PAUSE_CAMPAIGN:
            await store.pause_campaign(batch.campaign_id, stop.reason)
            log.warning("campaign paused", extra={"campaign": str(batch.campaign_id), "reason": stop.reason})
            return
        if stop.outcome is ReplyKind.PAUSE_SENDER and stop.reason != "sender paused":
            await store.pause_sender(batch.sender_id, stop.not_before, stop.reason)
            paused = self._senders.pop(batch.sender_id, None)
            if paused is not None:
                await paused.close()
            log.warning("sender paused", extra={"sender": batch.sender_id, "reason": stop.reason})
        await self._slow.after(batch, stop)
        if await store.finish_if_done(batch.campaign_id):
            log.info("campaign finished", extra={"campaign": str(batch.campaign_id)})
            return
        if await store.campaign_status(batch.campaign_id) not in OPEN_FOR_SENDING:
            return
        not_before = await store.next_due(batch.campaign_id, batch.first, batch.last, self._lease)
        if not_before is None:
            return
        if stop.not_before:
            not_before = max(not_before, stop.not_before)
        await store.defer(batch, not_before, stop.reason or "retry")

    async def _render(self, compiled: CompiledCampaign, item: Claimed) -> bytes:
        """One recipient's message. Filling in plain fields takes microseconds and stays on the
        loop; templates with filters or conditions can take up to their time budget
        (template_limits.py) and run in a thread, so that the loop's other sends go on."""
        if compiled.plain:
            return compiled.render(item.position, item.email, item.fields)
        return await asyncio.get_running_loop().run_in_executor(
            self._render_pool, compiled.render, item.position, item.email, item.fields)

    async def _send_one(self, state: SenderState, compiled: CompiledCampaign, batch: DeliveryBatch,
                        item: Claimed, stop: Stop, deadline: float) -> RecipientResult:
        try:
            # Waiting for one of the account's connections counts against the batch's budget: with
            # a slow server every lane of every batch of the account queues here, the file's lowest
            # rows first (turns.py). Logging in has a deadline of its own, so that a message begun
            # late is not cut off as "too slow".
            conn = await state.acquire(max(deadline - time.monotonic(), 0.1), self._phase,
                                       (batch.campaign_id.int, item.position))  # an int hashes in C, a UUID in Python
        except TimeoutError:
            if stop.outcome is None:
                stop.outcome, stop.reason, stop.not_before = ReplyKind.RETRY, "time budget", time.time()
            return RecipientResult(item.position, "released", None)
        except AccountPaused:
            if stop.outcome is None:
                stop.outcome, stop.reason, stop.not_before = ReplyKind.PAUSE_SENDER, "sender paused", state.paused_until
            return RecipientResult(item.position, "released", None)
        except ConnectError as exc:
            if exc.kind == "slow":
                return self._slow.too_slow(state, item, stop, exc.waited)
            if exc.kind in _SETTINGS_PROBLEMS:
                stop.outcome = ReplyKind.PAUSE_CAMPAIGN
                stop.reason = settings_problem(state.sender, exc)
                return RecipientResult(item.position, "released", None)
            # The server is unreachable: stop hammering it, retry this recipient later. Said in
            # both languages, as the settings problems are (the recipient list shows it).
            said = settings_problem(state.sender, exc) if exc.kind in ("refused", "timeout", "protocol") \
                else f"{exc.kind}: {exc}"
            outcome = self._retry.outcome(item, Reply(ReplyKind.RETRY, exc.code, said))
            if stop.outcome is None:
                stop.outcome, stop.reason = ReplyKind.RETRY, said
                stop.not_before = outcome.next_attempt_at or 0.0
            return outcome
        # The limits are met holding a connection, so that their places go to the lowest rows (pacing.py).
        if state.limiter.limited and not await state.pace.slot(batch, item.position, stop):
            state.release(conn)
            return RecipientResult(item.position, "released", None)
        if state.paused_until > time.time():  # paused by another batch while this one waited for a connection
            state.release(conn)
            if stop.outcome is None:
                stop.outcome, stop.reason, stop.not_before = ReplyKind.PAUSE_SENDER, "sender paused", state.paused_until
            return RecipientResult(item.position, "released", None)
        state.limiter.begin()
        sent = False
        try:
            outcome = await self._transmit(state, compiled, conn, item, stop)
            sent = outcome.status == "sent"
        finally:
            state.limiter.end(sent=sent)
        return outcome

    async def _transmit(self, state: SenderState, compiled: CompiledCampaign, conn: SmtpConnection, item: Claimed,
                        stop: Stop) -> RecipientResult:
        """Render and send `item` on `conn`, then hand the connection back; the outcome."""
        try:
            message = await self._render(compiled, item)
        except Exception as exc:  # a template that fails for this row's data, e.g. {{ 1 / count }}
            state.release(conn)
            return RecipientResult(item.position, "failed", f"ошибка шаблона: {failure_in_russian(exc)}"
                                   f" / template error: {failure_in_english(exc)}"[:1000])
        try:
            reply = await conn.send(state.sender.from_email, item.email, message,
                                    deadline=time.monotonic() + self._phase)
        except Exception as exc:  # a library bug or an encoding problem: this recipient's outcome, not the batch's
            state.discard(conn)
            log.exception("sending one message failed", extra={"position": item.position})
            reason = f"непредвиденная ошибка / unexpected error: {exc}"[:500]
            return self._retry.outcome(item, Reply(ReplyKind.RETRY, None, reason))
        state.release(conn)
        if reply.held:  # paused by another send while this one waited its turn on the connection
            if stop.outcome is None:
                stop.outcome, stop.reason, stop.not_before = ReplyKind.PAUSE_SENDER, "sender paused", state.paused_until
            return RecipientResult(item.position, "released", None)
        if reply.too_slow:
            return self._slow.too_slow(state, item, stop, reply.waited)
        if reply.waited > self._phase:  # slow at the end of DATA: nothing may be cut there, but the account backs off
            self._slow.strike(state, stop, reply.waited)
        stop.in_time = stop.in_time or (reply.code is not None and not stop.slow)
        if reply.kind is ReplyKind.SENT:
            return RecipientResult(item.position, "sent", reply.describe())
        if reply.kind is ReplyKind.FAILED:
            return RecipientResult(item.position, "failed", reply.describe())
        if reply.kind is ReplyKind.PAUSE_CAMPAIGN:
            stop.outcome, stop.reason = ReplyKind.PAUSE_CAMPAIGN, refusal_problem(state.sender, reply)
            return RecipientResult(item.position, "released", reply.describe())
        if reply.kind is ReplyKind.PAUSE_SENDER:
            if stop.outcome is None:
                stop.outcome, stop.reason = ReplyKind.PAUSE_SENDER, reply.describe()
                stop.not_before = time.time() + self._retry.sender_pause_seconds
            # At once for every batch of this account in this worker (they run concurrently).
            state.paused_until = max(state.paused_until, stop.not_before or time.time())
            return RecipientResult(item.position, "released", reply.describe())
        return self._retry.outcome(item, reply)
