"""The bounce worker's look slots, shared between accounts.

A look at a mailbox may take as long as its server likes within LOOK_SECONDS (5 minutes): one
account with 50 senders on a slow server took every slot of every worker, and everyone else's
bounces waited behind them. Here an account holds at most `per_user` of the worker's slots at
once, whether its looks come from the poller or from IDLE sessions (which ask for a slot like
anyone else), and a freed slot goes to whoever has waited longest among the accounts below that
share. Pure asyncio: the caller says which account a look is for.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class FairSlots:
    def __init__(self, total: int, per_user: int | None = None) -> None:
        self.total = max(1, total)
        # Half the slots by default: the other half is always there for other accounts.
        self.per_user = max(1, per_user if per_user is not None else self.total // 2)
        self._running: Counter[int] = Counter()
        self._waiting: list[tuple[int, asyncio.Future[None]]] = []  # oldest first

    def free(self) -> int:
        """Slots nobody holds or waits for."""
        return max(0, self.total - sum(self._running.values()) - len(self._waiting))

    def load(self) -> dict[int, int]:
        """Looks per account, held or waited for."""
        counts = Counter(self._running)
        counts.update(user for user, _ in self._waiting)
        return {user: n for user, n in counts.items() if n}

    @asynccontextmanager
    async def take(self, user_id: int) -> AsyncIterator[None]:
        """Hold a slot for one of `user_id`'s looks while the block runs."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((user_id, waiter))
        self._grant()
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # granted just as it was cancelled
                self._release(user_id)
            else:
                self._waiting = [w for w in self._waiting if w[1] is not waiter]
                self._grant()
            raise
        try:
            yield
        finally:
            self._release(user_id)

    def _release(self, user_id: int) -> None:
        self._running[user_id] -= 1
        if self._running[user_id] <= 0:
            del self._running[user_id]
        self._grant()

    def _grant(self) -> None:
        self._waiting = [w for w in self._waiting if not w[1].done()]  # cancelled, not yet out
        while sum(self._running.values()) < self.total:
            chosen = next((w for w in self._waiting if self._running[w[0]] < self.per_user), None)
            if chosen is None:
                return
            self._waiting.remove(chosen)
            self._running[chosen[0]] += 1
            chosen[1].set_result(None)
