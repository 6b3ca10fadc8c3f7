"""SMTP accounts as the workers use them: decrypted on demand, never logged."""

from __future__ import annotations

from dataclasses import dataclass

from shared.crypto import KeyProvider, open_sealed
from shared.db import Conn
from shared.mail.messenger import SmtpAccount


@dataclass(frozen=True)
class Sender:
    id: int
    user_id: int
    from_email: str
    from_name: str
    account: SmtpAccount
    per_minute: int | None
    per_day: int | None
    recipients_per_connection: int | None


async def load(conn: Conn, keys: KeyProvider, sender_id: int) -> Sender | None:
    row = await conn.fetchrow("SELECT * FROM senders WHERE id = $1", sender_id)
    if row is None:
        return None
    password = await open_sealed(keys, bytes(row["password_encrypted"]), f"user:{row['user_id']}")
    return Sender(
        id=row["id"],
        user_id=row["user_id"],
        from_email=row["from_email"],
        from_name=row["from_name"],
        account=SmtpAccount(row["host"], row["port"], row["security"], row["username"], password),
        per_minute=row["per_minute"],
        per_day=row["per_day"],
        recipients_per_connection=row["recipients_per_connection"],
    )
