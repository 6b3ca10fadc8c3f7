"""Postgres access: the connection pool and the versioned schema migrations."""

from __future__ import annotations

import asyncio
import importlib
import re
from collections.abc import Awaitable, Callable
from importlib import resources as package_files
from typing import Any, TypeAlias
from urllib.parse import urlsplit

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from shared.settings import Settings

# What `pool.acquire()` yields and what a bare connect returns: both work everywhere here.
Conn: TypeAlias = "asyncpg.Connection[Any] | PoolConnectionProxy[Any]"

# Any fixed 64-bit number works; it only has to be the same for every process that migrates.
_MIGRATION_LOCK_ID = 0x53454E44505931


def _iam_token(settings: Settings) -> Callable[[], Awaitable[str]]:
    """A password callback: a 15-minute RDS IAM token, made when a connection opens."""
    url = urlsplit(settings.database_url)

    async def token() -> str:
        import boto3

        client = boto3.client("rds", region_name=settings.aws_region)
        made: str = await asyncio.to_thread(
            client.generate_db_auth_token, url.hostname, url.port or 5432, url.username, settings.aws_region)
        return made

    return token


async def _keep_session(conn: asyncpg.Connection[Any]) -> None:
    """The release step of a pool whose users leave no session state behind (`session_free`).
    asyncpg still rolls back a transaction left open before it calls this."""


async def create_pool(settings: Settings, *, max_size: int | None = None, session_free: bool = False) -> asyncpg.Pool:
    """A pool for one process; connections are reset by asyncpg between users.

    asyncpg's reset is a round trip on every release (`SELECT pg_advisory_unlock_all(); CLOSE ALL;
    UNLISTEN *; RESET ALL`): 42.5 of them per 1,000 recipients in a sender worker. `session_free`
    skips it, for a process whose statements take no session-level advisory lock, LISTEN, SET or
    cursor outside a transaction (the sender worker: tests/test_postgres_store.py checks its
    modules; `migrate` ends its session if it cannot say its lock is released).
    """
    extra: dict[str, Any] = {}
    if settings.database_iam_auth:
        extra["password"] = _iam_token(settings)
    if session_free:
        extra["reset"] = _keep_session
    pool = await asyncpg.create_pool(
        **extra,
        dsn=settings.database_url,
        min_size=0,
        max_size=max_size or settings.database_pool_max,
        command_timeout=60,
        # Generic plans guess at the size of unnest($n) arrays and chose to scan a campaign's
        # every recipient for each status write (measured: 30–200 ms instead of 1 ms).
        server_settings={"plan_cache_mode": "force_custom_plan"},
    )
    assert pool is not None
    return pool


Migration = Callable[[Conn], Awaitable[None]]


def _migration_files() -> list[tuple[int, str, Migration]]:
    """SQL files, and Python modules (with `async def migrate(conn)`) for data a query cannot
    move, in version order."""
    found: list[tuple[int, str, Migration]] = []
    for entry in package_files.files("shared.migrations").iterdir():
        match = re.fullmatch(r"(\d{4})_([a-z0-9_]+)\.(sql|py)", entry.name)
        if not match:
            continue
        version, name, kind = int(match.group(1)), match.group(2), match.group(3)
        if kind == "sql":
            found.append((version, name, _sql_step(entry.read_text(encoding="utf-8"))))
        else:
            module = importlib.import_module(f"shared.migrations.{entry.name[:-3]}")
            found.append((version, name, module.migrate))
    return sorted(found, key=lambda item: item[0])


def _sql_step(sql: str) -> Migration:
    async def run(conn: Conn) -> None:
        await conn.execute(sql)

    return run


async def migrate(conn: Conn, up_to: int | None = None) -> list[int]:
    """Apply the migrations this database has not seen yet (up to version `up_to`, for tests of a
    migration); returns the versions applied.

    An advisory lock makes concurrent starts (API and several workers at once) safe.
    """
    applied: list[int] = []
    unlocked = False
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK_ID)
        try:
            await _apply(conn, up_to, applied)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK_ID)
            unlocked = True
    finally:
        if not unlocked:
            # The lock may be held though the call failed (cancelled after Postgres granted it) and
            # a session-free pool would keep it, holding every other process's start: the session
            # goes, and the lock with it.
            conn.terminate()
    return applied


async def _apply(conn: Conn, up_to: int | None, applied: list[int]) -> None:
    await conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version integer PRIMARY KEY, name text NOT NULL,"
        " applied_at timestamptz NOT NULL DEFAULT now())"
    )
    done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
    for version, name, step in _migration_files():
        if version in done or (up_to is not None and version > up_to):
            continue
        async with conn.transaction():
            await step(conn)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", version, name
            )
        applied.append(version)


# Failures that go away when Postgres is reachable again (restart, failover, network).
TRANSIENT_DB_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.InterfaceError,
    # A pooled connection caught mid-protocol by a server restart ("cannot switch to state …").
    asyncpg.InternalClientError,
    ConnectionError,
    OSError,
    TimeoutError,
)
