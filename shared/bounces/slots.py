"""The bounce worker's look slots, shared between accounts.

A look at a mailbox may take as long as its server likes within LOOK_SECONDS (5 minutes): one
account with 50 senders on a slow server took every slot of every worker, and everyone else's
bounces waited behind them. Capping each account at half the slots was not enough: two such
accounts held all four, and a third account's bounce waited 185 s (issue 11). So:

- an account's share is the slots divided by the accounts that hold or want one, at most half of
  them, at least 1;
- the last free slot (RESERVE) goes only to an account that holds none: a look under way cannot
  be taken back, so a newcomer must find a slot free rather than wait for a slow one to end;
- among those allowed, the account served least lately goes first (one never served before
  all), then whoever has waited longest: when four accounts' slow looks end together, a fifth
  account's look does not wait behind their second senders, queued since before it came.

Looks come from the poller and from IDLE sessions alike, and wait in the same line: the poller
claimed only senders whose look could start at once, while the IDLE sessions' looks waited here
and took each freed slot first, so the poller never found one free (18 polled senders were not
read for 8.5 minutes; a new account's first look came after 225 s). Now the poller's claimed
senders wait in line too, at most `total` of them (a claim lasts 10 minutes: QUEUE_SECONDS in line
at most, then it is given up), plus one sender of each account that has no look here at all.
An account whose last look held its slot longer than SLOW_LOOK_SECONDS is "slow" until one of its
looks ends sooner: it never gets the reserved slot, even holding none. Served least lately first
was not enough: a victim just served waited behind every slow account's turn, each holding a slot
up to the 30-s waiting budget — 10–70 s with eleven slow accounts, and more with each one an
attacker signs up. Now the reserved slot is always left for a quick account, however many slow
ones wait.
Pure asyncio: the caller says which account a look is for.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

# How long a polled look waits in line at most: its claim (reader.CLAIM_SECONDS, 600) must
# outlast the wait and the look (reader.LOOK_SECONDS, 300), or another worker could take the
# mailbox meanwhile.
QUEUE_SECONDS = 240.0
RESERVE = 1  # slots kept for accounts that hold none (when there are at least two slots)
REMEMBERED = 4096  # accounts whose last turn is remembered; one forgotten counts as served long ago
# A healthy server's look (log in, open INBOX, search, fetch a batch) takes well under a second;
# a look longer than this marks its account slow (see above).
SLOW_LOOK_SECONDS = 5.0


class FairSlots:
    def __init__(self, total: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.total = max(1, total)
        self._clock = clock
        self._slow: set[int] = set()  # accounts whose last look held its slot past SLOW_LOOK_SECONDS
        self.reserve = RESERVE if self.total > 1 else 0
        self._running: Counter[int] = Counter()
        self._waiting: list[tuple[int, asyncio.Future[None], bool]] = []  # oldest first; polled?
        self._served: dict[int, int] = {}  # account → the number of its latest grant
        self._grants = 0

    def free(self) -> int:
        """Slots nobody holds."""
        return max(0, self.total - sum(self._running.values()))

    def load(self) -> dict[int, int]:
        """Looks per account, held or waited for."""
        counts = Counter(self._running)
        counts.update(user for user, _, _ in self._waiting)
        return {user: n for user, n in counts.items() if n}

    def share(self) -> int:
        """How many slots one account may hold now: the slots among the accounts that want one,
        and never more than half (the next account to come must find room)."""
        return max(1, min(self.total // 2, self.total // max(1, len(self.load()))))

    def may_start(self, user_id: int) -> bool:
        held = self._running[user_id]
        if not self.free():
            return False
        return (held == 0 and user_id not in self._slow) or (held < self.share() and self.free() > self.reserve)

    def slow(self) -> set[int]:
        """Accounts whose last look was slow."""
        return set(self._slow)

    def for_poller(self) -> tuple[int, int, dict[int, int]]:
        """(how many senders to claim, per account, looks per account) for `due_senders`: room in
        line for `total` polled looks, each account's share of them."""
        polled = sum(1 for w in self._waiting if w[2])
        return max(0, self.total - polled), self.share(), self.load()

    def newcomer_room(self) -> int:
        """How many more accounts with no look here may have one claimed when the line is full:
        a new account waits for no one's turn to be claimed (it goes first for a slot)."""
        return max(0, 2 * self.total - sum(1 for w in self._waiting if w[2]))

    @asynccontextmanager
    async def take(self, user_id: int, *, polled: bool = False, wait: float | None = None) -> AsyncIterator[None]:
        """Hold a slot for one of `user_id`'s looks while the block runs; TimeoutError when none
        was granted within `wait` seconds."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((user_id, waiter, polled))
        self._grant()
        try:
            await asyncio.wait_for(asyncio.shield(waiter), wait)
        except (asyncio.CancelledError, TimeoutError):
            if waiter.done() and not waiter.cancelled():  # granted just as it was cancelled
                self._release(user_id)
            else:
                waiter.cancel()
                self._waiting = [w for w in self._waiting if w[1] is not waiter]
                self._grant()
            raise
        began = self._clock()
        try:
            yield
        finally:
            if self._clock() - began > SLOW_LOOK_SECONDS:
                self._slow.add(user_id)
            else:
                self._slow.discard(user_id)
            self._release(user_id)

    def _release(self, user_id: int) -> None:
        self._running[user_id] -= 1
        if self._running[user_id] <= 0:
            del self._running[user_id]
        self._grant()

    def _grant(self) -> None:
        self._waiting = [w for w in self._waiting if not w[1].done()]  # cancelled, not yet out
        while True:
            allowed = [w for w in self._waiting if self.may_start(w[0])]
            if not allowed:
                return
            chosen = min(allowed, key=lambda w: self._served.get(w[0], 0))  # the first of equals: waited longest
            self._waiting.remove(chosen)
            self._running[chosen[0]] += 1
            self._grants += 1
            self._served[chosen[0]] = self._grants
            if len(self._served) > REMEMBERED:
                self._served = dict(sorted(self._served.items(), key=lambda kv: kv[1])[-REMEMBERED // 2:])
            chosen[1].set_result(None)
