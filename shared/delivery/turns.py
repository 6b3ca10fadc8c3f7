"""Whose turn it is at one account's connections: the earliest row of each campaign, campaigns in turn.

A sender worker runs several batches of one campaign at once, and each batch several lanes. When
they queued for the account's connections in the order they arrived, the batches went side by
side: a 2,000-recipient campaign's first email was row 151 and rows ran up to 487 out of place,
and on a limited account the first day's mail was not the file's first rows. Here each waiting
send is queued by its row (position) in its campaign's queue, and a freed connection goes to the
lowest row waiting. Campaigns of one account take turns, one send each, as the user's window gives
them turns with batches: one campaign's long file does not keep another's from its connections.

A woken send keeps its place until it has run: the send that freed the connection asks for one
again at once, before the woken one runs, and took it back every time — a batch that reached the
worker a moment after the next one waited for that one's whole lane.

A batch getting ready holds its place too: between reaching the worker and its sends asking for
connections lie Postgres round trips (the campaign, the due rows, the claim), and a later batch
that arrived with it and got through them first sent rows 751-763 before row 701 in CI. From the
moment it arrives until every one of its rows has asked, the rows after its last one wait.

Each operation is O(log n) in the sends waiting. A send that stops waiting (its time is up) stays
in its queue, marked done, until it comes to the top.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import deque
from collections.abc import Hashable

# A send's place: its queue (the campaign) and its row there. Sends of one queue go lowest row first.
Turn = tuple[Hashable, int]
ANY: Turn = (None, 0)  # a caller that does not say: first come, first served


class Turns:
    def __init__(self) -> None:
        self._queues: dict[Hashable, list[tuple[int, int, asyncio.Future[None]]]] = {}
        # The queues with sends waiting, each once: the next one woken is taken from the left.
        self._rotation: deque[Hashable] = deque()
        self._order = itertools.count()  # first come, first served among equal rows
        # Places kept outside the heap, per queue; the rows after each of them wait. Sends woken
        # and not yet run (their rows), and batches getting ready (their last rows).
        self._woken: dict[Hashable, dict[object, int]] = {}
        self._held: dict[Hashable, dict[object, int]] = {}

    def ahead(self, turn: Turn) -> bool:
        """Whether a send of the same queue with a lower row is waiting (or woken and about to run,
        or a batch with lower rows is getting ready)."""
        queue, position = turn
        for kept in (self._woken.get(queue), self._held.get(queue)):
            if kept and min(kept.values()) < position:
                return True
        heap = self._queues.get(queue)
        if not heap:
            return False
        while heap and heap[0][2].done():  # gave up waiting, or woken
            heapq.heappop(heap)
        return bool(heap) and heap[0][0] < position

    async def wait(self, turn: Turn, seconds: float | None) -> None:
        """Until woken (the caller then looks again), or TimeoutError after `seconds`."""
        queue, position = turn
        waiter = asyncio.get_running_loop().create_future()
        heap = self._queues.get(queue)
        if heap is None:
            heap = self._queues[queue] = []
            self._rotation.append(queue)
        heapq.heappush(heap, (position, next(self._order), waiter))
        try:
            async with asyncio.timeout(None if seconds is None else max(seconds, 0.0)):
                await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                _forget(self._woken, queue, waiter)
                self.wake()  # woken but leaving: the next waiter gets the chance
            else:
                waiter.cancel()  # left in its queue, skipped when it comes to the top
            raise
        _forget(self._woken, queue, waiter)  # the caller looks again now, before anyone else can

    def hold(self, turn: Turn) -> object:
        """Rows of `turn`'s queue after its row wait until `unhold(queue, key)` with the key returned."""
        key = object()
        self._held.setdefault(turn[0], {})[key] = turn[1]
        return key

    def unhold(self, queue: Hashable, key: object) -> bool:
        """Whether the place was still held (and is given up now)."""
        return _forget(self._held, queue, key)

    def wake(self) -> None:
        """Wake the lowest row waiting in the next queue in turn whose row may go: one behind a
        batch getting ready would only wait again (it is woken when the batch gives up its place)."""
        for _ in range(len(self._rotation)):
            queue = self._rotation.popleft()
            heap = self._queues[queue]
            while heap and heap[0][2].done():
                heapq.heappop(heap)
            if not heap:
                del self._queues[queue]
                continue
            self._rotation.append(queue)  # an empty one is dropped when its turn comes again
            held = self._held.get(queue)
            if held and min(held.values()) < heap[0][0]:
                continue
            position, _, waiter = heapq.heappop(heap)
            waiter.set_result(None)
            self._woken.setdefault(queue, {})[waiter] = position
            return


def _forget(places: dict[Hashable, dict[object, int]], queue: Hashable, key: object) -> bool:
    kept = places.get(queue)
    if kept is None or kept.pop(key, None) is None:
        return False
    if not kept:
        del places[queue]
    return True
