"""One account's slow mailboxes do not hold up anyone else's bounces (issue 11, the last attack):
an account with more senders than the bounce worker has look slots, each on an IMAP server that
answers the look's SEARCH a byte every half second (within every bound but the look's 5 minutes),
while another account's bounce lands in a real Dovecot. The real worker process, polling and
watching with IDLE; and the slot sharing itself, as pure logic. A look whose server makes no
progress ends well before the look's 5 minutes, and that server is looked at later each time, so
slow servers of as many accounts as there are slots do not keep them either."""

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
from shared.bounces.reader import due_senders
from shared.bounces.slots import FairSlots
from tests.conftest import Workers, new_api_key
from tests.helpers import make_sender
from tests.hostile_imap import HostileImap, hostile_imap
from tests.imap import ImapUser
from tests.sent_mail import message_id_to
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
    message_id = message_id_to(sink, "gone@example.com", user.name)
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


HOGGING_ACCOUNTS = 4  # as many as the worker's slots, each an account of its own
HOGGED_BOUND_SECONDS = 60  # issue 11: another account's bounce waited 293–296 s behind them


@pytest.mark.parametrize(("mode", "idle_connections"), [("drip-fetch", "0"), ("drip-search", "100")],
                         ids=["fetch-polled", "search-idle"])
async def test_slow_servers_of_four_accounts_hold_the_slots_only_briefly_and_back_off(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink, workers: Workers, dovecot: DovecotServer,
    imap_user: ImapUser, db: asyncpg.Pool, certs: LocalCertificates, mode: str, idle_connections: str,
) -> None:
    # Four accounts, two senders each, on a server that sends its answer a few bytes a second
    # (always inside the read timeout): every slot is theirs until a look that makes no progress
    # ends; the server is then left alone for a growing while, so the slots go to others.
    await db.execute("UPDATE senders SET imap_host = NULL, imap_claimed_until = NULL WHERE imap_host IS NOT NULL")
    owners = [auth] + [{"Authorization": f"Bearer {await new_api_key(db)}"} for _ in range(HOGGING_ACCOUNTS - 1)]
    slow = [await make_sender(api, owner, clean_sink) for owner in owners for _ in range(2)]
    other = {"Authorization": f"Bearer {await new_api_key(db)}"}
    sender = await make_sender(api, other, clean_sink, from_email=imap_user.name)
    clean_sink.clear()
    campaign_id = await campaign_to(api, other, sender["id"], ["gone@example.com"])
    message_id = message_id_to(clean_sink, "gone@example.com", imap_user.name)
    await asyncio.to_thread(dovecot.append, imap_user.name, dsn(imap_user.name, "gone@example.com", message_id,
                                                                "5.1.1", "failed", "550 5.1.1 no such user"))
    with hostile_imap(certs, mode, drip_seconds=0.5) as server:
        await db.execute("UPDATE senders SET imap_host = '127.0.0.1', imap_port = $2, imap_checked_at = NULL"
                         " WHERE id = ANY($1)", [s["id"] for s in slow], server.port)
        reader = workers.start("bounce", SENDPY_BOUNCE_POLL_SECONDS="1", SENDPY_BOUNCE_CONCURRENCY="4",
                               SENDPY_BOUNCE_IDLE_CONNECTIONS=idle_connections)
        try:
            await until(lambda: server.dripping >= HOGGING_ACCOUNTS, 60, "every slot held by a slow server")
            await asyncio.sleep(2)
            put = await api.put(f"/v1/senders/{sender['id']}/imap", headers=other, json={
                "imap_host": "127.0.0.1", "imap_port": dovecot.port, "imap_username": imap_user.name,
                "imap_password": imap_user.password})
            assert put.status_code == 200 and put.json()["verified"], put.text
            took = await bounced_within(api, other, campaign_id, "gone@example.com", HOGGED_BOUND_SECONDS)
            print(f"\n{mode}: another account's bounce recorded {took:.1f} s after its reading was turned on")
            assert server.most_dripping == HOGGING_ACCOUNTS, server.most_dripping
            assert reader.alive()
            # Each slow server is given up on with the reason, and is not looked at again for a
            # while: no sender's look begins twice (the back-off starts at a minute).
            query = ("SELECT imap_problem, imap_slow_strikes, imap_slow_until > now() AS waiting FROM senders"
                     " WHERE id = ANY($1) AND imap_problem IS NOT NULL")
            rows: list[Any] = []

            async def all_given_up() -> bool:
                rows[:] = await db.fetch(query, [s["id"] for s in slow])
                return len(rows) == len(slow)

            deadline = time.monotonic() + 120
            while not await all_given_up():
                assert time.monotonic() < deadline, rows
                await asyncio.sleep(0.5)
            await asyncio.sleep(3)
            for row in rows:
                assert "слишком медленно" in row["imap_problem"] and "too slowly" in row["imap_problem"], row
                assert row["imap_slow_strikes"] == 1 and row["waiting"], dict(row)
            assert server.slow_answers == len(slow), server.slow_answers
        finally:
            workers.kill(reader)
            await db.execute("UPDATE senders SET imap_host = NULL, imap_claimed_until = NULL WHERE id = ANY($1)",
                             [s["id"] for s in slow])
    assert took < HOGGED_BOUND_SECONDS


async def test_the_poller_takes_an_account_not_looked_at_before_the_next_sender_of_one_just_looked_at(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink, db: asyncpg.Pool,
) -> None:
    # An account with many senders never read, one of them just looked at; another account's
    # sender, created after them all: it goes first (it waited behind each of them, a slow look
    # each, issue 11), though each account's never-read sender has waited as long.
    await db.execute("UPDATE senders SET imap_host = NULL, imap_claimed_until = NULL WHERE imap_host IS NOT NULL")
    many = [await make_sender(api, auth, clean_sink) for _ in range(3)]
    other = await make_sender(api, {"Authorization": f"Bearer {await new_api_key(db)}"}, clean_sink)
    ids = [s["id"] for s in [*many, other]]
    try:
        await db.execute("UPDATE senders SET imap_host = '127.0.0.1', imap_port = 993, imap_checked_at = NULL,"
                         " imap_slow_until = NULL WHERE id = ANY($1)", ids)
        await db.execute("UPDATE senders SET imap_checked_at = now() - interval '10 seconds' WHERE id = $1",
                         many[0]["id"])
        assert [s for s, _ in await due_senders(db, 1.0, limit=1)] == [other["id"]]
        assert [s for s, _ in await due_senders(db, 1.0, limit=1)] == [many[1]["id"]]
        # A server found slow waits out its back-off, however overdue.
        await db.execute("UPDATE senders SET imap_slow_until = now() + interval '1 minute' WHERE id = $1",
                         many[2]["id"])
        assert [s for s, _ in await due_senders(db, 1.0)] == [many[0]["id"]]
    finally:
        await db.execute("UPDATE senders SET imap_host = NULL, imap_claimed_until = NULL WHERE id = ANY($1)", ids)


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
    assert slots.for_poller() == (4, 2, {ord("a"): 3, ord("b"): 2})  # polled looks wait in this line too
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


async def test_a_freed_slot_goes_to_the_account_served_least_lately() -> None:
    # Four accounts' looks hold every slot and each has a second look waiting; a fifth account's
    # look comes after them all, and yet gets the first slot to free up (it waited for their
    # second round, a slow look each, issue 11).
    slots = FairSlots(4)
    order: list[str] = []
    gates: dict[str, asyncio.Event] = {}

    async def look(name: str) -> None:
        gates[name] = asyncio.Event()
        async with slots.take(ord(name[0])):
            order.append(name)
            await gates[name].wait()

    tasks = []
    for name in ("a1", "b1", "c1", "d1", "a2", "b2", "c2", "d2", "e1"):
        tasks.append(asyncio.create_task(look(name)))
        await asyncio.sleep(0.01)
    assert order == ["a1", "b1", "c1", "d1"] and slots.free() == 0
    gates["a1"].set()
    await asyncio.sleep(0.01)
    assert order[4:] == ["e1"]
    for gate in ("b1", "c1"):
        gates[gate].set()
    await asyncio.sleep(0.01)
    assert order[5:] == ["a2", "b2"]  # then the others in turn, the one that waited longest first
    for gate in gates.values():
        gate.set()
    await asyncio.gather(*tasks)
    assert slots.free() == 4 and slots.load() == {}


async def test_slow_accounts_never_take_the_last_slot() -> None:
    # Eleven accounts whose looks each held a slot for many seconds, all waiting for more, and a
    # victim just served: it waited behind every slow account's turn (10–70 s, the re-attack of
    # issue 11). Slow accounts leave the reserved slot to quick ones.
    now = [0.0]
    slots = FairSlots(4, clock=lambda: now[0])
    order: list[str] = []
    gates: dict[str, asyncio.Event] = {}

    async def look(name: str, account: int, seconds: float = 0.0) -> None:
        gates[name] = asyncio.Event()
        async with slots.take(account):
            order.append(name)
            await gates[name].wait()
            now[0] += seconds

    async def finish(name: str) -> None:
        gates[name].set()
        await asyncio.sleep(0.01)

    first = [asyncio.create_task(look(f"s{n}", n, seconds=20)) for n in range(4)]
    await asyncio.sleep(0.01)
    for n in range(4):
        await finish(f"s{n}")
    await asyncio.gather(*first)
    assert slots.slow() == {0, 1, 2, 3}
    victim = asyncio.create_task(look("victim", 99))  # served once, quickly: the least lately of none
    await asyncio.sleep(0.01)
    await finish("victim")
    await victim
    assert slots.slow() == {0, 1, 2, 3}

    again = [asyncio.create_task(look(f"t{n}", n % 4, seconds=20)) for n in range(11)]
    await asyncio.sleep(0.01)
    assert len(order) == 5 + 3 and slots.free() == 1  # slow ones hold three slots, none gets the last
    tasks = [asyncio.create_task(look("victim2", 99))]
    await asyncio.sleep(0.01)
    assert order[-1] == "victim2" and slots.free() == 0  # at once, though the slow were served less lately
    tasks.append(asyncio.create_task(look("victim3", 98)))  # another quick account, every slot held
    await asyncio.sleep(0.01)
    assert order[-1] == "victim2"
    await finish(order[5])  # a slow look ends: its slot is the reserved one, for the quick account
    assert order[-1] == "victim3"
    for name in list(gates):
        gates[name].set()
    await asyncio.gather(*again, *tasks)
    assert slots.free() == 4
