"""The fan-out's file readers: big contact files read beside the commands topic, never in front of it.

A few readings at a time per worker (`file_readers`), taken from the queue in Postgres
(shared/file_jobs.py) oldest first, at most `file_readers_per_user` of one user at once across
every worker. A reading runs in a thread with its claim renewed every second; the outcome of each
is one of: done (the job wrote its result), stopped (superseded, withdrawn or the worker stopping:
handed back at once, so the newer reading or another worker goes on without waiting out the
lease), out of time or failed three times (the upload fails, the campaign pauses, with the
reason), or a passing outage of Postgres or S3 (handed back, retried).
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from shared import fanout, file_jobs, uploads
from shared.campaigns import states
from shared.commands import Publish
from shared.file_jobs import FileJob, Reading, Stopped
from shared.send_window import Window
from shared.settings import Settings
from shared.storage import UploadStore
from worker_image.consume import is_transient

log = logging.getLogger("sendpy.worker")

ATTEMPTS = 3  # as the consume loop's, before the work is given up with its reason
RETRY_SECONDS = 5.0


class FileReaders:
    def __init__(self, db: asyncpg.Pool, store: UploadStore, publish: Publish, window: Window,
                 settings: Settings) -> None:
        self._db = db
        self._store = store
        self._publish = publish
        self._window = window
        self._settings = settings
        self._slots = settings.file_readers
        self._wake = asyncio.Event()
        self._running: dict[asyncio.Task[None], Reading] = {}

    def wake(self) -> None:
        """Look for work now (a campaign command just queued a load)."""
        self._wake.set()

    async def run(self, stopping: asyncio.Event) -> None:
        """Claim and run readings until `stopping`; then stop those under way and hand them back."""
        interval = min(self._settings.waker_interval, 1.0)
        try:
            while not stopping.is_set():
                self._wake.clear()
                try:
                    await self._take_what_fits()
                except Exception:
                    log.warning("claiming a file to read failed; will retry", exc_info=True)
                waiters = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stopping.wait())]
                try:
                    await asyncio.wait([*waiters, *self._running], timeout=interval,
                                       return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for waiter in waiters:
                        waiter.cancel()
        finally:
            # Stopped (or cancelled): the readings stop within a second and hand their files back,
            # so another worker goes on at once instead of after the lease.
            for reading in self._running.values():
                reading.halt("worker stopping")
            if self._running:
                await asyncio.wait(list(self._running), timeout=10)

    async def _take_what_fits(self) -> None:
        while len(self._running) < self._slots:
            job = await file_jobs.claim(self._db, self._settings.file_job_lease_seconds,
                                        self._settings.file_readers_per_user)
            if job is None:
                return
            reading = Reading(self._db, job, self._settings.file_job_lease_seconds, self._settings.file_job_seconds)
            task = asyncio.create_task(self._read(reading))
            self._running[task] = reading
            task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._running.pop(task, None)
        self._wake.set()  # a place is free

    async def _read(self, reading: Reading) -> None:
        job = reading.job
        extra = {"kind": job.kind, "subject": str(job.subject), "user": job.user_id}
        log.info("reading a file", extra=extra)
        try:
            async with reading:
                if job.kind == "inspect":
                    await uploads.inspect(self._db, self._store, reading)
                else:
                    await fanout.load(self._db, self._store, reading, self._publish, self._window,
                                      self._settings.fanout_chunk_rows)
            log.info("file read", extra=extra)
            # Nothing to hand back when the job recorded its result; one that lost to a correction
            # at the last moment gives its place to the newer reading at once, not after the lease.
            await self._hand_back(job)
        except Stopped as stopped:
            log.info("reading stopped", extra={**extra, "why": stopped.why})
            if stopped.why == "time limit":
                await self._give_up(job, None)
            else:  # superseded (the newer reading may start now), withdrawn, or the worker stopping
                await self._hand_back(job)
        except Exception as exc:
            if is_transient(exc):
                log.warning("reading a file failed for a moment; will retry", exc_info=True, extra=extra)
                await self._hand_back(job, RETRY_SECONDS)
                return
            error = f"{type(exc).__name__}: {exc}"
            log.warning("reading a file failed", exc_info=True, extra=extra)
            async with self._db.acquire() as conn:
                attempts = await file_jobs.release(conn, job, retry_in=RETRY_SECONDS, error=error[:1000])
            if attempts >= ATTEMPTS:
                await self._give_up(job, error)

    async def _hand_back(self, job: FileJob, retry_in: float = 0.0) -> None:
        try:
            async with self._db.acquire() as conn:
                await file_jobs.release(conn, job, retry_in=retry_in)
        except Exception:  # its lease runs out instead
            log.warning("could not hand a file back; its lease will", exc_info=True)

    async def _give_up(self, job: FileJob, error: str | None) -> None:
        """Out of time (`error` None) or failing again and again: say so where the user looks."""
        minutes = max(round(self._settings.file_job_seconds / 60), 1)
        async with self._db.acquire() as conn, conn.transaction():
            await file_jobs.withdraw(conn, job.subject)
            if job.kind == "inspect":
                if error is None:
                    await uploads.too_slow(conn, job.subject, minutes)
                else:
                    await uploads.could_not_inspect(conn, job.subject, error)
            else:
                reason = states.loading_too_slow(minutes) if error is None else states.could_not_process(error)
                await states.pause(conn, job.subject, reason)
        log.warning("gave up reading a file", extra={"kind": job.kind, "subject": str(job.subject), "error": error})
