"""One suppression list per user account (it was one per sender, and deleted with the sender).

Python, not SQL: the entries kept so far are re-keyed with `suppression_key`, the rule every path
compares by. Campaign and sender are kept by value, so deleting them keeps the entry.
"""

from __future__ import annotations

from shared.db import Conn
from shared.suppressions import suppression_key

_REASONS = {"unsubscribed": "unsubscribed", "manual": "manual", "bounced": "hard_bounce"}


async def migrate(conn: Conn) -> None:
    await conn.execute(
        """
        CREATE TABLE suppressed (
            user_id       bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            address       text NOT NULL,   -- suppression_key(email): what "the same mailbox" means
            email         text NOT NULL,   -- as it was first suppressed
            reason        text NOT NULL CHECK (reason IN
                              ('unsubscribed', 'hard_bounce', 'soft_bounce', 'complaint', 'manual', 'imported')),
            campaign_id   uuid,            -- where it came from; no foreign key, so it outlives the campaign
            sender_email  text,            -- the From address it came through, by value
            detail        text,            -- e.g. a bounce's status and diagnostic
            created_at    timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (user_id, address)
        )
        """
    )
    kept = await conn.fetch(
        "SELECT d.user_id, s.email, s.reason, s.created_at, d.from_email FROM suppressions s"
        " JOIN senders d ON d.id = s.sender_id ORDER BY s.created_at"
    )
    first: dict[tuple[int, str], tuple[object, ...]] = {}
    for row in kept:
        address = suppression_key(row["email"])
        first.setdefault((row["user_id"], address), (
            row["user_id"], address, row["email"], _REASONS.get(row["reason"], "manual"), row["from_email"],
            row["created_at"]))
    await conn.copy_records_to_table(
        "suppressed", records=list(first.values()),
        columns=["user_id", "address", "email", "reason", "sender_email", "created_at"])
    await conn.execute("DROP TABLE suppressions")
