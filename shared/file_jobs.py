"""Reading big contact files: a queue in Postgres that the fan-out's file readers work through.

A file over the inline limit is read in full twice: once to count it (the inspection after an
upload or a correction) and once to load its recipients (a campaign start). Either takes seconds
to minutes. Done on the commands topic, it held up every campaign start behind it on its
partition: three 40 MB files delayed another user's one-recipient campaign by 264 s, and a
correction repeated over and over queued a whole new reading each time. Here instead:

- a user has at most `per_user` files being read at once, across every worker, and when one of
  theirs starts, their others go behind everyone already waiting: their fifth file waits behind
  their own, not anyone else's behind theirs;
- a correction supersedes the reading under way (the generation changes, the reading stops
  within a second and never writes its report) and goes to the back of the queue;
- a claim is a lease renewed every second while the reading goes on; a reader that died loses it
  and another worker takes the job over (a load resumes from its last committed chunk);
- a reading has a time limit, and after it (or three failures) the upload fails or the campaign
  pauses with the reason, as work dead-lettered from Kafka does.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from shared.db import Conn

log = logging.getLogger("sendpy.worker")
RENEW_SECONDS = 1.0  # how soon a superseded or withdrawn reading notices and stops
_CLAIM_LOCK = 0x53504A4F4253  # one claimer at a time, so the per-user count it reads holds


@dataclass(frozen=True)
class FileJob:
    subject: uuid.UUID  # the upload (inspect) or the campaign (load)
    kind: str
    user_id: int
    generation: int
    token: uuid.UUID
    attempts: int


class Stopped(Exception):
    """The reading was told to stop: superseded, withdrawn, out of time, or the worker stopping."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


async def enqueue(conn: Conn, subject: uuid.UUID, kind: str, user_id: int, *, supersede: bool) -> None:
    """Queue a reading of `subject`; with `supersede`, one queued or under way is replaced by this
    one at the back of the queue (a correction). Call inside the change's own transaction."""
    if supersede:
        await conn.execute(
            "INSERT INTO file_jobs (subject, kind, user_id) VALUES ($1, $2, $3)"
            " ON CONFLICT (subject) DO UPDATE SET generation = file_jobs.generation + 1, queued_at = now(),"
            " not_before = now(), attempts = 0, last_error = NULL",
            subject, kind, user_id)
    else:
        await conn.execute(
            "INSERT INTO file_jobs (subject, kind, user_id) VALUES ($1, $2, $3) ON CONFLICT (subject) DO NOTHING",
            subject, kind, user_id)


async def withdraw(conn: Conn, subject: uuid.UUID) -> None:
    """Forget the reading of `subject` (a deleted upload); one under way stops within a second."""
    await conn.execute("DELETE FROM file_jobs WHERE subject = $1", subject)


async def queued(conn: Conn, subject: uuid.UUID) -> bool:
    return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM file_jobs WHERE subject = $1)", subject))


async def claim(db: asyncpg.Pool, lease: float, per_user: int) -> FileJob | None:
    """The oldest due job whose user has fewer than `per_user` readings under way, now ours."""
    async with db.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _CLAIM_LOCK)
        row = await conn.fetchrow(
            """
            UPDATE file_jobs SET token = $1, claimed_until = now() + make_interval(secs => $2)
             WHERE subject = (
                SELECT j.subject FROM file_jobs j
                 WHERE (j.claimed_until IS NULL OR j.claimed_until <= now()) AND j.not_before <= now()
                   AND (SELECT count(*) FROM file_jobs r
                         WHERE r.user_id = j.user_id AND r.claimed_until > now()) < $3
                 ORDER BY j.queued_at LIMIT 1)
               -- Checked again on the row itself: a reader that renewed meanwhile keeps it.
               AND (claimed_until IS NULL OR claimed_until <= now())
            RETURNING subject, kind, user_id, generation, token, attempts
            """,
            uuid.uuid4(), lease, per_user,
        )
        if row is None:
            return None
        # The user's other waiting files go behind everyone already waiting: turns go round the
        # users, so one with many files (or many corrections) cannot keep a reader to themselves.
        await conn.execute(
            "UPDATE file_jobs SET queued_at = greatest(queued_at, now()) WHERE user_id = $1 AND subject <> $2"
            " AND (claimed_until IS NULL OR claimed_until <= now())",
            row["user_id"], row["subject"])
    return FileJob(**dict(row))


async def renew(conn: Conn, job: FileJob, lease: float) -> bool:
    """Extend the claim; False once it is no longer ours (superseded, withdrawn, taken over)."""
    return bool(await conn.fetchval(
        "UPDATE file_jobs SET claimed_until = now() + make_interval(secs => $4)"
        " WHERE subject = $1 AND token = $2 AND generation = $3 RETURNING true",
        job.subject, job.token, job.generation, lease))


async def done(conn: Conn, job: FileJob) -> bool:
    """The job is finished: gone from the queue if it was still this generation's (then the caller
    writes its result in the same transaction); False when a newer reading replaced it."""
    return bool(await conn.fetchval(
        "DELETE FROM file_jobs WHERE subject = $1 AND token = $2 AND generation = $3 RETURNING true",
        job.subject, job.token, job.generation))


async def release(conn: Conn, job: FileJob, *, retry_in: float = 0.0, error: str | None = None) -> int:
    """Hand the job back (for another reader, at once or after `retry_in` seconds); with `error`,
    one more failed attempt is counted. Returns the attempts so far."""
    attempts: int | None = await conn.fetchval(
        "UPDATE file_jobs SET token = NULL, claimed_until = NULL,"
        " not_before = now() + make_interval(secs => $3),"
        " attempts = attempts + CASE WHEN $4::text IS NULL THEN 0 ELSE 1 END,"
        " last_error = coalesce($4, last_error) WHERE subject = $1 AND token = $2 RETURNING attempts",
        job.subject, job.token, retry_in, error)
    return attempts or 0


def wait_columns(subject: str) -> str:
    """Columns for a read of `subject` (an SQL expression): whether its reading is waiting, how many
    of the same user's readings are under way or ahead of it, and how many of anyone's."""
    # Built from constants and the caller's column name, never from input.
    waiting = (f"(SELECT j.queued_at FROM file_jobs j WHERE j.subject = {subject}"  # noqa: S608
               " AND (j.claimed_until IS NULL OR j.claimed_until <= now()))")
    ahead = ("(SELECT count(*) FROM file_jobs o WHERE o.subject <> {subject}{mine}"
             " AND (o.claimed_until > now() OR o.queued_at < {waiting}))")
    own = ahead.format(subject=subject, waiting=waiting, mine=(
        f" AND o.user_id = (SELECT j.user_id FROM file_jobs j WHERE j.subject = {subject})"))  # noqa: S608
    return (f"{waiting} IS NOT NULL AS file_waiting, {own} AS file_own_ahead,"
            f" {ahead.format(subject=subject, waiting=waiting, mine='')} AS file_all_ahead")


def waiting_reason(row: Any, then: tuple[str, str]) -> str | None:
    """Why a file's reading has not started, in both languages, from `wait_columns`; `then` says
    (ru, en) what happens by itself once it has."""
    if not row.get("file_waiting"):
        return None
    own, everyone = int(row["file_own_ahead"] or 0), int(row["file_all_ahead"] or 0)
    if own:
        return (f"В очереди за вашим другим файлом, который сейчас читается (ваших файлов впереди: {own})."
                f" {then[0]} / Waiting behind your other file being read ({own} of your files ahead). {then[1]}")
    return (f"Ждёт свободного обработчика файлов (файлов впереди: {everyone}). {then[0]} /"
            f" Waiting for a free file reader ({everyone} files ahead). {then[1]}")


class Reading:
    """A claimed job while it runs: renews the claim every second (with `beat`, e.g. progress, in
    the same breath) and sets `stop` — which the reading thread checks as it goes — once the claim
    is no longer ours or the time limit has passed."""

    def __init__(self, db: asyncpg.Pool, job: FileJob, lease: float, limit: float,
                 beat: Callable[[Conn], Awaitable[None]] | None = None) -> None:
        self.db = db
        self.job = job
        self.lease = lease
        self.deadline = time.monotonic() + limit
        self.beat = beat
        self.stop = threading.Event()
        self.why = ""
        self._renewer: asyncio.Task[None] | None = None

    def halt(self, why: str) -> None:
        if not self.stop.is_set():
            self.why = why
            self.stop.set()

    def check(self) -> None:
        """Raise Stopped if the reading must stop (safe in any thread)."""
        if self.stop.is_set():
            raise Stopped(self.why)

    async def fence(self, conn: Conn) -> None:
        """Inside a transaction that writes the reading's work: renew, or raise Stopped, so that two
        readers never both write (a reader thought dead that was only slow)."""
        self.check()
        if not await renew(conn, self.job, self.lease):
            self.halt("superseded")
            raise Stopped(self.why)

    async def _renew(self) -> None:
        while not self.stop.is_set():
            await asyncio.sleep(RENEW_SECONDS)
            if time.monotonic() > self.deadline:
                self.halt("time limit")
                return
            try:
                async with self.db.acquire() as conn:
                    if not await renew(conn, self.job, self.lease):
                        self.halt("superseded")
                        return
                    if self.beat is not None:
                        await self.beat(conn)
            except Exception:  # Postgres away for a moment: the lease is longer than this
                log.warning("renewing a file's claim failed; will retry", exc_info=True)

    async def __aenter__(self) -> Reading:
        self._renewer = asyncio.create_task(self._renew())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._renewer is not None
        self._renewer.cancel()
        await asyncio.gather(self._renewer, return_exceptions=True)
