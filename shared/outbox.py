"""The one way commands reach the workers: written in the state change's own transaction, then
relayed to the commands topic.

A handler calls `add` inside the transaction that starts or resumes a campaign and, after the
commit, `relay(..., key=...)` to publish it at once; the fan-out workers call `relay` every few
seconds for anything a handler could not publish (broker down, Lambda timed out). Contact files
do not come this way: they are queued for the file readers in Postgres (file_jobs.py). A command
may be published twice (published, then the delete's commit lost): every command is idempotent,
so that is harmless, while losing one would leave a campaign `queued`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

import asyncpg

from shared.db import Conn


class Command(Protocol):
    @property
    def key(self) -> bytes: ...

    def encode(self) -> bytes: ...


SendRecords = Callable[[list[tuple[bytes, bytes]]], Awaitable[None]]
"""Publish (key, value) records to the commands topic; returns once the broker acknowledged all."""


async def add(conn: Conn, command: Command) -> None:
    """Queue `command`; call inside the transaction of the change it belongs to."""
    await conn.execute("INSERT INTO outbox (key, value) VALUES ($1, $2)", command.key, command.encode())


async def relay(db: asyncpg.Pool, send: SendRecords, key: bytes | None = None, limit: int = 200) -> int:
    """Publish waiting commands (all, or those of one campaign or upload `key`) in the order
    written, then forget them; returns how many.

    Rows stay locked while they are published, so concurrent relays never take the same ones;
    if publishing fails they stay in the table for the next relay.
    """
    async with db.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            "SELECT id, key, value FROM outbox WHERE ($1::bytea IS NULL OR key = $1)"
            " ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED",
            key, limit,
        )
        if rows:
            await send([(bytes(r["key"]), bytes(r["value"])) for r in rows])
            await conn.execute("DELETE FROM outbox WHERE id = ANY($1::bigint[])", [r["id"] for r in rows])
    return len(rows)


async def waiting(conn: Conn, key: bytes) -> bool:
    """Whether a command for `key` (a campaign or upload id) is still waiting to be published."""
    return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM outbox WHERE key = $1)", key))
