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
import logging
import random
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field

import asyncpg

from shared import campaigns, recipients, senders
from shared.campaign_drafts import skip_open
from shared.crypto import KeyProvider
from shared.db import TRANSIENT_DB_ERRORS
from shared.limits import SendLimiter, Window
from shared.mail.compose import CampaignContent, CompiledCampaign
from shared.mail.messenger import ConnectError, ConnectPolicy, Outcome, Reply, SmtpConnection
from shared.unsubscribe import Unsubscriber
from shared.work import DeliveryBatch

log = logging.getLogger("sendpy.delivery")

CLAIM_CHUNK = 100
FLUSH_SECONDS = 0.1
# Waits shorter than this are slept through; longer ones defer the batch and free the partition.
MAX_INLINE_WAIT = 2.0
SENDER_REFRESH_SECONDS = 10.0
# Connection problems that retrying cannot fix: a person has to change the sender's settings.
_SETTINGS_PROBLEMS = {"auth", "tls", "private", "plaintext", "dns"}


@dataclass(frozen=True)
class RetryPolicy:
    base_seconds: float = 30.0
    max_attempts: int = 10
    sender_pause_seconds: float = 3600.0
    max_delay_seconds: float = 3600.0

    def delay(self, attempts: int) -> float:
        """Exponential (×4) with jitter, capped (an hour by default): ten attempts span about six hours."""
        ceiling = min(self.base_seconds * 4.0 ** max(attempts - 1, 0), self.max_delay_seconds)
        return ceiling * (0.5 + random.random() / 2)


@dataclass
class _Stop:
    """Why the rest of a batch must not be sent now."""

    outcome: Outcome | None = None
    reason: str = ""
    not_before: float = 0.0  # epoch seconds, for deferrals


@dataclass
class SenderState:
    """One account as this worker drives it: connections, limits, and when it was last read."""

    sender: senders.Sender
    policy: ConnectPolicy
    size: int
    limiter: SendLimiter
    loaded_at: float = field(default_factory=time.monotonic)
    paused_until: float = 0.0
    _idle: list[SmtpConnection] = field(default_factory=list)

    async def acquire(self) -> SmtpConnection:
        limit = self.sender.recipients_per_connection
        while self._idle:
            conn = self._idle.pop()
            if conn.is_open and (limit is None or conn.sent < limit):
                return conn
            await conn.quit()
        conn = SmtpConnection(self.sender.account, self.policy)
        await conn.open()
        return conn

    def release(self, conn: SmtpConnection) -> None:
        if conn.is_open and len(self._idle) < self.size:
            self._idle.append(conn)
        else:
            conn.close()

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        await asyncio.gather(*(conn.quit() for conn in idle))


class Deliverer:
    def __init__(
        self,
        db: asyncpg.Pool,
        keys: KeyProvider,
        policy: ConnectPolicy,
        *,
        connections_per_sender: int = 5,
        retry: RetryPolicy | None = None,
        unsubscribe_key: bytes | None = None,
        public_base_url: str = "",
        claim_lease_seconds: float = recipients.CLAIM_LEASE_SECONDS,
    ) -> None:
        self._lease = claim_lease_seconds
        self._db = db
        self._keys = keys
        self._policy = policy
        self._connections = connections_per_sender
        self._retry = retry or RetryPolicy()
        self._unsubscribe_key = unsubscribe_key
        self._base_url = public_base_url
        self._compiled: OrderedDict[uuid.UUID, CompiledCampaign] = OrderedDict()
        self._senders: dict[int, SenderState] = {}

    async def close(self) -> None:
        states, self._senders = self._senders, {}
        await asyncio.gather(*(state.close() for state in states.values()))

    def _compiled_campaign(self, campaign: campaigns.CampaignForSending, sender: senders.Sender) -> CompiledCampaign:
        compiled = self._compiled.get(campaign.id)
        if compiled is None:
            content = CampaignContent(
                str(campaign.id), sender.from_email, sender.from_name,
                campaign.subject, campaign.html, campaign.text,
            )
            unsubscriber = (Unsubscriber(self._unsubscribe_key, self._base_url, campaign.id)
                            if self._unsubscribe_key else None)
            compiled = CompiledCampaign(content, unsubscriber=unsubscriber)
            self._compiled[campaign.id] = compiled
            if len(self._compiled) > 64:
                self._compiled.popitem(last=False)
        return compiled

    async def _sender_state(self, sender_id: int) -> SenderState | None:
        """The account, re-read every few seconds so pauses and new limits take effect."""
        state = self._senders.get(sender_id)
        if state is not None and time.monotonic() - state.loaded_at < SENDER_REFRESH_SECONDS:
            return state
        async with self._db.acquire() as conn:
            sender = await senders.load(conn, self._keys, sender_id)
            if sender is None:
                return None
            paused_until = await conn.fetchval(
                "SELECT extract(epoch FROM paused_until) FROM senders WHERE id = $1", sender_id)
            if state is None or state.sender != sender:
                if state is not None:
                    await state.close()
                limiter = SendLimiter([Window(60, sender.per_minute or 0), Window(86400, sender.per_day or 0)])
                if limiter.limited:
                    limiter.seed(await _recent_sends(conn, sender_id))
                state = SenderState(sender, self._policy, self._connections, limiter)
                self._senders[sender_id] = state
        state.loaded_at = time.monotonic()
        state.paused_until = float(paused_until or 0)
        return state

    async def deliver(self, batch: DeliveryBatch) -> None:
        async with self._db.acquire() as conn:
            campaign = await campaigns.load_for_sending(conn, batch.campaign_id)
        if campaign is None or campaign.status not in campaigns.OPEN_FOR_SENDING or campaign.sender_id is None:
            return  # deleted, paused or cancelled: a resume re-plans whatever is still open
        state = await self._sender_state(campaign.sender_id)
        if state is None:
            return
        stop = _Stop()
        if state.paused_until > time.time():
            stop = _Stop(Outcome.PAUSE_SENDER, "sender paused", state.paused_until)
        else:
            await self._send_due(batch, campaign, state, stop)
        await self._after(batch, stop)

    async def _send_due(self, batch: DeliveryBatch, campaign: campaigns.CampaignForSending,
                        state: SenderState, stop: _Stop) -> None:
        """Claim ahead, send on every connection, write outcomes every ~100 ms.

        Outcomes are flushed often, not per chunk, because a crash between the server's "250"
        and the status write is the one window in which a recipient can get a duplicate.
        """
        async with self._db.acquire() as conn:
            positions = await recipients.due_positions(conn, batch.campaign_id, batch.first, batch.last, self._lease)
        if not positions:
            return
        compiled = self._compiled_campaign(campaign, state.sender)
        lanes = min(state.size, len(positions))
        queue: asyncio.Queue[recipients.Claimed | None] = asyncio.Queue(maxsize=CLAIM_CHUNK)
        done: list[recipients.Outcome] = []

        claim_failure: list[Exception] = []

        async def claimer() -> None:
            try:
                for start in range(0, len(positions), CLAIM_CHUNK):
                    if stop.outcome is not None:
                        break
                    async with self._db.acquire() as conn:
                        # Pause and cancel take effect between chunks: within seconds on every worker.
                        if await campaigns.status_of(conn, batch.campaign_id) not in campaigns.OPEN_FOR_SENDING:
                            break
                        claimed = await recipients.claim(conn, batch.campaign_id,
                                                         positions[start : start + CLAIM_CHUNK], self._lease)
                    for item in claimed:
                        await queue.put(item)
            except Exception as exc:
                # Stop handing out work but let the sends in flight finish and be recorded:
                # cancelling them mid-DATA would turn accepted mail into later duplicates.
                claim_failure.append(exc)
                if stop.outcome is None:
                    stop.outcome, stop.reason = Outcome.RETRY, f"claiming failed: {exc}"
            finally:
                for _ in range(lanes):
                    await queue.put(None)

        async def lane() -> None:
            while (item := await queue.get()) is not None:
                if stop.outcome is not None or not await self._slot(state, stop):
                    done.append(recipients.Outcome(item.position, "released", None))
                    continue
                state.limiter.begin()
                outcome = await self._send_one(state, compiled, item, stop)
                state.limiter.end(sent=outcome.status == "sent")
                done.append(outcome)

        async def together() -> None:
            async with asyncio.TaskGroup() as group:  # one failing cancels the others
                group.create_task(claimer())
                for _ in range(lanes):
                    group.create_task(lane())

        sending = asyncio.create_task(together())
        while not sending.done():
            await asyncio.wait([sending], timeout=FLUSH_SECONDS)
            await self._flush(batch.campaign_id, done)
        await sending  # re-raise what failed
        await self._flush(batch.campaign_id, done)
        if claim_failure:
            raise claim_failure[0]  # the consume loop retries the batch (transient) or dead-letters it

    async def _flush(self, campaign_id: uuid.UUID, done: list[recipients.Outcome]) -> None:
        """Write outcomes so far; while Postgres is away, keep them and retry, never drop them."""
        if not done:
            return
        outcomes = done[:]
        delay = 0.2
        while True:
            try:
                async with self._db.acquire() as conn:
                    await recipients.record(conn, campaign_id, outcomes)
                break
            except TRANSIENT_DB_ERRORS:
                log.warning("recording outcomes failed; retrying", exc_info=True,
                            extra={"campaign": str(campaign_id), "outcomes": len(outcomes)})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        del done[: len(outcomes)]

    async def _after(self, batch: DeliveryBatch, stop: _Stop) -> None:
        """Pause what must pause, defer what is left, finish what is done."""
        async with self._db.acquire() as conn:
            # A campaign's updated_at is its heartbeat: the stall sweeper (deferrals.py) reads it.
            await conn.execute("UPDATE campaigns SET updated_at = now() WHERE id = $1", batch.campaign_id)
            if await campaigns.status_of(conn, batch.campaign_id) == "cancelled":
                # Recipients handed back while the cancel landed must not stay pending.
                await skip_open(conn, batch.campaign_id, "cancelled")
                return
            if stop.outcome is Outcome.PAUSE_CAMPAIGN:
                await campaigns.pause(conn, batch.campaign_id, stop.reason)
                log.warning("campaign paused", extra={"campaign": str(batch.campaign_id), "reason": stop.reason})
                return
            if stop.outcome is Outcome.PAUSE_SENDER and stop.reason != "sender paused":
                await conn.execute(
                    "UPDATE senders SET paused_until = to_timestamp($2), pause_reason = $3 WHERE id = $1",
                    batch.sender_id, stop.not_before, stop.reason[:1000],
                )
                self._senders.pop(batch.sender_id, None)
                log.warning("sender paused", extra={"sender": batch.sender_id, "reason": stop.reason})
            if await campaigns.finish_if_done(conn, batch.campaign_id):
                log.info("campaign finished", extra={"campaign": str(batch.campaign_id)})
                return
            if await campaigns.status_of(conn, batch.campaign_id) not in campaigns.OPEN_FOR_SENDING:
                return
            not_before = await recipients.next_due(conn, batch.campaign_id, batch.first, batch.last, self._lease)
            if not_before is None:
                return
            if stop.not_before:
                not_before = max(not_before, stop.not_before)
            await conn.execute(
                "INSERT INTO deferred_batches (campaign_id, sender_id, first_position, last_position, spread,"
                " not_before, reason) VALUES ($1, $2, $3, $4, $5, to_timestamp($6), $7)",
                batch.campaign_id, batch.sender_id, batch.first, batch.last, batch.spread, not_before,
                (stop.reason or "retry")[:200],
            )

    async def _slot(self, state: SenderState, stop: _Stop) -> bool:
        """Wait for the account's limits briefly; for longer, defer the rest of the batch."""
        while True:
            wait = state.limiter.wait_time()
            if wait <= 0:
                return True
            if wait > MAX_INLINE_WAIT:
                if stop.outcome is None:
                    stop.outcome, stop.reason, stop.not_before = Outcome.RETRY, "rate limit", time.time() + wait
                return False
            await asyncio.sleep(wait)
            if stop.outcome is not None:
                return False

    def _retry_or_fail(self, item: recipients.Claimed, reply: Reply) -> recipients.Outcome:
        if item.attempts >= self._retry.max_attempts:
            return recipients.Outcome(item.position, "failed",
                                      f"gave up after {item.attempts} attempts: {reply.describe()}")
        return recipients.Outcome(item.position, "retry", reply.describe(),
                                  time.time() + self._retry.delay(item.attempts))

    async def _send_one(
        self, state: SenderState, compiled: CompiledCampaign, item: recipients.Claimed, stop: _Stop
    ) -> recipients.Outcome:
        try:
            conn = await state.acquire()
        except ConnectError as exc:
            if exc.kind in _SETTINGS_PROBLEMS:
                stop.outcome = Outcome.PAUSE_CAMPAIGN
                code = f"{exc.code} " if exc.code else ""
                stop.reason = f"{state.sender.account.host} refused ({exc.kind}): {code}{exc}"
                return recipients.Outcome(item.position, "released", None)
            # The server is unreachable: stop hammering it, retry this recipient later.
            outcome = self._retry_or_fail(item, Reply(Outcome.RETRY, exc.code, f"{exc.kind}: {exc}"))
            if stop.outcome is None:
                stop.outcome, stop.reason = Outcome.RETRY, f"{exc.kind}: {exc}"
                stop.not_before = outcome.next_attempt_at or 0.0
            return outcome
        try:
            message = compiled.render(item.position, item.email, item.fields)
        except Exception as exc:  # a template that fails for this row's data, e.g. {{ 1 / count }}
            state.release(conn)
            return recipients.Outcome(item.position, "failed", f"template error: {exc}"[:1000])
        reply = await conn.send(state.sender.from_email, item.email, message)
        state.release(conn)
        if reply.outcome is Outcome.SENT:
            return recipients.Outcome(item.position, "sent", reply.describe())
        if reply.outcome is Outcome.FAILED:
            return recipients.Outcome(item.position, "failed", reply.describe())
        if reply.outcome is Outcome.PAUSE_CAMPAIGN:
            stop.outcome, stop.reason = Outcome.PAUSE_CAMPAIGN, reply.describe()
            return recipients.Outcome(item.position, "released", reply.describe())
        if reply.outcome is Outcome.PAUSE_SENDER:
            if stop.outcome is None:
                stop.outcome, stop.reason = Outcome.PAUSE_SENDER, reply.describe()
                stop.not_before = time.time() + self._retry.sender_pause_seconds
            return recipients.Outcome(item.position, "released", reply.describe())
        return self._retry_or_fail(item, reply)


async def _recent_sends(conn: asyncpg.pool.PoolConnectionProxy, sender_id: int) -> list[float]:
    rows = await conn.fetch(
        "SELECT extract(epoch FROM r.updated_at) AS at FROM recipients r JOIN campaigns c ON c.id = r.campaign_id"
        " WHERE c.sender_id = $1 AND r.status = 'sent' AND r.updated_at > now() - interval '24 hours'",
        sender_id,
    )
    return [float(r["at"]) for r in rows]
