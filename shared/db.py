"""Postgres access: the connection pool and the versioned schema migrations."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from importlib import resources
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


async def create_pool(settings: Settings, *, max_size: int | None = None) -> asyncpg.Pool:
    """A pool for one process; connections are reset by asyncpg between users."""
    extra: dict[str, Any] = {}
    if settings.database_iam_auth:
        extra["password"] = _iam_token(settings)
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


def _migration_files() -> list[tuple[int, str, str]]:
    found = []
    for entry in resources.files("shared.migrations").iterdir():
        match = re.fullmatch(r"(\d{4})_([a-z0-9_]+)\.sql", entry.name)
        if match:
            found.append((int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8")))
    return sorted(found)


async def migrate(conn: Conn) -> list[int]:
    """Apply the migrations this database has not seen yet; returns the versions applied.

    An advisory lock makes concurrent starts (API and several workers at once) safe.
    """
    applied: list[int] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK_ID)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for version, name, sql in _migration_files():
            if version in done:
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", version, name
                )
            applied.append(version)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK_ID)
    return applied


# Failures that go away when Postgres is reachable again (restart, failover, network).
TRANSIENT_DB_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.InterfaceError,
    ConnectionError,
    OSError,
    TimeoutError,
)
