"""One account's connections inside a sender worker (shared/delivery/connections.py)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from shared.delivery.connections import AccountPaused, SenderState
from shared.limits import SendLimiter


class SilentServerConnection:
    """A connection whose log-in never finishes, as to a server that accepts and never greets."""

    opened = 0

    def __init__(self, account: Any, policy: Any) -> None:
        self.pipelined, self.is_open, self.users, self.sent = False, False, 0, 0
        self.may_send = None

    async def open(self, deadline: float | None) -> None:
        SilentServerConnection.opened += 1
        await asyncio.sleep(3600)


class Sender:
    recipients_per_connection = None

    async def open_account(self, keys: Any) -> Any:
        return object()


async def test_a_send_that_waited_while_the_account_was_paused_opens_no_new_connection() -> None:
    # The walk of a silent server: the first log-ins time out and pause the account, and the sends
    # that waited for those connections opened the next wave of log-ins, 5 → 10 → 15 held at it.
    SilentServerConnection.opened = 0
    state = SenderState(sender=Sender(), keys=None, policy=None,  # type: ignore[arg-type]
                        connect=SilentServerConnection, size=1, limiter=SendLimiter([]))  # type: ignore[arg-type]
    first = asyncio.create_task(state.acquire())
    await asyncio.sleep(0.05)
    waiting = asyncio.create_task(state.acquire(wait=5))
    await asyncio.sleep(0.05)
    state.paused_until = time.time() + 60  # the first send's log-in timed out elsewhere
    first.cancel()
    with pytest.raises(AccountPaused):
        await asyncio.wait_for(waiting, 2)  # without the check: a log-in that never ends
    assert SilentServerConnection.opened == 1


class InstantConnection:
    """A connection that logs in at once and stays open."""

    def __init__(self, account: Any, policy: Any) -> None:
        self.pipelined, self.is_open, self.users, self.sent = False, False, 0, 0
        self.may_send = None

    async def open(self, deadline: float | None) -> None:
        self.is_open = True

    def close(self) -> None:
        self.is_open = False


async def test_a_woken_lower_row_gets_the_freed_connection_before_a_running_lane_takes_it_back() -> None:
    # The CI failure of test_sending_order: a batch that reached the worker a moment after the next
    # one found that one's lanes holding the connections. A lane that frees its connection asks for
    # one again at once, before the lower row it woke has run, and took it back every time: the
    # lower batch waited for the whole later batch (rows 451-467 went before 401).
    state = SenderState(sender=Sender(), keys=None, policy=None,  # type: ignore[arg-type]
                        connect=InstantConnection, size=1, limiter=SendLimiter([]))  # type: ignore[arg-type]
    campaign = 7
    order: list[int] = []

    async def send(row: int) -> None:
        conn = await state.acquire(turn=(campaign, row))
        order.append(row)
        await asyncio.sleep(0.01)  # the send
        state.release(conn)

    async def later_batch_lane() -> None:
        for row in range(451, 456):
            await send(row)

    lane = asyncio.create_task(later_batch_lane())
    await asyncio.sleep(0)  # the lane holds the connection for row 451
    lower = asyncio.create_task(send(401))  # and row 401 comes while it sends
    await asyncio.wait_for(asyncio.gather(lane, lower), 5)
    assert order == [451, 401, 452, 453, 454, 455]


async def test_a_send_kept_waiting_by_a_batch_getting_ready_goes_once_the_batch_gives_up_its_place() -> None:
    state = SenderState(sender=Sender(), keys=None, policy=None,  # type: ignore[arg-type]
                        connect=InstantConnection, size=1, limiter=SendLimiter([]))  # type: ignore[arg-type]
    give_up = state.hold((7, 4))  # a batch of rows up to 4 reads Postgres
    later = asyncio.create_task(state.acquire(turn=(7, 5)))
    await asyncio.sleep(0.01)
    assert not later.done()
    own = await asyncio.wait_for(state.acquire(turn=(7, 3)), 1)  # the batch's own rows go
    state.release(own)
    await asyncio.sleep(0.01)
    assert not later.done()  # the freed connection is not row 5's while the batch gets ready
    give_up()
    state.release(await asyncio.wait_for(later, 1))


@pytest.mark.parametrize("seed", range(5))
async def test_sends_that_give_up_or_are_cancelled_never_strand_a_connection(seed: int) -> None:
    # Woken sends keep their place until they run: one woken and then cancelled, or timed out in the
    # same moment, must hand its turn on, or every send behind it would wait for nothing. So must a
    # batch getting ready (a hold) when it gives its place up, however it ends.
    import random

    rng = random.Random(seed)
    state = SenderState(sender=Sender(), keys=None, policy=None,  # type: ignore[arg-type]
                        connect=InstantConnection, size=2, limiter=SendLimiter([]))  # type: ignore[arg-type]
    got: list[int] = []

    async def send(campaign: int, row: int) -> None:
        try:
            conn = await state.acquire(wait=rng.choice([None, 0.001, 0.02]), turn=(campaign, row))
        except TimeoutError:
            return
        got.append(row)
        try:
            await asyncio.sleep(rng.choice([0, 0.001, 0.003]))
        finally:  # as the scheduler does: a send cancelled while out hands its connection back
            state.release(conn)

    async def batch_getting_ready(campaign: int, last: int) -> None:
        give_up = state.hold((campaign, last))
        try:
            await asyncio.sleep(rng.choice([0, 0.002, 0.01]))
        finally:
            give_up()
            give_up()  # a second time does nothing (the batch's last lane, then its end)

    tasks = [asyncio.create_task(send(rng.randrange(3), row)) for row in rng.sample(range(1, 400), 120)]
    tasks += [asyncio.create_task(batch_getting_ready(rng.randrange(3), rng.randrange(1, 400))) for _ in range(15)]
    for _ in range(30):
        await asyncio.sleep(rng.choice([0, 0.001]))
        rng.choice(tasks).cancel()
    await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 10)
    assert got, "nobody got a connection"
    # Everything handed back: the account's connections are free and nobody is left woken or waiting.
    assert state._in_use == 0 and not state._turns._woken and not state._turns._held
    late = asyncio.create_task(send(0, 1000))
    await asyncio.wait_for(late, 2)
    assert got[-1] == 1000
