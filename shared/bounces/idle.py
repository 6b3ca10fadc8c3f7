"""IMAP IDLE (RFC 2177) for the bounce worker: a bounce is read seconds after it lands, not at
the next poll.

A worker keeps at most `limit` sessions, one per sender whose server advertises IDLE. A session
holds the sender's claim (`imap_claimed_until`, the column the poller's `due_senders` claims
through), so neither the poller nor another worker reads that INBOX while it runs; the claim is a
lease, renewed every `lease / 4` seconds by compare-and-set on the timestamp last written, which
makes that timestamp the holder's token: a worker that stalled past its lease finds the claim
taken and ends its session instead of taking it back. The same renewal notices IMAP settings that
changed (a fingerprint of server, login and sealed password) or were removed, and ends that
session; a new one starts with the new settings.

A session logs in, selects INBOX read-only, enters IDLE and stays in it: the reading itself
(`check_sender`, its own connection) runs while the server keeps announcing on this one, so
nothing that arrives during a look is missed. It reads at once (what came while nobody watched),
then on every EXISTS or RECENT, and after re-issuing IDLE every REISSUE_SECONDS (servers may drop
a client idle for 30 minutes). A dropped connection or a failed look ends the session: the
mailbox is read once more, the claim released, and the poller takes the sender over until a
session can start again (after a back-off). Senders past the limit, or whose server lacks IDLE,
are polled as before.

IMAPClient is synchronous, but an idling session needs no thread: the event loop watches its
socket, and only what the server sent is read (`idle_check` without waiting) in a thread. So 50
sessions do not fill the thread pool the looks need, and a stop is noticed at once.

Setting a session up (log in, select, IDLE) keeps the looks' pace (reader.PACE): a server that
thought 19 s before each answer timed every setup out at its 60 s, and its senders went round a
retry loop for a quarter of an hour with nothing on their page. A setup the server makes too slow
is that server's slow look: the problem on the sender in both languages, and its back-off.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from shared.bounces.reader import PACE, SLOW_KINDS, load_account, save_problem
from shared.crypto import KeyProvider
from shared.imap_accounts import CALL_SECONDS, ImapAccount, ImapProblem, bound_problem, in_imap_thread, open_mailbox
from shared.imap_mailbox import NEWS, WOKE, Mailbox
from shared.mail.messenger import ConnectPolicy
from shared.smtp_accounts import VerifyProblem

log = logging.getLogger("sendpy.bounces")

REISSUE_SECONDS = 25 * 60  # RFC 2177: re-issue IDLE at least every 29 minutes
NO_IDLE_RETRY_SECONDS = 3600.0  # a server without IDLE is asked again this late (it may be upgraded)
MAX_BACKOFF_SECONDS = 600.0
STEADY_SECONDS = 60.0  # a session that ran this long resets its sender's back-off
CLOSE_SECONDS = 3.0

Check = Callable[[int, int], Awaitable[int | None]]  # (sender, its account) → as check_sender


@dataclass
class _Session:
    sender_id: int
    user_id: int
    token: dt.datetime  # the imap_claimed_until this worker wrote last
    fingerprint: str
    started: float = field(default_factory=time.monotonic)
    reason: str | None = None  # why it must end; set by the renewal or the worker's stop
    stopped: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    def end(self, reason: str) -> None:
        self.reason = self.reason or reason
        self.stopped.set()


class IdleSessions:
    def __init__(self, db: asyncpg.Pool, keys: KeyProvider, policy: ConnectPolicy, check: Check, *,
                 limit: int, lease_seconds: float) -> None:
        self.db, self.keys, self.policy, self.check = db, keys, policy, check
        self.limit = limit
        self.lease = lease_seconds
        self.sessions: dict[int, _Session] = {}
        # sender → (fingerprint, monotonic time before which no session is tried for it again)
        self._skip: dict[int, tuple[str, float]] = {}
        self._failures: dict[int, int] = {}
        self._claims = asyncio.Lock()  # a renewal and a release must not pass each other's token
        self._closing = False

    async def fill(self) -> int:
        """Start sessions for unclaimed senders up to the limit, taking accounts in turn (each
        account's first sender, then each one's second, …); returns how many started."""
        free = self.limit - len(self.sessions)
        if free <= 0 or self._closing:
            return 0
        now = time.monotonic()
        self._skip = {k: v for k, v in self._skip.items() if v[1] > now}
        async with self.db.acquire() as conn:
            rows = await conn.fetch(
                """
                WITH ranked AS (
                    SELECT s.id, f.fingerprint, row_number() OVER (PARTITION BY s.user_id ORDER BY s.id) AS turn
                      FROM senders s
                     -- what a session's connection depends on: when it changes, the session ends
                     CROSS JOIN LATERAL (SELECT md5(concat_ws('|', s.imap_host, s.imap_port,
                                          coalesce(s.imap_username, s.username),
                                          encode(coalesce(s.imap_password_encrypted, s.password_encrypted), 'hex')))
                                        AS fingerprint) AS f
                     WHERE s.imap_host IS NOT NULL
                       AND (s.imap_claimed_until IS NULL OR s.imap_claimed_until < now())
                       -- a server found too slow waits out its back-off (reader.py), watched or not
                       AND (s.imap_slow_until IS NULL OR s.imap_slow_until < now())
                       AND NOT EXISTS (SELECT 1 FROM unnest($3::bigint[], $4::text[]) AS k(id, fp)
                                        WHERE k.id = s.id AND k.fp = f.fingerprint)),
                picked AS (
                    SELECT s.id, r.fingerprint FROM senders s JOIN ranked r ON r.id = s.id
                     WHERE s.imap_claimed_until IS NULL OR s.imap_claimed_until < now()
                     ORDER BY r.turn, s.id LIMIT $1 FOR UPDATE OF s SKIP LOCKED)
                UPDATE senders s SET imap_claimed_until = now() + make_interval(secs => $2)
                  FROM picked WHERE s.id = picked.id
                RETURNING s.id, s.user_id, s.imap_claimed_until, picked.fingerprint
                """,
                free, self.lease, list(self._skip), [fp for fp, _ in self._skip.values()])
        for row in rows:
            session = _Session(row["id"], row["user_id"], row["imap_claimed_until"], row["fingerprint"])
            self.sessions[session.sender_id] = session
            session.task = asyncio.create_task(self._run(session))
        return len(rows)

    async def renew(self) -> int:
        """Extend every session's claim; end the sessions whose claim was lost or whose IMAP
        settings changed or went away. Returns how many were ended."""
        if not self.sessions:
            return 0
        ended = 0
        async with self._claims:
            held = [s for s in self.sessions.values() if s.reason is None]
            async with self.db.acquire() as conn:
                rows = await conn.fetch(
                    """
                    WITH held AS (SELECT * FROM unnest($1::bigint[], $2::timestamptz[]) AS h(id, until)),
                    renewed AS (
                        UPDATE senders s SET imap_claimed_until = now() + make_interval(secs => $3)
                          FROM held WHERE s.id = held.id AND s.imap_claimed_until = held.until
                                      AND s.imap_host IS NOT NULL
                        RETURNING s.id, s.imap_claimed_until,  -- the fingerprint as in fill()
                                  md5(concat_ws('|', s.imap_host, s.imap_port, coalesce(s.imap_username, s.username),
                                      encode(coalesce(s.imap_password_encrypted, s.password_encrypted), 'hex')))
                                    AS fingerprint)
                    SELECT held.id, renewed.imap_claimed_until, renewed.fingerprint,
                           s.id IS NULL OR s.imap_host IS NULL AS removed
                      FROM held LEFT JOIN renewed USING (id) LEFT JOIN senders s ON s.id = held.id
                    """,
                    [s.sender_id for s in held], [s.token for s in held], self.lease)
            for row in rows:
                session = self.sessions.get(row["id"])
                if session is None:
                    continue
                if row["imap_claimed_until"] is not None:
                    session.token = row["imap_claimed_until"]
                if row["removed"]:
                    session.end("IMAP settings removed")
                elif row["imap_claimed_until"] is None:
                    session.end("claim lost")
                elif row["fingerprint"] != session.fingerprint:
                    session.end("IMAP settings changed")
                else:
                    continue
                ended += 1
        return ended

    async def close(self) -> None:
        """End every session (the worker stops): promptly, claims released."""
        self._closing = True
        for session in self.sessions.values():
            session.end("worker stopping")
        tasks = [s.task for s in self.sessions.values() if s.task is not None]
        if not tasks:
            return
        _, late = await asyncio.wait(tasks, timeout=CLOSE_SECONDS)
        for task in late:  # in the middle of a look: check_sender cuts its connection when cancelled
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self, session: _Session) -> None:
        sender_id = session.sender_id
        mailbox: Mailbox | None = None
        outcome = "ended"
        loaded = None
        watching = False
        try:
            loaded = await load_account(self.db, self.keys, sender_id)
            if loaded is None:
                return
            mailbox = await open_mailbox(loaded[1], self.policy, pace=PACE)
            if not await in_imap_thread(mailbox.idle_supported):
                outcome = "no IDLE"
                self._skip[sender_id] = (session.fingerprint, time.monotonic() + NO_IDLE_RETRY_SECONDS)
                log.info("the IMAP server offers no IDLE; polling it", extra={"sender": sender_id})
                return
            await in_imap_thread(mailbox.keep_alive)
            await in_imap_thread(mailbox.select_inbox, readonly=True)
            await in_imap_thread(mailbox.idle_start)
            mailbox.bounds.pace = None  # set up: from now on each call has its own deadline
            watching = True
            log.info("watching a mailbox (IDLE)", extra={"sender": sender_id})
            if await self.check(sender_id, session.user_id) is not None:  # what came while nobody watched
                outcome = await self._watch(session, mailbox)
            else:
                outcome = "failed"
        except ImapProblem as exc:
            outcome = "failed"
            log.info("cannot watch a mailbox", extra={"sender": sender_id, "problem": exc.problem.detail})
            await self._slow_setup(loaded, exc)
        except asyncio.CancelledError:
            outcome = "cancelled"
            if mailbox is not None:
                mailbox.abort()
            raise
        except Exception as exc:  # the connection dropped, the server misbehaved
            outcome = "dropped"
            log.warning("a watched mailbox's connection failed", extra={"sender": sender_id, "error": repr(exc)[:300]})
            if not watching and await self._slow_setup(loaded, exc):
                outcome = "failed"  # no look at once after it: the server waits out its back-off
        finally:
            await self._end(session, mailbox, outcome)

    async def _slow_setup(self, loaded: tuple[Any, ImapAccount] | None, exc: Exception) -> bool:
        """Put a setup the server made too slow on the sender as its slow look (reader.py); False
        when the setup failed otherwise."""
        if loaded is None:
            return False
        row, account = loaded
        if isinstance(exc, ImapProblem):
            problem: VerifyProblem | None = exc.problem
        else:
            problem = bound_problem(exc, account) if isinstance(exc, TimeoutError) else None
        if problem is None or problem.kind not in SLOW_KINDS:
            return False
        try:
            await save_problem(self.db, row, account, problem, release=False)  # the claim is released in _end
        except Exception:  # the session ends all the same; the next setup tries again
            log.warning("saving a watched mailbox's problem failed", extra={"sender": row["id"]}, exc_info=True)
        return True

    async def _watch(self, session: _Session, mailbox: Mailbox) -> str:
        """Idle until told to stop; "failed" when a look failed (the poller takes over)."""
        reissue_at = time.monotonic() + REISSUE_SECONDS
        fd = mailbox.fileno()
        while session.reason is None:
            heard = None
            if await _readable(fd, session.stopped, reissue_at - time.monotonic()):
                heard = await in_imap_thread(mailbox.idle_read)
            if session.reason is not None:
                break
            if heard == NEWS:
                look = await self.check(session.sender_id, session.user_id)
            elif heard == WOKE or time.monotonic() >= reissue_at:
                # A WOKE may be the server's EOF: leaving IDLE raises if the connection is gone.
                mailbox.allow(CALL_SECONDS)  # the session lasts; each of its calls has a deadline
                await in_imap_thread(mailbox.idle_stop)
                await in_imap_thread(mailbox.idle_start)
                reissue_at = time.monotonic() + REISSUE_SECONDS
                # Mail announced between DONE and the new IDLE may sit unseen in the client's
                # buffer: one look covers it.
                look = await self.check(session.sender_id, session.user_id)
            else:
                continue
            if look is None:
                return "failed"
        return session.reason

    async def _end(self, session: _Session, mailbox: Mailbox | None, outcome: str) -> None:
        sender_id = session.sender_id
        if mailbox is not None:
            mailbox.allow(CLOSE_SECONDS)
            try:
                await asyncio.wait_for(asyncio.shield(in_imap_thread(mailbox.close)), CLOSE_SECONDS)
            except (TimeoutError, asyncio.CancelledError):
                mailbox.abort()
        if outcome == "dropped" and session.reason is None:
            # Mail may have come while the connection was failing: read it now, not a poll later.
            await self.check(sender_id, session.user_id)
        if outcome in ("dropped", "failed"):
            ran_long = time.monotonic() - session.started > STEADY_SECONDS
            failures = 1 if ran_long else self._failures.get(sender_id, 0) + 1  # in a row
            self._failures[sender_id] = failures
            delay = min(5.0 * 2 ** (failures - 1), MAX_BACKOFF_SECONDS)
            self._skip[sender_id] = (session.fingerprint, time.monotonic() + delay)
        elif outcome != "no IDLE":
            self._failures.pop(sender_id, None)
        async with self._claims:
            self.sessions.pop(sender_id, None)
            try:
                async with self.db.acquire() as conn:
                    await conn.execute(
                        "UPDATE senders SET imap_claimed_until = NULL WHERE id = $1 AND imap_claimed_until = $2",
                        sender_id, session.token)
            except Exception:  # the lease runs out on its own
                log.warning("releasing a watched mailbox failed", extra={"sender": sender_id}, exc_info=True)
        log.info("stopped watching a mailbox", extra={"sender": sender_id, "reason": outcome})


async def _readable(fd: int, stopped: asyncio.Event, timeout: float) -> bool:
    """Wait for the server to send something, without a thread: True when the socket is readable,
    False after `timeout` or when the session is told to stop."""
    if timeout <= 0:
        return False
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(fd, wake)
    stop: asyncio.Future[Any] = asyncio.ensure_future(stopped.wait())
    try:
        await asyncio.wait([ready, stop], timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        return ready.done()
    finally:
        loop.remove_reader(fd)
        stop.cancel()
        ready.cancel()
