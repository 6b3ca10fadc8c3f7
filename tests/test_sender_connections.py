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
