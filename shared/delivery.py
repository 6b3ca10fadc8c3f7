"""The scheduler of the sender workers: decides which recipient goes out through which connection.

For one delivery batch it reads the open recipients, claims them in chunks, renders each message
from the campaign compiled once, sends through the sender's pooled connections, and records
outcomes in bulk. The caller commits the batch's Kafka offset only after `deliver` returns, so
every outcome is in Postgres first.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass

import asyncpg

from shared import campaigns, recipients, senders
from shared.campaign_drafts import skip_open
from shared.crypto import KeyProvider
from shared.mail.compose import CampaignContent, CompiledCampaign
from shared.mail.messenger import ConnectError, ConnectPolicy, Outcome, Reply, SmtpConnection
from shared.unsubscribe import Unsubscriber
from shared.work import DeliveryBatch

log = logging.getLogger("sendpy.delivery")

CLAIM_CHUNK = 100
MAX_ATTEMPTS = 5
# Connection problems that retrying cannot fix: a person has to change the sender's settings.
_SETTINGS_PROBLEMS = {"auth", "tls", "private", "plaintext", "dns"}


@dataclass
class _Stop:
    """Set when a reply means the rest of the batch must not be sent now."""

    outcome: Outcome | None = None
    reason: str = ""


class SenderPool:
    """Reusable logged-in connections to one SMTP account."""

    def __init__(self, sender: senders.Sender, policy: ConnectPolicy, size: int) -> None:
        self.sender = sender
        self.policy = policy
        self.size = size
        self._idle: list[SmtpConnection] = []

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
        retry_base_delay: float = 1.0,
        unsubscribe_key: bytes | None = None,
        public_base_url: str = "",
    ) -> None:
        self._unsubscribe_key = unsubscribe_key
        self._base_url = public_base_url
        self._db = db
        self._keys = keys
        self._policy = policy
        self._connections = connections_per_sender
        self._retry_base = retry_base_delay
        self._compiled: OrderedDict[uuid.UUID, CompiledCampaign] = OrderedDict()
        self._pools: dict[int, SenderPool] = {}

    async def close(self) -> None:
        pools, self._pools = self._pools, {}
        await asyncio.gather(*(pool.close() for pool in pools.values()))

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

    async def _pool_for(self, sender_id: int) -> SenderPool | None:
        pool = self._pools.get(sender_id)
        if pool is None:
            async with self._db.acquire() as conn:
                sender = await senders.load(conn, self._keys, sender_id)
            if sender is None:
                return None
            pool = SenderPool(sender, self._policy, self._connections)
            self._pools[sender_id] = pool
        return pool

    async def deliver(self, batch: DeliveryBatch) -> None:
        async with self._db.acquire() as conn:
            campaign = await campaigns.load_for_sending(conn, batch.campaign_id)
            if campaign is None or campaign.status not in campaigns.OPEN_FOR_SENDING:
                # Deleted, paused or cancelled: open recipients stay open for a resume.
                return
            positions = await recipients.open_positions(conn, batch.campaign_id, batch.first, batch.last)
        if campaign.sender_id is None:
            return
        pool = await self._pool_for(campaign.sender_id)
        if pool is None:
            return
        compiled = self._compiled_campaign(campaign, pool.sender)
        stop = _Stop()
        for start in range(0, len(positions), CLAIM_CHUNK):
            chunk = positions[start : start + CLAIM_CHUNK]
            async with self._db.acquire() as conn:
                # Pause and cancel take effect between chunks: within seconds on every worker.
                if await campaigns.status_of(conn, batch.campaign_id) not in campaigns.OPEN_FOR_SENDING:
                    break
                claimed = await recipients.claim(conn, batch.campaign_id, chunk)
            outcomes = await self._send_chunk(pool, compiled, claimed, stop)
            async with self._db.acquire() as conn:
                await recipients.record(conn, batch.campaign_id, outcomes)
            if stop.outcome is not None:
                break
        async with self._db.acquire() as conn:
            if stop.outcome is Outcome.PAUSE_CAMPAIGN:
                await campaigns.pause(conn, batch.campaign_id, stop.reason)
                log.warning("campaign paused", extra={"campaign": str(batch.campaign_id), "reason": stop.reason})
            elif await campaigns.finish_if_done(conn, batch.campaign_id):
                log.info("campaign finished", extra={"campaign": str(batch.campaign_id)})
            elif await campaigns.status_of(conn, batch.campaign_id) == "cancelled":
                # Recipients handed back while the cancel landed must not stay pending.
                await skip_open(conn, batch.campaign_id, "cancelled")

    async def _send_chunk(
        self,
        pool: SenderPool,
        compiled: CompiledCampaign,
        claimed: list[recipients.Claimed],
        stop: _Stop,
    ) -> list[recipients.Outcome]:
        queue: asyncio.Queue[recipients.Claimed] = asyncio.Queue()
        for item in claimed:
            queue.put_nowait(item)
        outcomes: list[recipients.Outcome] = []

        async def lane() -> None:
            while not queue.empty():
                item = queue.get_nowait()
                if stop.outcome is not None:
                    outcomes.append(recipients.Outcome(item.position, "released", None))
                    continue
                outcomes.append(await self._send_one(pool, compiled, item, stop))

        await asyncio.gather(*(lane() for _ in range(min(pool.size, max(1, len(claimed))))))
        return outcomes

    async def _send_one(
        self, pool: SenderPool, compiled: CompiledCampaign, item: recipients.Claimed, stop: _Stop
    ) -> recipients.Outcome:
        message = compiled.render(item.position, item.email, item.fields)
        reply = Reply(Outcome.RETRY, None, "not attempted")
        for attempt in range(MAX_ATTEMPTS):
            if stop.outcome is not None:
                return recipients.Outcome(item.position, "released", None)
            if attempt:
                await asyncio.sleep(self._retry_base * 2 ** (attempt - 1) * (0.5 + random.random()))
            try:
                conn = await pool.acquire()
            except ConnectError as exc:
                reply = Reply(Outcome.RETRY, exc.code, f"{exc.kind}: {exc}")
                if exc.kind in _SETTINGS_PROBLEMS:
                    stop.outcome = Outcome.PAUSE_CAMPAIGN
                    stop.reason = f"cannot log in to {pool.sender.account.host}: {exc}"
                    return recipients.Outcome(item.position, "released", None)
                continue
            started = time.monotonic()
            reply = await conn.send(pool.sender.from_email, item.email, message)
            pool.release(conn)
            log.debug("sent", extra={"position": item.position, "outcome": reply.outcome.value,
                                     "ms": round((time.monotonic() - started) * 1000, 1)})
            if reply.outcome is Outcome.SENT:
                return recipients.Outcome(item.position, "sent", reply.describe())
            if reply.outcome is Outcome.FAILED:
                return recipients.Outcome(item.position, "failed", reply.describe())
            if reply.outcome in (Outcome.PAUSE_CAMPAIGN, Outcome.PAUSE_SENDER):
                stop.outcome = Outcome.PAUSE_CAMPAIGN
                stop.reason = reply.describe()
                return recipients.Outcome(item.position, "released", reply.describe())
        return recipients.Outcome(item.position, "failed", f"gave up after {MAX_ATTEMPTS} attempts: {reply.describe()}")
