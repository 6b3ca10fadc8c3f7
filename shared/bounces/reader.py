"""The bounce worker's work: which senders' INBOXes are due, and reading one of them.

Each check reads the messages that arrived since the last (by UID; if the server renumbered the
mailbox — a new UIDVALIDITY — since the last check's day, and the first time since the sender was
created), in batches of FETCH_BATCH, at most MAX_BATCHES per look so that one huge mailbox cannot
hold a slot; a look that stops there is followed at once by another, after its turn for a slot (a
watched sender's next look would otherwise wait for new mail or IDLE's 25-minute re-issue: a new
bounce behind 8,000 old messages waited hours). Oldest first: a backlog is read through in minutes
this way (1,000 a look), and reading newest first would need a second place to remember — what lies
between — for a gain of those minutes; the place reached is saved with each batch's outcomes, in one
transaction, so a crash re-reads at most one batch and `bounce_messages` keeps that from counting
twice. The INBOX is opened read-only and nothing is ever deleted; with `imap_move_bounces` bounces
of Sendpy's own mail (carrying its keyed tag) are moved to the folder BOUNCE_FOLDER, «Возвраты
Sendpy (bounces)» (or to the «Sendpy bounces» of before, where the mailbox has it).

One mailbox is read by one look at a time: a look runs under the sender's claim
(`imap_claimed_until`), taken by `due_senders` for a poll or held by an IDLE session (idle.py),
and kept until the look ends, not merely until its first batch is saved.

Slow servers (issue 11): a look holds one of the worker's few slots, and a look under way cannot
be taken back, so four servers that send a few bytes a second — inside every read timeout — held
all four for the look's 5 minutes while everyone else's bounces waited. Each answer is therefore
held to PACE (it must begin within 20 s, then come at 16 KB/s on average): a server that makes no
real progress ends its look in seconds, with the "too slow" problem on the sender in both
languages, and a look cut short that way (or by the deadline, or a silent server) keeps the server
from the next ones for a while, as the SMTP side does (shared/delivery/slowness.py): a minute,
doubling with each slow look in a row up to an hour (`imap_slow_until`, honoured by the poller and
by IDLE sessions alike); a look that ends normally clears it. The pace alone let a server that
thinks 19 s before every answer, then answers at once, hold a slot for 133 s a look (or the whole
5 minutes, given commands enough) and count as fine: so the time a look's answers take to begin
is summed (PACE.wait), and a look that waited long in all counts as slow even when it ended.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import time
from email.parser import BytesHeaderParser
from typing import Any

import asyncpg

from shared import imap_accounts
from shared.bounces.dsn import Bounce, parse_bounce
from shared.bounces.record import SenderRef, carries_our_tag, message_key, record
from shared.crypto import KeyProvider, open_sealed
from shared.errors import translate
from shared.imap_accounts import ImapAccount, ImapProblem, explain, in_imap_thread, open_mailbox
from shared.imap_connection import CallTimedOut, Pace, Stalled, TooSlow
from shared.imap_mailbox import FETCH_BATCH, Mailbox
from shared.mail.messenger import ConnectPolicy
from shared.smtp_accounts import VerifyProblem

log = logging.getLogger("sendpy.bounces")

MAX_BATCHES = 20
# Named in both languages: the folder is the user's, in a mail client in Russian or English, and
# nothing tells which (the account has no language; the mailbox's owner may not be the account's).
BOUNCE_FOLDER = "Возвраты Sendpy (bounces)"
# Its English-only name of before: a mailbox that has it keeps it, so the bounces stay in one place.
OLD_BOUNCE_FOLDER = "Sendpy bounces"
CLAIM_SECONDS = 600
# A whole look (connect, log in, every batch) ends within this, however slowly the server sends:
# well inside the claim, so no other worker starts on the mailbox while this one still reads it.
LOOK_SECONDS = 300.0
# What every answer of a look must keep up with: a server may think for STALL seconds, then must
# send 16 KB a second on average (a 2 MB message in two minutes), counted from its command; and
# all the look's answers may take `wait` seconds in all to begin (connect and TLS included). A
# healthy server begins an answer within a round trip and a lookup, a tenth of a second to one;
# Gmail, Yandex or Outlook under load take a few seconds for LOGIN, rarely more, and a look is
# about six answers (log in, open INBOX, search, fetch): 30 s is five times that slow a look, and
# a look of many batches stops (to go on after its turn) once it has waited half of it.
PACE = Pace(stall=20.0, rate=16 * 1024, wait=30.0)
# A look that ended, but whose answers took more than this in all to begin and more than a second
# each on average, counts as slow too: a server thinking 3 s before each answer held a slot 20 s.
SLOW_WAIT_SECONDS = 10.0
SLOW_WAIT_PER_ANSWER = 1.0
# A server found slow is not looked at again for this long, doubled with each slow look in a row.
SLOW_BACKOFF_SECONDS = 60.0
MAX_SLOW_BACKOFF_SECONDS = 3600.0
# Problems that held a slot by the server's slowness.
SLOW_KINDS = {"slow", "too_slow", "timeout", "stalled", "stalling"}


def slow_backoff(strikes: int) -> float:
    """How long a server waits for its next look after `strikes` slow looks in a row."""
    return min(SLOW_BACKOFF_SECONDS * 2.0 ** max(strikes - 1, 0), MAX_SLOW_BACKOFF_SECONDS)


async def due_senders(db: asyncpg.Pool, every_seconds: float, limit: int = 20, *, per_user: int = 1_000_000,
                      load: dict[int, int] | None = None) -> list[tuple[int, int]]:
    """Claim senders whose INBOX is due a look (not looked at for `every_seconds`, not claimed by
    another worker); a claim lapses after CLAIM_SECONDS if its worker died. Returns (sender, user).

    Round-robin by who waited longest: each account's most overdue sender first, then its next,
    and among those the accounts looked at least lately first (a new account's sender does not
    wait behind the many never-read senders of another); an account with `load[user]` looks
    already under way in this worker gets at most `per_user` minus those, so fifty senders of one
    account cannot take every place. A server found slow waits out its back-off."""
    busy = load or {}
    async with db.acquire() as conn:
        rows = await conn.fetch(
            """
            WITH load AS (SELECT * FROM unnest($4::bigint[], $5::int[]) AS l(user_id, busy)),
            ranked AS (
                SELECT id, user_id, imap_checked_at,
                       row_number() OVER (PARTITION BY user_id ORDER BY imap_checked_at NULLS FIRST, id) AS turn
                  FROM senders
                 WHERE imap_host IS NOT NULL
                   AND (imap_claimed_until IS NULL OR imap_claimed_until < now())
                   AND (imap_slow_until IS NULL OR imap_slow_until < now())
                   AND (imap_checked_at IS NULL OR imap_checked_at < now() - make_interval(secs => $1))),
            looked AS (SELECT user_id, max(imap_checked_at) AS at FROM senders
                        WHERE imap_host IS NOT NULL AND user_id IN (SELECT user_id FROM ranked) GROUP BY user_id),
            picked AS (
                SELECT s.id FROM senders s JOIN ranked r ON r.id = s.id LEFT JOIN load l ON l.user_id = r.user_id
                  JOIN looked k ON k.user_id = r.user_id
                 WHERE r.turn <= $6 - coalesce(l.busy, 0)
                   AND (s.imap_claimed_until IS NULL OR s.imap_claimed_until < now())
                 ORDER BY r.turn, k.at NULLS FIRST, r.imap_checked_at NULLS FIRST, s.id
                 LIMIT $2 FOR UPDATE OF s SKIP LOCKED)
            UPDATE senders s SET imap_claimed_until = now() + make_interval(secs => $3)
              FROM picked WHERE s.id = picked.id
            RETURNING s.id, s.user_id
            """,
            every_seconds, limit, CLAIM_SECONDS, list(busy), list(busy.values()), per_user,
        )
    return [(r["id"], r["user_id"]) for r in rows]


def _parse_all(raws: dict[int, bytes]) -> dict[int, tuple[Bounce | None, str]]:
    parsed = {}
    for uid, raw in raws.items():
        header = BytesHeaderParser().parsebytes(raw[:65536])
        message_id = header.get("Message-ID")
        parsed[uid] = (parse_bounce(raw), message_key(raw, str(message_id) if message_id else None))
    return parsed


async def load_account(db: asyncpg.Pool, keys: KeyProvider, sender_id: int) -> tuple[Any, ImapAccount] | None:
    """The sender's row and IMAP account (password opened); None when it has no IMAP settings."""
    async with db.acquire() as conn:
        row = await conn.fetchrow("SELECT * FROM senders WHERE id = $1", sender_id)
    if row is None or row["imap_host"] is None:
        return None
    sealed = row["imap_password_encrypted"] or row["password_encrypted"]
    account = ImapAccount(row["imap_host"], row["imap_port"] or 993, row["imap_username"] or row["username"],
                          await open_sealed(keys, sealed, f"user:{row['user_id']}"))
    return row, account


async def check_sender(db: asyncpg.Pool, keys: KeyProvider, policy: ConnectPolicy, sender_id: int, *,
                       signing_key: bytes, held: bool = False) -> int | None:
    """Read one sender's new mail; returns recipients marked bounced, None when the look failed.
    Problems are written on the sender (shown on its page, in both languages), never raised.

    The caller holds the sender's claim (`imap_claimed_until`); a poller's claim ends with the
    look, a `held` one (an IDLE session's, see idle.py) is left to its holder."""
    marked, more = await look(db, keys, policy, sender_id, signing_key=signing_key, held=held)
    if more and not held:
        await release_claim(db, sender_id)
    return marked


async def look(db: asyncpg.Pool, keys: KeyProvider, policy: ConnectPolicy, sender_id: int, *,
               signing_key: bytes, held: bool = False) -> tuple[int | None, bool]:
    """check_sender, saying also whether the look stopped at MAX_BATCHES with mail left to read.
    Then a poller's claim is kept (renewed) rather than ended: the caller looks again at once,
    after its turn for a slot (worker_image), or calls release_claim."""
    try:
        return await _check(db, keys, policy, sender_id, signing_key, release=not held)
    except asyncio.CancelledError:
        # Shutdown or the worker's time limit: the next worker must not wait out CLAIM_SECONDS.
        if not held:
            await release_claim(db, sender_id)
        raise


async def release_claim(db: asyncpg.Pool, sender_id: int) -> None:
    async with db.acquire() as conn:
        await conn.execute("UPDATE senders SET imap_claimed_until = NULL WHERE id = $1", sender_id)


async def _check(db: asyncpg.Pool, keys: KeyProvider, policy: ConnectPolicy, sender_id: int, signing_key: bytes, *,
                 release: bool) -> tuple[int | None, bool]:
    loaded = await load_account(db, keys, sender_id)
    if loaded is None:
        return 0, False
    row, account = loaded
    sender = SenderRef(row["id"], row["user_id"], row["from_email"], signing_key)
    try:
        mailbox = await open_mailbox(account, policy, seconds=LOOK_SECONDS, pace=PACE)
    except ImapProblem as exc:
        await save_problem(db, row, account, exc.problem, release=release)
        return None, False
    try:
        marked, more = await _read_new(db, mailbox, sender, row, release=release)
        if _stalling(mailbox):  # read, and yet slow: the next look put off all the same
            await save_problem(db, row, account, VerifyProblem(
                "stalling", f"{mailbox.waited:.0f}/{mailbox.bounds.answers}"), release=release)
        return marked, more
    except asyncio.CancelledError:
        mailbox.abort()  # the thread still reading must not hold the stop up for the socket's timeout
        raise
    except Exception as exc:  # a dropped connection, a server error: tried again next time
        log.warning("reading a mailbox failed", extra={"sender": sender_id}, exc_info=True)
        await save_problem(db, row, account, _reading_problem(exc, account, policy, mailbox), release=release)
        return None, False
    finally:
        await in_imap_thread(mailbox.close)


async def _read_new(db: asyncpg.Pool, mailbox: Mailbox, sender: SenderRef, row: Any, *, release: bool
                    ) -> tuple[int, bool]:
    move = bool(row["imap_move_bounces"])
    uidvalidity, uidnext = await in_imap_thread(mailbox.select_inbox, readonly=not move)
    start = row["imap_next_uid"]
    if start is None or row["imap_uidvalidity"] != uidvalidity:
        # First look, or the server renumbered the mailbox: from the sender's creation day, or
        # from the day of the last check (what was recorded then is not recorded again).
        renumbered = start is not None and row["imap_checked_at"] is not None
        since: dt.datetime = row["imap_checked_at"] if renumbered else row["created_at"]
        found = await in_imap_thread(mailbox.first_uid_since, since.date())
        start = uidnext if found is None else found
    marked = fetched = batches = largest = 0
    first = start
    folder: str | None = None
    more = True  # until the place reaches UIDNEXT: the cap, not the mailbox's end, stopped the look
    try:
        for n in range(MAX_BATCHES):
            if start >= uidnext or (n and mailbox.waited > PACE.wait / 2):  # the rest after its turn
                break
            uids, after = await in_imap_thread(mailbox.uids_from, start, uidnext, FETCH_BATCH)
            if not uids:  # a stretch of deleted messages, searched: the place moves past it
                start = after
                continue
            raws = await in_imap_thread(mailbox.fetch, uids)
            parsed = await asyncio.to_thread(_parse_all, raws)
            recognised = []
            async with db.acquire() as conn, conn.transaction():
                for uid in uids:
                    bounce, key = parsed.get(uid, (None, ""))
                    if bounce is not None:
                        if carries_our_tag(sender, bounce):
                            recognised.append(uid)
                        marked += await record(conn, sender, bounce, key)
                start = after  # past these, and past any empty stretch searched with them
                # The claim is kept between batches: checked_at alone does not keep an IDLE
                # session (idle.py) of this or another worker from reading the same mailbox.
                await _save_place(conn, sender.id, uidvalidity, start, release=False)
            fetched, batches, largest = fetched + len(uids), batches + 1, max(largest, len(uids))
            if move and recognised:
                if folder is None:
                    old = await in_imap_thread(mailbox.client.folder_exists, OLD_BOUNCE_FOLDER)
                    folder = OLD_BOUNCE_FOLDER if old else BOUNCE_FOLDER
                await in_imap_thread(mailbox.move, recognised, folder)
        slow = _stalling(mailbox)  # then the caller says so, and no look follows at once
        more = start < uidnext and not slow
        async with db.acquire() as conn:  # a look that ended in time, not waited on: the server is not slow (now)
            await _save_place(conn, sender.id, uidvalidity, start, release=release and not more,
                              renew=release and more, in_time=not slow)
    finally:  # also after a failure: what was fetched (and recorded) before it
        if fetched:
            log.info("mailbox read", extra={"sender": sender.id, "fetched": fetched, "batches": batches,
                                            "largest_batch": largest, "first_uid": first, "next_uid": start,
                                            "more": more})
    return marked, more


async def _save_place(conn: Any, sender_id: int, uidvalidity: int, next_uid: int, *, release: bool,
                      renew: bool = False, in_time: bool = False) -> None:
    await conn.execute(
        "UPDATE senders SET imap_uidvalidity = $2, imap_next_uid = $3, imap_checked_at = now(), imap_problem = NULL,"
        " imap_claimed_until = CASE WHEN $4 THEN NULL WHEN $5 THEN now() + make_interval(secs => $6)"
        " ELSE imap_claimed_until END,"
        " imap_slow_strikes = CASE WHEN $7 THEN 0 ELSE imap_slow_strikes END,"
        " imap_slow_until = CASE WHEN $7 THEN NULL ELSE imap_slow_until END WHERE id = $1",
        sender_id, uidvalidity, next_uid, release, renew, CLAIM_SECONDS, in_time)


def _stalling(mailbox: Mailbox) -> bool:
    """Whether the look's answers, though in time, kept it waiting long (SLOW_WAIT_SECONDS)."""
    waited = mailbox.waited
    return waited > SLOW_WAIT_SECONDS and waited > SLOW_WAIT_PER_ANSWER * max(mailbox.bounds.answers, 1)


def _reading_problem(exc: BaseException, account: ImapAccount, policy: ConnectPolicy, mailbox: Mailbox
                     ) -> VerifyProblem:
    """What went wrong after the log-in. A server too slow for the look's deadline, or silent for
    longer than one read may wait, read "answered something unexpected: timed out"; it is "slow",
    with the bound it overran (a read cut short by the deadline times out as the socket's); one that
    fell behind the pace is "too_slow"."""
    if isinstance(exc, TimeoutError) and not isinstance(exc, TooSlow | Stalled):  # CallTimedOut, socket.timeout
        late = isinstance(exc, CallTimedOut) or time.monotonic() > mailbox.bounds.deadline - 0.5
        return VerifyProblem("slow", f"{LOOK_SECONDS if late else policy.timeout:g}")
    return imap_accounts.bound_problem(exc, account) or VerifyProblem("protocol", str(exc)[:300] or type(exc).__name__)


def _problem_text(problem: VerifyProblem, account: ImapAccount, lang: str, backoff: float) -> str:
    where = {"host": account.host, "port": account.port}
    if problem.kind == "slow":
        text = translate("imap_slow", lang, **where, seconds=problem.detail)
    elif problem.kind == "too_slow":
        received, seconds = problem.detail.split("/")
        text = translate("imap_too_slow", lang, **where, received=received, seconds=seconds,
                         rate=f"{PACE.rate / 1024:g}")
    elif problem.kind in ("stalled", "stalling"):
        seconds, answers = problem.detail.split("/")
        text = translate(f"imap_{problem.kind}", lang, **where, seconds=seconds, answers=answers)
    else:
        text = str(explain(problem, account.host, account.port, lang)["message"])
    if backoff:
        text += " " + translate("imap_next_look_later", lang, minutes=f"{math.ceil(backoff / 60):d}")
    return text


async def save_problem(db: asyncpg.Pool, row: Any, account: ImapAccount, problem: VerifyProblem, *,
                        release: bool) -> None:
    """The problem on the sender, in both languages; a slow server's next look put off."""
    slow = problem.kind in SLOW_KINDS
    backoff = slow_backoff(row["imap_slow_strikes"] + 1) if slow else 0.0
    text = " / ".join(_problem_text(problem, account, lang, backoff) for lang in ("ru", "en"))
    async with db.acquire() as conn:
        await conn.execute(
            "UPDATE senders SET imap_problem = $2, imap_checked_at = now(),"
            " imap_claimed_until = CASE WHEN $3 THEN NULL ELSE imap_claimed_until END,"
            " imap_slow_strikes = imap_slow_strikes + $4::int,"
            " imap_slow_until = CASE WHEN $4 = 1 THEN now() + make_interval(secs => $5) ELSE imap_slow_until END"
            " WHERE id = $1",
            row["id"], text.replace("\x00", "")[:2000], release, int(slow), backoff)
    if slow:
        log.warning("IMAP server too slow: its next look put off", extra={
            "sender": row["id"], "problem": problem.kind, "strikes": row["imap_slow_strikes"] + 1,
            "backoff": backoff})
