"""me.com and mac.com are keyed as icloud.com from now on (shared/mailbox_keys.py): Apple delivers
`name@me.com` and `name@mac.com` to the iCloud account `name@icloud.com`. Entries stored under the
old keys are re-keyed so that they still match; where an account held two spellings of one mailbox,
the first entry made is kept, as a second suppression of a mailbox keeps the first reason. Soft
bounce counts are re-keyed too, the highest count kept.

Python, not SQL: the key is `suppression_key`, the rule every path compares by. Only the rows of
those two domains are read.
"""

from __future__ import annotations

from shared.db import Conn
from shared.mailbox_keys import suppression_key

_OLD_KEYS = "split_part(address, '@', -1) IN ('me.com', 'mac.com')"


async def _rekey(conn: Conn, table: str, first_kept: str) -> None:
    """Re-key `table`'s (user_id, address) rows of the old domains; of rows that meet under one
    key, the first in `first_kept` order stays."""
    rows = await conn.fetch(f"SELECT user_id, address FROM {table} WHERE {_OLD_KEYS}")  # noqa: S608 (constants)
    moves = [(r["user_id"], r["address"], suppression_key(r["address"])) for r in rows]
    moves = [move for move in moves if move[1] != move[2]]
    if not moves:
        return
    await conn.execute("CREATE TEMPORARY TABLE rekeyed (user_id bigint, old text, new text)")
    await conn.copy_records_to_table("rekeyed", records=moves)
    await conn.execute(f"""
        WITH meeting AS (
            SELECT t.user_id, t.address, row_number() OVER (
                       PARTITION BY t.user_id, coalesce(r.new, t.address) ORDER BY {first_kept}) AS turn
              FROM {table} t LEFT JOIN rekeyed r ON r.user_id = t.user_id AND r.old = t.address
             WHERE (t.user_id, t.address) IN (SELECT user_id, old FROM rekeyed UNION SELECT user_id, new FROM rekeyed))
        DELETE FROM {table} t USING meeting m
         WHERE m.turn > 1 AND t.user_id = m.user_id AND t.address = m.address""")  # noqa: S608 (constants)
    await conn.execute(f"UPDATE {table} t SET address = r.new FROM rekeyed r"  # noqa: S608 (constants)
                       " WHERE t.user_id = r.user_id AND t.address = r.old")
    await conn.execute("DROP TABLE rekeyed")


async def migrate(conn: Conn) -> None:
    await _rekey(conn, "suppressed", "t.created_at, t.address")
    await _rekey(conn, "soft_bounces", "t.count DESC, t.last_at DESC, t.address")
