"""One account's slow mailboxes do not hold up anyone else's bounces (issue 11, the last attack):
an account with more senders than the bounce worker has look slots, each on an IMAP server that
answers the look's SEARCH a byte every half second (within every bound but the look's 5 minutes),
while another account's bounce lands in a real Dovecot. The real worker process, polling and
watching with IDLE; and the slot sharing itself, as pure logic."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
import httpx
import pytest

from sendpy.devstack.imap import DovecotServer
from sendpy.devstack.smtp_sink import SmtpSink
from sendpy.devstack.tls import LocalCertificates
from shared.bounces.slots import FairSlots
from tests.conftest import Workers, new_api_key
from tests.helpers import make_sender
from tests.hostile_imap import HostileImap, hostile_imap
from tests.imap import ImapUser
from tests.test_bounces import bounced_within, campaign_to, dsn

SLOW_SENDERS = 6  # more than the worker's 4 slots
BOUND_SECONDS = 30  # the other account's bounce, at most (a poll every second, IDLE fill every 5 s)


@pytest.fixture
def auth(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


async def until(check: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
        await asyncio.sleep(0.2)


async def another_users_bounce_waits_for_no_slow_mailbox(
    api: httpx.AsyncClient, auth: dict[str, str], sink: SmtpSink, workers: Workers, dovecot: DovecotServer,
    user: ImapUser, db: asyncpg.Pool, server: HostileImap, slow_accounts: int = 1, **worker_env: str,
) -> float:
    # Only these senders read mail here (earlier tests' may point at servers they have stopped).
    await db.execute("UPDATE senders SET imap_host = NULL, imap_claimed_until = NULL WHERE imap_host IS NOT NULL")
    owners = [auth] + [{"Authorization": f"Bearer {await new_api_key(db)}"} for _ in range(slow_accounts - 1)]
    slow = [await make_sender(api, owners[n % slow_accounts], sink) for n in range(SLOW_SENDERS)]
    await db.execute("UPDATE senders SET imap_host = '127.0.0.1', imap_port = $2, imap_checked_at = NULL"
                     " WHERE id = ANY($1)", [s["id"] for s in slow], server.port)
    # The other account: one sender whose mailbox is a real Dovecot, a campaign, and its bounce.
    other = {"Authorization": f"Bearer {await new_api_key(db)}"}
    sender = await make_sender(api, other, sink, from_email=user.name)
    sink.clear()
    campaign_id = await campaign_to(api, other, sender["id"], ["gone@example.com"])
    message_id = sink.messages[-1].parsed()["Message-ID"]
    await asyncio.to_thread(dovecot.append, user.name, dsn(user.name, "gone@example.com", message_id, "5.1.1",
                                                           "failed", "550 5.1.1 no such user"))
    reader = workers.start("bounce", SENDPY_BOUNCE_POLL_SECONDS="1", SENDPY_BOUNCE_CONCURRENCY="4", **worker_env)
    try:
        # The slow account's looks are under way (before the fix: on every slot) ...
        busy = 2 if slow_accounts == 1 else 3
        await until(lambda: server.searching >= busy, 60, "the slow accounts' looks started")
        await asyncio.sleep(2)
        # ... when the other account turns bounce reading on.
        put = await api.put(f"/v1/senders/{sender['id']}/imap", headers=other, json={
            "imap_host": "127.0.0.1", "imap_port": dovecot.port, "imap_username": user.name,
            "imap_password": user.password})
        assert put.status_code == 200 and put.json()["verified"], put.text
        took = await bounced_within(api, other, campaign_id, "gone@example.com", BOUND_SECONDS)
        assert server.searching >= busy, "the slow looks ended early: the test proves nothing"
        # At most half the worker's slots for one account, however many senders it has; with two
        # such accounts, one slot stays free for an account that holds none (issue 11: two
        # accounts held all four, and the other account's bounce took 185 s).
        assert server.most_searching == (2 if slow_accounts == 1 else 3), server.most_searching
        assert reader.alive()
        return took
    finally:
        workers.kill(reader)
        await db.execute("UPDATE senders SET imap_host = NULL, imap_claimed_until = NULL WHERE id = ANY($1)",
                         [s["id"] for s in slow])


async def test_a_polled_account_with_many_slow_mailboxes_delays_no_one_elses_bounce(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink, workers: Workers, dovecot: DovecotServer,
    imap_user: ImapUser, db: asyncpg.Pool, certs: LocalCertificates,
) -> None:
    with hostile_imap(certs, "drip-search") as server:
        took = await another_users_bounce_waits_for_no_slow_mailbox(
            api, auth, clean_sink, workers, dovecot, imap_user, db, server, SENDPY_BOUNCE_IDLE_CONNECTIONS="0")
    assert took < BOUND_SECONDS


async def test_idle_sessions_of_many_slow_mailboxes_delay_no_one_elses_bounce(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink, workers: Workers, dovecot: DovecotServer,
    imap_user: ImapUser, db: asyncpg.Pool, certs: LocalCertificates,
) -> None:
    # Every slow mailbox is watched with IDLE, and each watch's first look asks for a slot.
    with hostile_imap(certs, "drip-search") as server:
        took = await another_users_bounce_waits_for_no_slow_mailbox(
            api, auth, clean_sink, workers, dovecot, imap_user, db, server)
    assert took < BOUND_SECONDS


@pytest.mark.parametrize("idle_connections", ["0", "100"], ids=["polled", "idle"])
async def test_two_accounts_with_many_slow_mailboxes_delay_no_one_elses_bounce(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink, workers: Workers, dovecot: DovecotServer,
    imap_user: ImapUser, db: asyncpg.Pool, certs: LocalCertificates, idle_connections: str,
) -> None:
    with hostile_imap(certs, "drip-search", drip_seconds=2) as server:
        took = await another_users_bounce_waits_for_no_slow_mailbox(
            api, auth, clean_sink, workers, dovecot, imap_user, db, server, slow_accounts=2,
            SENDPY_BOUNCE_IDLE_CONNECTIONS=idle_connections)
    assert took < BOUND_SECONDS


async def test_slots_go_to_whoever_waited_longest_below_their_share() -> None:
    slots = FairSlots(4)
    order: list[str] = []
    gates: dict[str, asyncio.Event] = {}

    async def look(name: str) -> None:  # the account is the name's letter
        gates[name] = asyncio.Event()
        async with slots.take(ord(name[0])):
            order.append(name)
            await gates[name].wait()

    async def arrive(name: str) -> asyncio.Task[None]:
        task = asyncio.create_task(look(name))
        await asyncio.sleep(0.01)
        return task

    tasks = [await arrive(name) for name in ("a1", "a2", "a3", "b1", "b2")]
    # a holds its half; b takes one, and the last slot is kept for an account that holds none.
    assert order == ["a1", "a2", "b1"] and slots.free() == 1
    assert slots.for_poller() == (1, 2, {ord("a"): 3, ord("b"): 2})  # nothing more for a or b
    tasks.append(await arrive("c1"))  # a third account finds the slot free (issue 11: it waited 185 s)
    assert order[3:] == ["c1"] and slots.free() == 0
    assert slots.load() == {ord("a"): 3, ord("b"): 2, ord("c"): 1} and slots.share() == 1
    gates["c1"].set()  # a and b hold more than a third each: the slot stays for a newcomer
    await asyncio.sleep(0.01)
    assert order[4:] == [] and slots.free() == 1
    gates["a1"].set()  # two accounts want slots again: a3 waited longest and a is below its share
    await asyncio.sleep(0.01)
    assert order[4:] == ["a3"]

    # A look cancelled while it waits gives its place up.
    waiting = await arrive("b3")
    assert slots.load()[ord("b")] == 3
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    assert slots.load()[ord("b")] == 2 and order[5:] == []
    for gate in gates.values():
        gate.set()
    await asyncio.gather(*tasks)
    assert order[5:] == ["b2"] and slots.free() == 4 and slots.load() == {}
