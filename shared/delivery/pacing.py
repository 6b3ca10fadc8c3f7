"""An account's limits, met in the order of the file.

A send waits for the limiter only once it has one of the account's connections, and connections
go to the lowest rows waiting (turns.py): so the limit's next places go to the file's next rows,
and the in-flight sends are the only ones out of order — on day 1 of a 500-a-day account, the
file's first 500 rows. A short wait is slept through; a longer one defers the batch (see
scheduler.py). Then the rows after it must not slip past while it is away: a batch of the same
campaign that comes meanwhile, and would find a place a moment later (a limit's places free one by
one), is deferred behind it to the same time, and the two come back in the order of their rows
(deferrals.py publishes due batches in position order).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from shared.commands import DeliveryBatch
from shared.delivery.outcomes import Stop
from shared.limits import SendLimiter
from shared.mail.messenger import ReplyKind

# Waits shorter than this are slept through; longer ones defer the batch and free the partition.
MAX_INLINE_WAIT = 2.0
# A deferred batch that has not come back this long after it was due (its campaign paused, its
# partition moved to another worker) no longer holds back the rows after it.
HOLD_GRACE_SECONDS = 30.0


@dataclass(frozen=True)
class _Held:
    first: int
    last: int
    until: float


class Pace:
    """One account's limits as its sends meet them in this worker."""

    def __init__(self, limiter: SendLimiter) -> None:
        self.limiter = limiter
        self._held: dict[int, _Held] = {}  # per campaign (its id as an int), its earliest batch deferred for a limit

    async def slot(self, batch: DeliveryBatch, position: int, stop: Stop) -> bool:
        """Wait for the limits briefly; False when the batch must be deferred instead (`stop` says why)."""
        if not self.limiter.limited:
            return True
        if self._behind_held(batch, position, stop):
            return False
        while True:
            wait = self.limiter.wait_time()
            if wait <= 0:
                return True
            if wait > MAX_INLINE_WAIT:
                until = time.time() + wait
                if stop.outcome is None:
                    stop.outcome, stop.reason, stop.not_before = ReplyKind.RETRY, "rate limit", until
                self._hold(batch, until)
                return False
            await asyncio.sleep(wait)
            if stop.outcome is not None:
                return False

    def _hold(self, batch: DeliveryBatch, until: float) -> None:
        now = time.time()
        self._held = {cid: held for cid, held in self._held.items() if now <= held.until + HOLD_GRACE_SECONDS}
        held = self._held.get(batch.campaign_id.int)
        if held is None or batch.first < held.first:
            self._held[batch.campaign_id.int] = _Held(batch.first, batch.last, until)

    def _behind_held(self, batch: DeliveryBatch, position: int, stop: Stop) -> bool:
        held = self._held.get(batch.campaign_id.int)
        if held is None or position < held.first:
            return False
        now = time.time()
        if position <= held.last or now > held.until + HOLD_GRACE_SECONDS:
            del self._held[batch.campaign_id.int]  # its rows are back (or will not be, here)
            return False
        if stop.outcome is None:  # a second later at least: no loop through Kafka while it is due
            stop.outcome, stop.reason, stop.not_before = ReplyKind.RETRY, "rate limit", max(held.until, now + 1.0)
        return True
