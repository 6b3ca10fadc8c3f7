"""The bounce worker against a misbehaving IMAP world (issue 11, item 5): a server that drops the
connection in the middle of a FETCH, and a huge mailbox on the first look. Real Dovecot, the real
worker process; the dropped connection is cut by a TCP proxy on loopback, inside the TLS stream."""

from __future__ import annotations

import asyncio
import imaplib
import json
import time
from collections.abc import Callable
from typing import Any

import asyncpg
import httpx
import pytest

from sendpy.devstack.imap import DovecotServer, find_binary
from sendpy.devstack.smtp_sink import SmtpSink
from tests.conftest import Workers
from tests.helpers import make_sender
from tests.imap import ImapUser
from tests.test_bounces import bounced_within, campaign_to, connected, dsn, sender_lines, statuses


@pytest.fixture
def auth(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


class CuttingProxy:
    """A TCP proxy to Dovecot. While `cut_after` is set, every connection is cut (reset, both
    ways) once the server has sent it that many bytes: TLS passes through untouched, so the cut
    falls in the middle of whatever the server was sending at that point."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.cut_after: int | None = None
        self.cuts = 0
        self.server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _serve(self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter) -> None:
        try:
            server_in, server_out = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            client_out.transport.abort()
            return

        def cut() -> None:
            client_out.transport.abort()
            server_out.transport.abort()

        async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter, from_server: bool) -> None:
            passed = 0
            try:
                while data := await source.read(65536):
                    limit = self.cut_after if from_server else None
                    if limit is not None and passed + len(data) > limit:
                        sink.write(data[:max(limit - passed, 0)])
                        self.cuts += 1
                        cut()
                        return
                    sink.write(data)
                    await sink.drain()
                    passed += len(data)
            except (ConnectionError, OSError):
                pass
            cut()

        await asyncio.gather(pump(client_in, server_out, False), pump(server_in, client_out, True))


def inbox_count(dovecot: DovecotServer, user: str) -> int:
    client = dovecot.login(user)
    try:
        status, data = client.select("INBOX", readonly=True)
        assert status == "OK"
        return int(data[0] or b"0")
    finally:
        client.logout()


async def until(condition: Callable[[], Any], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        await asyncio.sleep(0.2)


async def imap_sender(api: httpx.AsyncClient, auth: dict[str, str], sink: SmtpSink, user: ImapUser,
                      port: int) -> dict[str, Any]:
    sender = await make_sender(api, auth, sink, from_email=user.name)
    put = await api.put(f"/v1/senders/{sender['id']}/imap", headers=auth, json={
        "imap_host": "127.0.0.1", "imap_port": port, "imap_username": user.name, "imap_password": user.password})
    assert put.json()["verified"], put.text
    return sender


async def test_a_connection_dropped_mid_fetch_loses_nothing_and_records_nothing_twice(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink, workers: Workers, dovecot: DovecotServer,
    new_imap_user: Callable[..., ImapUser], db: asyncpg.Pool,
) -> None:
    proxy = CuttingProxy(dovecot.port)
    await proxy.start()
    cut_user, other_user = new_imap_user(), new_imap_user()
    reader = None
    try:
        cut_sender = await imap_sender(api, auth, clean_sink, cut_user, proxy.port)
        cut_campaign = await campaign_to(api, auth, cut_sender["id"], ["early@example.com", "late@example.com"])
        cut_ids = {m.rcpt_tos[0]: m.parsed()["Message-ID"] for m in clean_sink.messages}
        clean_sink.clear()
        other_sender = await imap_sender(api, auth, clean_sink, other_user, dovecot.port)
        other_campaign = await campaign_to(api, auth, other_sender["id"], ["elsewhere@example.com"])
        other_id = clean_sink.messages[0].parsed()["Message-ID"]

        def bounce(email: str, status: str = "5.1.1") -> bytes:
            return dsn(cut_user.name, email, cut_ids[email], status, "failed", f"550 {status} <{email}>: no such user")

        # The first batch (50) holds one bounce; the second a 1 MB message, then the other bounce.
        # The proxy cuts each connection after 200 KB from the server: inside the second FETCH.
        inbox = [bounce("early@example.com")]
        inbox += [f"From: friend@example.com\r\nSubject: note {n}\r\n\r\nhi\r\n".encode() for n in range(49)]
        inbox += [b"From: big@example.com\r\nSubject: big\r\n\r\n" + b"x" * (1024 * 1024), bounce("late@example.com")]
        for raw in inbox:
            await asyncio.to_thread(dovecot.append, cut_user.name, raw)
        proxy.cut_after = 200 * 1024

        marks = workers.log_marks()
        reader = workers.start("bounce", SENDPY_BOUNCE_POLL_SECONDS="1")

        async def problem_shown() -> bool:
            status = (await api.get(f"/v1/senders/{cut_sender['id']}/imap", headers=auth)).json()
            return bool(status["problem"]) and proxy.cuts >= 2

        await until(problem_shown, 30, "the dropped connection shown on the sender")
        status = (await api.get(f"/v1/senders/{cut_sender['id']}/imap", headers=auth)).json()
        assert " / " in status["problem"], status  # in Russian and English
        found = await statuses(api, auth, cut_campaign)
        assert (found["early@example.com"]["status"], found["late@example.com"]["status"]) == ("bounced", "sent")
        # The worker goes on: another sender's bounce is still read.
        await asyncio.to_thread(dovecot.append, other_user.name, dsn(
            other_user.name, "elsewhere@example.com", other_id, "5.1.1", "failed", "550 5.1.1 no such user"))

        async def other_read() -> bool:
            return bool((await statuses(api, auth, other_campaign))["elsewhere@example.com"]["status"] == "bounced")

        await until(other_read, 30, "the other sender's bounce recorded while the first one's server fails")
        assert reader.alive()
        assert await asyncio.to_thread(inbox_count, dovecot, cut_user.name) == len(inbox)

        # The server reachable again: the rest is read, each bounce recorded once.
        cuts = proxy.cuts
        proxy.cut_after = None

        async def recovered() -> bool:
            status = (await api.get(f"/v1/senders/{cut_sender['id']}/imap", headers=auth)).json()
            late = (await statuses(api, auth, cut_campaign))["late@example.com"]["status"]
            return late == "bounced" and status["problem"] is None

        await until(recovered, 30, "the rest read once the connection holds")
        await asyncio.sleep(2)  # a few more looks, which must find nothing new
        assert proxy.cuts == cuts
        assert await db.fetchval("SELECT count(*) FROM bounce_messages WHERE sender_id = $1", cut_sender["id"]) == 2
        reads = sender_lines(workers, "mailbox read", cut_sender["id"], marks)
        # Every message fetched exactly once over all the looks: the failed ones kept the first batch,
        # the look after them started at the second.
        assert sum(r["fetched"] for r in reads) == len(inbox), reads
        assert [r["first_uid"] for r in reads] == [1, 51], reads
        assert all(r["largest_batch"] <= 50 for r in reads), reads
        assert sender_lines(workers, "reading a mailbox failed", cut_sender["id"], marks)  # logged, not a crash
        listed = {i["email"] for i in (await api.get("/v1/suppressions", headers=auth)).json()["items"]}
        assert {"early@example.com", "late@example.com", "elsewhere@example.com"} <= listed
        assert await asyncio.to_thread(inbox_count, dovecot, cut_user.name) == len(inbox)  # nothing deleted
        assert reader.alive()
    finally:
        if reader is not None:
            workers.kill(reader)
        await proxy.stop()


async def test_a_huge_mailbox_is_read_from_the_senders_creation_only_in_bounded_batches(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink, workers: Workers, dovecot: DovecotServer,
    imap_user: ImapUser, db: asyncpg.Pool,
) -> None:
    sender = await imap_sender(api, auth, clean_sink, imap_user, dovecot.port)
    emails = ["old@example.com", "new1@example.com", "new2@example.com"]
    campaign_id = await campaign_to(api, auth, sender["id"], emails)
    ids = {m.rcpt_tos[0]: m.parsed()["Message-ID"] for m in clean_sink.messages}

    def bounce(email: str) -> bytes:
        return dsn(imap_user.name, email, ids[email], "5.1.1", "failed", f"550 5.1.1 <{email}>: no such user")

    # Years of mail from before the sender existed (a bounce among it, which must not be read),
    # then what came after: 120 ordinary messages and two bounces.
    ten_days_ago = time.time() - 10 * 86400

    def fill() -> None:
        client = dovecot.login(imap_user.name, timeout=120)
        try:
            old = imaplib.Time2Internaldate(ten_days_ago)
            for n in range(300):
                raw = bounce("old@example.com") if n == 150 else f"From: a@example.com\r\nSubject: old {n}\r\n\r\nx\r\n".encode()
                assert client.append("INBOX", None, old, raw)[0] == "OK"
            for n in range(120):
                assert client.append("INBOX", None, None, f"Subject: new {n}\r\n\r\ny\r\n".encode())[0] == "OK"
            for email in ("new1@example.com", "new2@example.com"):
                assert client.append("INBOX", None, None, bounce(email))[0] == "OK"
        finally:
            client.logout()

    await asyncio.to_thread(fill)
    marks = workers.log_marks()
    reader = workers.start("bounce", SENDPY_BOUNCE_POLL_SECONDS="1")
    try:
        async def both_read() -> bool:
            found = await statuses(api, auth, campaign_id)
            return all(found[e]["status"] == "bounced" for e in ("new1@example.com", "new2@example.com"))

        await until(both_read, 60, "the two new bounces recorded")
        await asyncio.sleep(2)  # later looks must find nothing
        assert (await statuses(api, auth, campaign_id))["old@example.com"]["status"] == "sent"
        reads = sender_lines(workers, "mailbox read", sender["id"], marks)
        assert reads, "the reader logged no look"
        # Only the 122 messages from the sender's creation day on, UID 301 onward, in batches of 50.
        assert sum(r["fetched"] for r in reads) == 122, reads
        assert reads[0]["first_uid"] == 301 and reads[-1]["next_uid"] == 423, reads
        assert max(r["largest_batch"] for r in reads) == 50 and sum(r["batches"] for r in reads) == 3, reads
        assert await db.fetchval("SELECT imap_next_uid FROM senders WHERE id = $1", sender["id"]) == 423
        assert await db.fetchval("SELECT count(*) FROM bounce_messages WHERE sender_id = $1", sender["id"]) == 2
        assert await asyncio.to_thread(inbox_count, dovecot, imap_user.name) == 422
    finally:
        workers.kill(reader)


async def test_two_workers_watch_a_mailbox_once_and_the_survivor_takes_over_a_killed_ones_watch(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink, workers: Workers, dovecot: DovecotServer,
    imap_user: ImapUser, db: asyncpg.Pool,
) -> None:
    sender = await imap_sender(api, auth, clean_sink, imap_user, dovecot.port)
    campaign_id = await campaign_to(api, auth, sender["id"], ["first@example.com", "second@example.com"])
    ids = {m.rcpt_tos[0]: m.parsed()["Message-ID"] for m in clean_sink.messages}

    def bounce(email: str) -> bytes:
        return dsn(imap_user.name, email, ids[email], "5.1.1", "failed", f"550 5.1.1 <{email}>: no such user")

    marks = workers.log_marks()
    # Polled once in ten minutes: what is read within seconds was heard by an IDLE session.
    env = {"SENDPY_BOUNCE_POLL_SECONDS": "600", "SENDPY_BOUNCE_IDLE_LEASE_SECONDS": "2"}
    pair = [workers.start("bounce", **env), workers.start("bounce", **env)]
    try:
        async def watched_by() -> list[str]:
            return [line.split(": ", 1)[0] for line in workers.logged("watching a mailbox (IDLE)", marks)
                    if json.loads(line.split(": ", 1)[1])["sender"] == sender["id"]]

        async def someone_watches() -> bool:
            return bool(await watched_by())

        await until(someone_watches, 30, "a worker watching the mailbox")
        await asyncio.sleep(6)  # past the next fill of the other worker: it must leave the mailbox alone
        holders = await watched_by()
        assert len(holders) == 1, holders
        assert await asyncio.to_thread(connected, dovecot, imap_user.name) == 1
        await asyncio.to_thread(dovecot.append, imap_user.name, bounce("first@example.com"))
        await bounced_within(api, auth, campaign_id, "first@example.com", 5)

        # The watching worker dies without a word: its claim runs out and the other one watches.
        holder = next(c for c in pair if c.log_path.name == holders[0])
        workers.kill(holder)
        pair.remove(holder)

        async def taken_over() -> bool:
            return len(await watched_by()) == 2

        await until(taken_over, 15, "the surviving worker watching the mailbox")
        assert sorted(await watched_by()) == sorted([holder.log_path.name, pair[0].log_path.name])
        await asyncio.to_thread(dovecot.append, imap_user.name, bounce("second@example.com"))
        await bounced_within(api, auth, campaign_id, "second@example.com", 5)
        assert await db.fetchval("SELECT count(*) FROM bounce_messages WHERE sender_id = $1", sender["id"]) == 2
        assert await asyncio.to_thread(connected, dovecot, imap_user.name) == 1
    finally:
        for child in pair:
            workers.kill(child)


async def test_a_dropped_idle_connection_is_read_at_once_and_watched_again(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink, workers: Workers, dovecot: DovecotServer,
    imap_user: ImapUser, db: asyncpg.Pool,
) -> None:
    sender = await imap_sender(api, auth, clean_sink, imap_user, dovecot.port)
    campaign_id = await campaign_to(api, auth, sender["id"], ["dropped@example.com"])
    message_id = clean_sink.messages[0].parsed()["Message-ID"]
    marks = workers.log_marks()
    reader = workers.start("bounce", SENDPY_BOUNCE_POLL_SECONDS="600")
    try:
        async def watches() -> int:
            return len(sender_lines(workers, "watching a mailbox (IDLE)", sender["id"], marks))

        async def watched_again() -> bool:
            return await watches() == 2

        async def watched() -> bool:
            return await watches() == 1

        await until(watched, 30, "the mailbox watched")
        # The server ends the session under the worker (`doveadm kick`: BYE, then the connection
        # closes), and the bounce lands while nothing watches: the worker reads the mailbox at
        # once, then watches it again.
        kick = await asyncio.create_subprocess_exec(
            str(find_binary("doveadm")), "-c", str(dovecot.config_path), "kick", imap_user.name,
            stdout=asyncio.subprocess.DEVNULL)
        assert await kick.wait() == 0
        await asyncio.to_thread(dovecot.append, imap_user.name, dsn(
            imap_user.name, "dropped@example.com", message_id, "5.1.1", "failed", "550 5.1.1 no such user"))
        assert await bounced_within(api, auth, campaign_id, "dropped@example.com", 15) < 15
        failed = sender_lines(workers, "a watched mailbox's connection failed", sender["id"], marks)
        assert failed and "BYE" in failed[0]["error"], failed
        await until(watched_again, 30, "the mailbox watched again")
        assert reader.alive()
        assert await db.fetchval("SELECT count(*) FROM bounce_messages WHERE sender_id = $1", sender["id"]) == 1
    finally:
        workers.kill(reader)
