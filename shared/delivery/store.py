"""What the scheduler needs from storage, and nothing more.

The scheduler decides; the store remembers. Keeping the interface this narrow lets the
scheduler's decisions (limits, retries, pauses, deferrals) be tested against an in-memory
store, while production and the end-to-end tests use `PostgresDeliveryStore`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Protocol

from shared.campaigns.states import CampaignForSending
from shared.commands import DeliveryBatch
from shared.recipients import Claimed, RecipientResult
from shared.smtp_accounts import Sender


class DeliveryStore(Protocol):
    # Errors that mean "storage is away for a moment": keep outcomes and retry, never drop them.
    transient_errors: tuple[type[BaseException], ...]

    async def campaign(self, campaign_id: uuid.UUID) -> CampaignForSending | None: ...

    async def campaign_status(self, campaign_id: uuid.UUID) -> str | None: ...

    async def sender(self, sender_id: int) -> Sender | None: ...

    async def sender_paused_until(self, sender_id: int) -> float: ...

    async def recent_sends(self, sender_id: int) -> list[float]: ...

    async def due_positions(self, campaign_id: uuid.UUID, first: int, last: int, lease: float) -> list[int]: ...

    async def claim(self, campaign_id: uuid.UUID, user_id: int, positions: Sequence[int],
                    lease: float) -> list[Claimed] | None:
        """Claim the open ones among `positions`, each `suppressed` if the user's suppression list
        has its address now; None once the campaign is no longer open for sending."""
        ...

    async def record(self, campaign_id: uuid.UUID, results: Sequence[RecipientResult]) -> None: ...

    async def next_due(self, campaign_id: uuid.UUID, first: int, last: int, lease: float) -> float | None: ...

    async def heartbeat(self, campaign_id: uuid.UUID) -> None: ...

    async def skip_open(self, campaign_id: uuid.UUID, reason: str) -> None: ...

    async def pause_campaign(self, campaign_id: uuid.UUID, reason: str) -> None: ...

    async def pause_sender(self, sender_id: int, until: float, reason: str) -> None: ...

    async def note_slow_server(self, campaign_id: uuid.UUID, reason: str | None) -> None:
        """Show `reason` on the sending campaign while its server is too slow; with None, take a
        reason of this kind away (never another one)."""
        ...

    async def finish_if_done(self, campaign_id: uuid.UUID) -> bool: ...

    async def defer(self, batch: DeliveryBatch, not_before: float, reason: str) -> None: ...
