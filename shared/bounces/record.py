"""A recognised bounce written down: the recipient `bounced` with the report's status and words,
the address suppressed (hard bounces at once, soft ones after SOFT_LIMIT in a row), and the
bounce message remembered (REMEMBER_DAYS) so that reading the mailbox again never records it twice.

Which recipient: only the one a keyed tag of ours names. Our Message-ID is
`<campaign.position.tag@domain>`, the tag a MAC of campaign, position, account and the recipient's
address under the signing key (shared/unsubscribe.py), and a report must carry it back (DSNs
return at least the original's headers). A guessed or old-style Message-ID, a wrong tag, a report
naming only an address: not ours, nothing changes. A report about several addresses acts only on
the one that message went to. While the campaign exists its row is checked and marked `bounced`;
after the campaign (or a test send, which has no row) the tag still proves the address, and the
suppression lands on the list of the account whose mailbox the report came to — the tag holds
that account, so another account's reports never match.

A delay notice (`Action: delayed`, "will retry") is not a bounce: nothing is recorded, the
recipient stays `sent`.

Soft bounces count per mailbox of the account, and only in a row: a soft bounce continues the
count when no message to that address sent between the previous soft-bounced one and this one is
still `sent` (accepted and never bounced — delivered, as far as anyone can tell) and the two were
sent less than SOFT_WINDOW_DAYS apart; otherwise it starts again at 1. A message counts once,
however many reports of it arrive and whether or not its campaign still exists: each counted
message is kept by campaign and position (`soft_bounced_messages`, REMEMBER_SOFT_DAYS).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import uuid
from dataclasses import dataclass
from typing import Any

from shared import suppressions
from shared.bounces.dsn import Bounce, BouncedRecipient
from shared.db import Conn
from shared.unsubscribe import message_tag

# Soft bounces (mailbox full, greylisting that gave up, a server down) of one mailbox in a row
# before it is suppressed too: three campaigns that could not get through is a mailbox nobody reads.
SOFT_LIMIT = 3
# Soft bounces of messages sent further apart than this are not "in a row" (a quarterly newsletter
# to a mailbox that was full once a year is not a dead mailbox).
SOFT_WINDOW_DAYS = 90
# How long a recorded bounce message is remembered (see forget_old).
REMEMBER_DAYS = 120
# How long a message counted as soft-bounced is remembered, so that another report of it counts
# nothing: well past SOFT_WINDOW_DAYS and REMEMBER_DAYS (one small row per soft-bounced message).
REMEMBER_SOFT_DAYS = 400


@dataclass(frozen=True)
class SenderRef:
    id: int
    user_id: int
    from_email: str
    signing_key: bytes  # checks the tags in our Message-IDs (shared/unsubscribe.signing_key)


def message_key(raw: bytes, message_id: str | None) -> str:
    return message_id.strip()[:300] if message_id else "sha256:" + hashlib.sha256(raw).hexdigest()


async def record(conn: Conn, sender: SenderRef, bounce: Bounce, key: str) -> int:
    """Record one bounce message (in the caller's transaction); returns recipients marked bounced.
    A message recorded before (same key, same sender) changes nothing. Only a report whose tag
    checks out is remembered: any other changes nothing, so reading it again changes nothing
    either (a hostile server's endless untagged "bounces" wrote 8,000 rows a minute)."""
    failures = [failed for failed in bounce.recipients if not failed.delayed]
    if bounce.campaign_id is None or bounce.position is None or bounce.tag is None or not failures:
        return 0  # a delay notice, or no tag of ours: the user's own mail, old mail, or a forgery
    campaign_id, position = bounce.campaign_id, bounce.position

    def tagged(address_key: str) -> bool:
        expected = message_tag(sender.signing_key, campaign_id, position, sender.user_id, address_key)
        return hmac.compare_digest(expected, bounce.tag or "")

    row = await conn.fetchrow(
        "SELECT r.email, r.status, r.updated_at FROM recipients r JOIN campaigns c ON c.id = r.campaign_id"
        " WHERE r.campaign_id = $1 AND r.position = $2 AND c.user_id = $3",
        campaign_id, position, sender.user_id)
    if row is not None:
        if not any(tagged(k) for k in suppressions.tag_keys(row["email"])):  # the key(s) the tag was made with
            return 0
        if len(failures) > 1:  # the other addresses were not this message's recipients
            mine = suppressions.suppression_key(row["email"])
            failures = [f for f in failures if suppressions.suppression_key(f.address) == mine]
        if not failures or not await _first_time(conn, sender, key):
            return 0
        # One address: ours, even if the report names where it was forwarded to.
        return await _record_failure(conn, sender, bounce, failures[0], row["email"], row)
    for failed in failures:  # no row (a deleted campaign, a test send): the tag proves the address
        if any(tagged(k) for k in suppressions.tag_keys(failed.address)):
            if not await _first_time(conn, sender, key):
                return 0
            return await _record_failure(conn, sender, bounce, failed, failed.address, None)
    return 0


async def _first_time(conn: Conn, sender: SenderRef, key: str) -> bool:
    first = await conn.fetchval(
        "INSERT INTO bounce_messages (sender_id, message_key) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING 1",
        sender.id, key)
    return first is not None


async def forget_old(conn: Conn) -> int:
    """Forget bounce messages recorded more than REMEMBER_DAYS ago, and soft-bounced messages
    counted more than REMEMBER_SOFT_DAYS ago; returns how many. Only a mailbox renumbered since (a
    new UIDVALIDITY) reads them again, and a hard bounce read again changes nothing: its recipient
    is bounced and suppressed already."""
    deleted = await conn.fetchval(
        "WITH gone AS (DELETE FROM bounce_messages WHERE recorded_at < now() - make_interval(days => $1)"
        " RETURNING 1), soft AS (DELETE FROM soft_bounced_messages"
        " WHERE recorded_at < now() - make_interval(days => $2) RETURNING 1)"
        " SELECT (SELECT count(*) FROM gone) + (SELECT count(*) FROM soft)", REMEMBER_DAYS, REMEMBER_SOFT_DAYS)
    return int(deleted)


def carries_our_tag(sender: SenderRef, bounce: Bounce) -> bool:
    """Whether the report names one of this account's messages by its keyed tag: only those are
    moved out of the user's INBOX (a forged or foreign report stays where it landed)."""
    if bounce.campaign_id is None or bounce.position is None or bounce.tag is None:
        return False
    for failed in bounce.recipients:
        for key in suppressions.tag_keys(failed.address):
            expected = message_tag(sender.signing_key, bounce.campaign_id, bounce.position, sender.user_id, key)
            if hmac.compare_digest(expected, bounce.tag):
                return True
    return False


async def _record_failure(conn: Conn, sender: SenderRef, bounce: Bounce, failed: BouncedRecipient, email: str,
                          row: Any) -> int:
    assert bounce.campaign_id is not None and bounce.position is not None
    reply = f"{failed.status or ('5.0.0' if failed.permanent else '4.0.0')} {failed.diagnostic}".strip()[:1000]
    marked = 0
    if row is not None:
        updated = await conn.fetchval(
            "UPDATE recipients SET status = 'bounced', reply = $3, updated_at = now()"
            " WHERE campaign_id = $1 AND position = $2 AND status IN ('sent', 'bounced') RETURNING 1",
            bounce.campaign_id, bounce.position, reply)
        marked = 1 if updated else 0
    if failed.permanent:
        await suppressions.add(conn, sender.user_id, [email], "hard_bounce", campaign_id=bounce.campaign_id,
                               sender_email=sender.from_email, detail=reply)
        return marked
    if row is not None and row["status"] == "bounced":
        return marked  # this message was counted when it bounced the first time
    if not await _first_soft_report(conn, sender.user_id, bounce.campaign_id, bounce.position):
        return marked  # counted already, though its campaign (and so its row) may be gone since
    sent_at = row["updated_at"] if row is not None and row["status"] == "sent" else dt.datetime.now(dt.UTC)
    count = await _count_soft(conn, sender.user_id, email, bounce.campaign_id, bounce.position, sent_at)
    if count >= SOFT_LIMIT:
        await suppressions.add(conn, sender.user_id, [email], "soft_bounce", campaign_id=bounce.campaign_id,
                               sender_email=sender.from_email, detail=reply)
    return marked


async def _first_soft_report(conn: Conn, user_id: int, campaign_id: uuid.UUID, position: int) -> bool:
    """Whether this is the first soft bounce recorded for that message. Kept by the message's
    campaign and position, not by the report (a server may report one message twice, in two
    reports with their own Message-IDs) nor by the recipient's row (gone with its campaign)."""
    first = await conn.fetchval(
        "INSERT INTO soft_bounced_messages (user_id, campaign_id, position) VALUES ($1, $2, $3)"
        " ON CONFLICT DO NOTHING RETURNING 1", user_id, campaign_id, position)
    return first is not None


async def _count_soft(conn: Conn, user_id: int, email: str, campaign_id: uuid.UUID, position: int,
                      sent_at: dt.datetime) -> int:
    """The mailbox's soft bounces in a row, this one included (see the module's docstring)."""
    address = suppressions.suppression_key(email)
    previous = await conn.fetchrow(
        "SELECT count, last_campaign_id, last_position, last_sent_at FROM soft_bounces"
        " WHERE user_id = $1 AND address = $2 FOR UPDATE", user_id, address)
    if previous is not None and (previous["last_campaign_id"], previous["last_position"]) == (campaign_id, position):
        return int(previous["count"])
    count = 1
    if previous is not None and previous["last_sent_at"] is not None:
        earlier, later = sorted((previous["last_sent_at"], sent_at))  # reports may arrive out of order
        if later - earlier <= dt.timedelta(days=SOFT_WINDOW_DAYS) and not await _delivered_between(
                conn, user_id, email, earlier, later):
            count = previous["count"] + 1
    latest = previous is None or previous["last_sent_at"] is None or sent_at >= previous["last_sent_at"]
    await conn.execute(
        "INSERT INTO soft_bounces (user_id, address, count, last_campaign_id, last_position, last_sent_at)"
        " VALUES ($1, $2, $3, $4, $5, $6)"
        " ON CONFLICT (user_id, address) DO UPDATE SET count = $3, last_at = now(),"
        " last_campaign_id = CASE WHEN $7 THEN $4 ELSE soft_bounces.last_campaign_id END,"
        " last_position = CASE WHEN $7 THEN $5 ELSE soft_bounces.last_position END,"
        " last_sent_at = GREATEST(soft_bounces.last_sent_at, $6)",
        user_id, address, count, campaign_id, position, sent_at, latest)
    return count


async def _delivered_between(conn: Conn, user_id: int, email: str, after: dt.datetime, before: dt.datetime) -> bool:
    """A message of the account's to that address, sent strictly between the two times, that is
    still `sent`. Only campaigns that were sending in that span are read (usually none or one)."""
    found = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM campaigns c JOIN recipients r ON r.campaign_id = c.id"
        " WHERE c.user_id = $1 AND c.started_at < $4 AND (c.finished_at IS NULL OR c.finished_at > $3)"
        " AND r.status = 'sent' AND lower(r.email) = lower($2) AND r.updated_at > $3 AND r.updated_at < $4)",
        user_id, email, after, before)
    return bool(found)
