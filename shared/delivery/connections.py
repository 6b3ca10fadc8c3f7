"""One account's SMTP connections inside a sender worker: pooled, capped, opened with the sealed password."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from shared.crypto import DecryptionError, KeyProvider
from shared.limits import SendLimiter
from shared.mail.messenger import ConnectError, ConnectPolicy, SmtpAccount, SmtpConnection
from shared.smtp_accounts import Sender

Connect = Callable[[SmtpAccount, ConnectPolicy], SmtpConnection]


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
    # At most `size` connections to the account at once, however many of its batches this worker
    # works on concurrently (providers limit simultaneous connections per mailbox).
    _slots: asyncio.Semaphore | None = None

    async def acquire(self, wait: float | None = None, open_within: float | None = None) -> SmtpConnection:
        """One of the account's connections: TimeoutError when none is free within `wait` seconds;
        a new one must be logged in within `open_within` seconds, else ConnectError("slow")."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.size)
        await asyncio.wait_for(self._slots.acquire(), wait)
        try:
            return await self._connection(None if open_within is None else time.monotonic() + open_within)
        except BaseException:
            self._slots.release()
            raise

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
        await conn.open(deadline)
        return conn

    def release(self, conn: SmtpConnection) -> None:
        if conn.is_open and len(self._idle) < self.size:
            self._idle.append(conn)
        else:
            conn.close()
        if self._slots is not None:
            self._slots.release()

    def discard(self, conn: SmtpConnection) -> None:
        conn.close()
        if self._slots is not None:
            self._slots.release()

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        await asyncio.gather(*(conn.quit() for conn in idle))
