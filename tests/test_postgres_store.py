"""The sender's store on real Postgres: a claim chunk is one connection and two statements, the
suppression check stays exact, and the sender's pool skips asyncpg's reset round trip safely."""

from __future__ import annotations

import asyncio
import inspect
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from shared import db as shared_db
from shared import recipients, suppressions, uploads
from shared.accounts import ensure_user
from shared.delivery.postgres_store import PostgresDeliveryStore
from shared.settings import get_settings

ROOT = Path(__file__).resolve().parent.parent
RESET = "SELECT pg_advisory_unlock_all()"  # how asyncpg's reset query begins


@pytest.fixture
async def pool(db: asyncpg.Pool) -> AsyncIterator[asyncpg.Pool]:
    """A pool as the sender worker makes it (`db` only makes sure the schema is there)."""
    made = await shared_db.create_pool(get_settings(), max_size=1, session_free=True)
    yield made
    await made.close()


@pytest.fixture
async def watcher(db: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """A connection of its own, to see what the pools' sessions did last."""
    conn = await asyncpg.connect(get_settings().database_url)
    yield conn
    await conn.close()


async def new_campaign(db: asyncpg.Pool, emails: list[str]) -> tuple[uuid.UUID, int]:
    campaign_id = uuid.uuid4()
    async with db.acquire() as conn:
        user_id = await ensure_user(conn, f"store-{campaign_id.hex[:8]}@example.com")
        await conn.execute("INSERT INTO campaigns (id, user_id, status, subject, html_body) VALUES"
                           " ($1, $2, 'sending', 's', 'h')", campaign_id, user_id)
        await recipients.copy_in(conn, campaign_id, ((email, {}) for email in emails))
    return campaign_id, user_id


async def last_query(watcher: asyncpg.Connection, pid: int) -> str:
    query: str = await watcher.fetchval("SELECT query FROM pg_stat_activity WHERE pid = $1", pid)
    return query


async def test_a_claim_marks_whoever_is_suppressed_now_by_the_same_mailbox_rule(
        db: asyncpg.Pool, pool: asyncpg.Pool, watcher: asyncpg.Connection) -> None:
    emails = ["j.smith@gmail.com", "anna@example.com", "Boris@example.org", "vera@example.net"]
    campaign_id, user_id = await new_campaign(db, emails)
    async with db.acquire() as conn:  # after loading: another address of the same Gmail box, and case
        await suppressions.add(conn, user_id, ["JSmith+news@googlemail.com", "boris@EXAMPLE.org"], "unsubscribed")
    store = PostgresDeliveryStore(pool)
    claimed = await store.claim(campaign_id, user_id, [1, 2, 3, 4], 120)
    assert claimed is not None
    assert [(c.email, c.suppressed) for c in claimed] == [
        ("j.smith@gmail.com", True), ("anna@example.com", False), ("Boris@example.org", True),
        ("vera@example.net", False)]
    async with pool.acquire() as conn:
        pid = conn.get_server_pid()
    # Both statements went through one connection, and its release sent no reset.
    assert "suppressed" in await last_query(watcher, pid)
    await db.execute("UPDATE campaigns SET status = 'paused' WHERE id = $1", campaign_id)
    assert await store.claim(campaign_id, user_id, [1, 2, 3, 4], 0) is None  # even leases run out


async def test_the_senders_pool_skips_the_reset_but_still_ends_a_transaction_left_open(
        pool: asyncpg.Pool, watcher: asyncpg.Connection) -> None:
    marker = f"left-open-{uuid.uuid4().hex[:8]}@example.com"
    async with pool.acquire() as conn:
        pid = conn.get_server_pid()
        await conn.execute("BEGIN")
        await conn.execute("INSERT INTO users (email) VALUES ($1)", marker)
    assert await watcher.fetchval("SELECT state FROM pg_stat_activity WHERE pid = $1", pid) == "idle"
    assert await watcher.fetchval("SELECT count(*) FROM users WHERE email = $1", marker) == 0
    assert await last_query(watcher, pid) == "ROLLBACK"
    async with pool.acquire() as conn:
        await conn.fetchval("SELECT 1")
    assert await last_query(watcher, pid) == "SELECT 1"  # no reset round trip after it
    usual = await shared_db.create_pool(get_settings(), max_size=1)  # the API's and the other workers'
    try:
        async with usual.acquire() as conn:
            pid = conn.get_server_pid()
            await conn.fetchval("SELECT 1")
        assert (await last_query(watcher, pid)).startswith(RESET)
    finally:
        await usual.close()


async def test_a_migration_cancelled_while_waiting_for_the_lock_ends_its_session(
        pool: asyncpg.Pool, watcher: asyncpg.Connection) -> None:
    # Cancelled just after Postgres granted the lock (a race no test can time), the session would
    # keep it; with no reset on release, every later start would wait for it forever. Whenever
    # migrate cannot say the lock is released, the session goes, and the lock with it.
    holder = await asyncpg.connect(get_settings().database_url)
    try:
        await holder.execute("SELECT pg_advisory_lock($1)", shared_db._MIGRATION_LOCK_ID)
        async with pool.acquire() as conn:
            pid = conn.get_server_pid()
            waiting = asyncio.create_task(shared_db.migrate(conn))
            await asyncio.sleep(0.5)
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
    finally:
        await holder.close()
    for _ in range(100):  # a backend notices its client is gone when it next talks to it; 10 s is generous
        if not await watcher.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid):
            break
        await asyncio.sleep(0.1)
    assert not await watcher.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid)
    async with pool.acquire() as conn:  # the pool opens a new session
        assert await asyncio.wait_for(shared_db.migrate(conn), 30) == []


# The code that runs on the sender worker's pool (worker_image/__main__.py), which skips asyncpg's
# reset: none of it may leave state in the session for the next user of the connection.
SENDER_MODULES = ["shared/delivery", "shared/recipients.py", "shared/campaigns/states.py", "shared/smtp_accounts.py",
                  "shared/deferrals.py", "shared/send_window.py"]
# Anywhere: the session-level lock functions and set_config; as a statement's first word (this code
# writes its statements as the first argument or as a constant): the session commands.
SESSION_STATE = re.compile(r"pg_(try_)?advisory_lock(_shared)?\(|set_config\(|[(=]\s*f?(\"\"\"|\"|')\s*"
                           r"(SET|RESET|LISTEN|UNLISTEN|DECLARE|PREPARE|CREATE\s+TEMP)\b", re.IGNORECASE)


def test_the_senders_statements_leave_no_session_state() -> None:
    paths = [p for name in SENDER_MODULES for p in sorted((ROOT / name).glob("*.py")) or [ROOT / name]]
    sources = {str(p.relative_to(ROOT)): p.read_text(encoding="utf-8") for p in paths}
    sources["suppressions.among"] = inspect.getsource(suppressions.among)
    sources["uploads.could_not_inspect"] = inspect.getsource(uploads.could_not_inspect) + inspect.getsource(uploads._fail)
    found = {name: match.group(0) for name, text in sources.items() if (match := SESSION_STATE.search(text))}
    assert not found, found
