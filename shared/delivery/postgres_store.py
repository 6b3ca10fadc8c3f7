"""The delivery store on Postgres: each call takes a pooled connection and uses the domain's queries."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import replace

import asyncpg

from shared import deferrals, recipients, smtp_accounts, suppressions
from shared.campaigns import states
from shared.campaigns.states import CampaignForSending
from shared.commands import DeliveryBatch
from shared.db import TRANSIENT_DB_ERRORS
from shared.delivery import slowness
from shared.recipients import Claimed, RecipientResult
from shared.smtp_accounts import Sender


class PostgresDeliveryStore:
    transient_errors: tuple[type[BaseException], ...] = TRANSIENT_DB_ERRORS

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def campaign(self, campaign_id: uuid.UUID) -> CampaignForSending | None:
        async with self._pool.acquire() as conn:
            return await states.load_for_sending(conn, campaign_id)

    async def campaign_status(self, campaign_id: uuid.UUID) -> str | None:
        async with self._pool.acquire() as conn:
            return await states.status_of(conn, campaign_id)

    async def sender(self, sender_id: int) -> Sender | None:
        async with self._pool.acquire() as conn:
            return await smtp_accounts.load(conn, sender_id)

    async def sender_paused_until(self, sender_id: int) -> float:
        async with self._pool.acquire() as conn:
            return await smtp_accounts.paused_until(conn, sender_id)

    async def recent_sends(self, sender_id: int) -> list[float]:
        async with self._pool.acquire() as conn:
            return await smtp_accounts.recent_sends(conn, sender_id)

    async def due_positions(self, campaign_id: uuid.UUID, first: int, last: int, lease: float) -> list[int]:
        async with self._pool.acquire() as conn:
            return await recipients.due_positions(conn, campaign_id, first, last, lease)

    async def claim(self, campaign_id: uuid.UUID, user_id: int, positions: Sequence[int],
                    lease: float) -> list[Claimed] | None:
        async with self._pool.acquire() as conn:  # one connection for both statements
            claimed = await recipients.claim(conn, campaign_id, positions, lease)
            if not claimed:
                return claimed
            # The list is read again right before sending: someone who unsubscribed (or bounced)
            # after the recipients were loaded — days ago, for a long campaign — is not mailed.
            keys = [suppressions.fast_key(item.email) for item in claimed]
            found = await suppressions.among(conn, user_id, keys)
        if not found:
            return claimed
        return [replace(item, suppressed=key in found) for item, key in zip(claimed, keys, strict=True)]

    async def record(self, campaign_id: uuid.UUID, results: Sequence[RecipientResult]) -> None:
        async with self._pool.acquire() as conn:
            await recipients.record(conn, campaign_id, results)

    async def next_due(self, campaign_id: uuid.UUID, first: int, last: int, lease: float) -> float | None:
        async with self._pool.acquire() as conn:
            return await recipients.next_due(conn, campaign_id, first, last, lease)

    async def heartbeat(self, campaign_id: uuid.UUID) -> None:
        async with self._pool.acquire() as conn:
            await states.heartbeat(conn, campaign_id)

    async def skip_open(self, campaign_id: uuid.UUID, reason: str) -> None:
        async with self._pool.acquire() as conn:
            await recipients.skip_open(conn, campaign_id, reason)

    async def pause_campaign(self, campaign_id: uuid.UUID, reason: str) -> None:
        async with self._pool.acquire() as conn:
            await states.pause(conn, campaign_id, reason)

    async def pause_sender(self, sender_id: int, until: float, reason: str) -> None:
        async with self._pool.acquire() as conn:
            await smtp_accounts.pause(conn, sender_id, until, reason)

    async def note_slow_server(self, campaign_id: uuid.UUID, reason: str | None) -> None:
        async with self._pool.acquire() as conn:
            if reason is None:
                await conn.execute("UPDATE campaigns SET status_reason = NULL WHERE id = $1"
                                   " AND strpos(status_reason, $2) > 0", campaign_id, slowness.MARK)
                return
            # Only over no reason or one of its own kind: a paused or otherwise explained campaign keeps its own.
            await conn.execute(
                "UPDATE campaigns SET status_reason = $2 WHERE id = $1 AND status IN ('queued', 'sending')"
                " AND (status_reason IS NULL OR strpos(status_reason, $3) > 0) AND status_reason IS DISTINCT FROM $2",
                campaign_id, reason.replace("\x00", "")[:2000], slowness.MARK)

    async def finish_if_done(self, campaign_id: uuid.UUID) -> bool:
        async with self._pool.acquire() as conn:
            return await states.finish_if_done(conn, campaign_id)

    async def defer(self, batch: DeliveryBatch, not_before: float, reason: str) -> None:
        async with self._pool.acquire() as conn:
            await deferrals.defer(conn, batch, not_before, reason)
