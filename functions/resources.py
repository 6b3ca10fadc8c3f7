"""Clients shared by every request of one process, created on first use.

Under Mangum the ASGI lifespan would run around every invocation, so nothing is opened there:
a warm Lambda keeps its event loop, and with it these clients, between invocations.
"""

from __future__ import annotations

import asyncio

import asyncpg
from aiokafka import AIOKafkaProducer

from shared import broker
from shared.crypto import KeyProvider, key_provider_from_settings
from shared.db import create_pool, migrate
from shared.settings import get_settings
from shared.storage import UploadStore

_lock = asyncio.Lock()
_db: asyncpg.Pool | None = None
_producer: AIOKafkaProducer | None = None
_keys: KeyProvider | None = None
_store: UploadStore | None = None


async def db() -> asyncpg.Pool:
    global _db
    if _db is None:
        async with _lock:
            if _db is None:
                pool = await create_pool(get_settings())
                async with pool.acquire() as conn:
                    await migrate(conn)
                _db = pool
    return _db


async def producer() -> AIOKafkaProducer:
    global _producer
    if _producer is None:
        async with _lock:
            if _producer is None:
                _producer = await broker.start_producer(get_settings())
    return _producer


def keys() -> KeyProvider:
    global _keys
    if _keys is None:
        _keys = key_provider_from_settings(get_settings())
    return _keys


def store() -> UploadStore:
    global _store
    if _store is None:
        _store = UploadStore(get_settings())
    return _store


async def close() -> None:
    """For servers with a real lifespan (uvicorn) and tests; Lambda never calls it."""
    global _db, _producer
    if _producer is not None:
        await _producer.stop()
        _producer = None
    if _db is not None:
        await _db.close()
        _db = None
