"""The fan-out: turns a campaign command into delivery batches over its recipient positions."""

from __future__ import annotations

import asyncpg

from shared import campaigns
from shared.work import CampaignCommand, DeliveryBatch, batch_ranges


async def plan(db: asyncpg.Pool, command: CampaignCommand, batch_size: int) -> list[DeliveryBatch]:
    """Mark the campaign sending and return batches covering all of its recipients.

    Re-planning a campaign (a redelivered command, a resume) is harmless: senders skip recipients
    already in a final state.
    """
    async with db.acquire() as conn:
        if not await campaigns.mark_sending(conn, command.campaign_id):
            return []
        campaign = await campaigns.load_for_sending(conn, command.campaign_id)
        if campaign is None:
            return []
        if campaign.recipient_count == 0:
            await campaigns.finish_if_done(conn, command.campaign_id)
            return []
    return [
        DeliveryBatch(campaign.id, campaign.sender_id, first, last)
        for first, last in batch_ranges(1, campaign.recipient_count, batch_size)
    ]
