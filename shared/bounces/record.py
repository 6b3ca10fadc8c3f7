"""A recognised bounce written down: the recipient `bounced` with the report's status and words,
the address suppressed (hard bounces at once, soft ones after SOFT_LIMIT in a row), and the
bounce message remembered so that reading the mailbox again never records it twice."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from shared import suppressions
from shared.bounces.dsn import Bounce, BouncedRecipient
from shared.db import Conn

# Soft bounces (mailbox full, greylisting that gave up, a server down) of one mailbox in a row
# before it is suppressed too: three campaigns that could not get through is a mailbox nobody reads.
SOFT_LIMIT = 3
# How far back a bounce without our Message-ID is matched by address alone.
MATCH_DAYS = 30


@dataclass(frozen=True)
class SenderRef:
    id: int
    user_id: int
    from_email: str


def message_key(raw: bytes, message_id: str | None) -> str:
    return message_id.strip()[:300] if message_id else "sha256:" + hashlib.sha256(raw).hexdigest()


async def record(conn: Conn, sender: SenderRef, bounce: Bounce, key: str) -> int:
    """Record one bounce message (in the caller's transaction); returns recipients marked bounced.
    A message recorded before (same key, same sender) changes nothing."""
    first_time = await conn.fetchval(
        "INSERT INTO bounce_messages (sender_id, message_key) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING 1",
        sender.id, key,
    )
    if first_time is None:
        return 0
    marked = 0
    for failed in bounce.recipients:
        marked += await _record_recipient(conn, sender, bounce, failed)
    return marked


async def _record_recipient(conn: Conn, sender: SenderRef, bounce: Bounce, failed: BouncedRecipient) -> int:
    reply = f"{failed.status or ('5.0.0' if failed.permanent else '4.0.0')} {failed.diagnostic}".strip()[:1000]
    address = suppressions.suppression_key(failed.address)
    row = None
    if bounce.campaign_id is not None and bounce.position is not None:
        # Our own Message-ID came back: that recipient, if the campaign is this account's.
        row = await conn.fetchrow(
            "SELECT r.campaign_id, r.position, r.email FROM recipients r JOIN campaigns c ON c.id = r.campaign_id"
            " WHERE r.campaign_id = $1 AND r.position = $2 AND c.user_id = $3",
            bounce.campaign_id, bounce.position, sender.user_id)
        if row is not None and suppressions.suppression_key(row["email"]) != address and len(bounce.recipients) > 1:
            row = None  # a report about several recipients: match each by address below
    if row is None:
        # No usable Message-ID (many servers return only part of the headers): the latest
        # message this sender sent to that address recently.
        candidates = await conn.fetch(
            "SELECT r.campaign_id, r.position, r.email FROM recipients r JOIN campaigns c ON c.id = r.campaign_id"
            " WHERE c.sender_id = $1 AND lower(r.email) = lower($2) AND r.status IN ('sent', 'bounced')"
            " AND r.updated_at > now() - make_interval(days => $3) ORDER BY r.updated_at DESC LIMIT 1",
            sender.id, failed.address, MATCH_DAYS)
        row = candidates[0] if candidates else None
    if row is None:
        return 0  # about mail Sendpy did not send (the user's own): not ours to act on
    updated = await conn.fetchval(
        "UPDATE recipients SET status = 'bounced', reply = $3, updated_at = now()"
        " WHERE campaign_id = $1 AND position = $2 AND status IN ('sent', 'bounced') RETURNING 1",
        row["campaign_id"], row["position"], reply)
    marked = 1 if updated else 0
    campaign_id, email = row["campaign_id"], row["email"]
    if failed.permanent:
        await suppressions.add(conn, sender.user_id, [email], "hard_bounce", campaign_id=campaign_id,
                               sender_email=sender.from_email, detail=reply)
    else:
        count = await conn.fetchval(
            "INSERT INTO soft_bounces (user_id, address, count) VALUES ($1, $2, 1)"
            " ON CONFLICT (user_id, address) DO UPDATE SET count = soft_bounces.count + 1, last_at = now()"
            " RETURNING count",
            sender.user_id, address)
        if count >= SOFT_LIMIT:
            await suppressions.add(conn, sender.user_id, [email], "soft_bounce", campaign_id=campaign_id,
                                   sender_email=sender.from_email, detail=reply)
    return marked
