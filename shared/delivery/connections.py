"""One account's SMTP connections inside a sender worker: pooled, capped, opened with the sealed password."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from shared.crypto import DecryptionError, KeyProvider
from shared.delivery.pacing import Pace
from shared.delivery.turns import ANY, Turn, Turns
from shared.limits import SendLimiter
from shared.mail.messenger import ConnectError, ConnectPolicy, SmtpAccount, SmtpConnection
from shared.smtp_accounts import Sender

Connect = Callable[[SmtpAccount, ConnectPolicy], SmtpConnection]


class AccountPaused(Exception):
    """The account was paused while a send waited for one of its connections."""


@dataclass
class SenderState:
    """One account as this worker drives it: connections, limits, and when it was last read.

    The password stays sealed here; it is opened for the moment a new connection logs in.
    """

    sender: Sender
    keys: KeyProvider
    policy: ConnectPolicy
    connect: Connect
    size: int
    limiter: SendLimiter
    loaded_at: float = field(default_factory=time.monotonic)
    used_at: float = field(default_factory=time.monotonic)
    paused_until: float = 0.0
    _idle: list[SmtpConnection] = field(default_factory=list)
    # Pipelined connections with one send out that may take a second one (see SmtpConnection.users).
    _shared: list[SmtpConnection] = field(default_factory=list)
    # At most `size` connections to the account in use at once, however many of its batches this
    # worker works on concurrently (providers limit simultaneous connections per mailbox).
    _in_use: int = 0
    # Sends waiting for a connection, lowest row of each campaign first (turns.py): woken when one
    # is freed or can take a second send, so that a waiter does not sit behind a whole connection
    # while half of one is to be had.
    _turns: Turns = field(default_factory=Turns)
    pace: Pace = field(init=False)  # the limiter, met by the sends holding a connection, lowest rows first

    def __post_init__(self) -> None:
        self.pace = Pace(self.limiter)

    async def acquire(self, wait: float | None = None, open_within: float | None = None,
                      turn: Turn = ANY) -> SmtpConnection:
        """One of the account's connections: TimeoutError when none is free within `wait` seconds;
        a new one must be logged in within `open_within` seconds, else ConnectError("slow"). While
        a lower row of `turn`'s campaign waits, this send waits behind it."""
        ends = None if wait is None else time.monotonic() + wait
        while True:
            if not self._turns.ahead(turn):
                conn = self._share()
                if conn is not None:
                    return conn
                if self._in_use < self.size:
                    conn = await self._open(open_within)
                    if not self._turns.ahead(turn):
                        if conn.pipelined:
                            self._shared.append(conn)
                            self._wake()
                        return conn
                    # Earlier rows came while it logged in (the campaign's first batches race to the
                    # first connections): the lowest of them takes it, this send waits its turn.
                    self.release(conn)
            await self._turns.wait(turn, None if ends is None else ends - time.monotonic())

    async def _open(self, within: float | None) -> SmtpConnection:
        if self.paused_until > time.time():
            # Paused while this send waited (a silent server timed out another send's log-in): a
            # new connection would only be the next wave of log-ins left hanging at that server.
            raise AccountPaused
        self._in_use += 1
        try:
            conn = await self._connection(None if within is None else time.monotonic() + within)
        except BaseException:
            self._free()
            raise
        conn.users = 1
        return conn

    def _share(self) -> SmtpConnection | None:
        limit = self.sender.recipients_per_connection
        while self._shared:
            conn = self._shared.pop()
            if conn.is_open and (limit is None or conn.sent + conn.users < limit):
                self.used_at = time.monotonic()
                conn.users += 1
                return conn
        return None

    def _wake(self) -> None:
        self._turns.wake()

    def hold(self, turn: Turn) -> Callable[[], None]:
        """Sends of `turn`'s campaign after its row wait until the function returned is called
        (a batch getting ready keeps its place, turns.py); calling it again does nothing."""
        queue = turn[0]
        key = self._turns.hold(turn)

        def give_up() -> None:
            if self._turns.unhold(queue, key):
                # Sends behind it may have been woken for a free connection and gone back to wait.
                for _ in range(self.size - self._in_use + len(self._shared)):
                    self._wake()
        return give_up

    def _free(self) -> None:
        self._in_use -= 1
        self._wake()

    async def _connection(self, deadline: float | None) -> SmtpConnection:
        self.used_at = time.monotonic()
        limit = self.sender.recipients_per_connection
        while self._idle:
            conn = self._idle.pop()
            if conn.is_open and (limit is None or conn.sent < limit):
                return conn
            await conn.quit()
        try:
            account = await self.sender.open_account(self.keys)
        except DecryptionError as exc:  # KMS throttled or unreachable: a moment's trouble, not the account's
            raise ConnectError("keys", f"the SMTP password could not be opened: {exc}") from None
        conn = self.connect(account, self.policy)
        conn.may_send = self.may_send
        await conn.open(deadline)
        return conn

    def may_send(self) -> bool:
        return self.paused_until <= time.time()

    def release(self, conn: SmtpConnection) -> None:
        conn.users -= 1
        if conn.users > 0:  # the other send is still out: the connection may take the next one
            if conn.is_open and conn not in self._shared:
                self._shared.append(conn)
                self._wake()
            return
        if conn in self._shared:
            self._shared.remove(conn)
        if conn.is_open and len(self._idle) < self.size:
            self._idle.append(conn)
        else:
            conn.close()
        self._free()

    def discard(self, conn: SmtpConnection) -> None:
        conn.close()  # a send still out on it ends as the connection's loss does (unconfirmed or retried)
        conn.users -= 1
        if conn.users > 0:
            return
        if conn in self._shared:
            self._shared.remove(conn)
        self._free()

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        await asyncio.gather(*(conn.quit() for conn in idle))
