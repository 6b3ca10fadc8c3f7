"""SMTP accounts ("senders"): validated, stored with the password sealed, verified live, and
loaded by the workers with the password still sealed — it is opened only to open a connection.

Every operation that accepts a host vets it (public addresses only unless the deployment allows
private ones), so no caller can forget the SSRF check.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import aiosmtplib
import asyncpg

from shared.accounts import check_email
from shared.crypto import KeyProvider, holds, open_sealed, seal
from shared.db import Conn
from shared.errors import InputError, host_refused, translate
from shared.mail.messenger import ConnectError, ConnectPolicy, SmtpAccount, SmtpConnection
from shared.netguard import HostRefused, vet_host
from shared.smtp_presets import PRESETS, preset_for_address

SECURITY = ("tls", "starttls", "starttls_optional", "none")
# A live check a person waits for (verify, test send) ends within this, however slowly a server
# answers each command: inside API Gateway's 30 s, with a reason instead of a gateway timeout.
LIVE_CHECK_SECONDS = 20.0
_HOSTNAME = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")
_COLUMNS = ("id, from_email, from_name, host, port, security, username, preset, per_minute, per_day,"
            " recipients_per_connection, verified_at, paused_until, pause_reason, last_error, created_at")


@dataclass(frozen=True)
class SenderInput:
    from_email: str
    from_name: str
    host: str
    port: int
    security: str
    username: str
    password: str | None  # None on update: keep the stored one
    preset: str | None
    per_minute: int | None
    per_day: int | None
    recipients_per_connection: int | None

    def __repr__(self) -> str:
        return f"SenderInput({self.from_email!r} via {self.host}:{self.port})"


def _optional_limit(body: dict[str, Any], field: str, default: int | None) -> int | None:
    if field not in body:
        return default
    value = body[field]
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10_000_000:
        raise InputError("invalid_limit", field)
    return value


def _text(body: dict[str, Any], field: str, default: str = "", limit: int = 320) -> str:
    value = body.get(field, default)
    if value is None:
        value = default
    if not isinstance(value, str):
        raise InputError("type_string", field)
    if "\r" in value or "\n" in value:
        raise InputError("line_break", field)
    if len(value) > limit:
        raise InputError("too_long", field, limit=limit)
    return value.strip()


def parse(body: dict[str, Any], *, allow_plaintext: bool, current: dict[str, Any] | None = None) -> SenderInput:
    """Validate a create (current=None) or an update (fields missing keep their values)."""
    merged: dict[str, Any] = {**(current or {}), **body}
    from_email = check_email(merged.get("from_email"), "from_email")
    preset_key = merged.get("preset") or None
    if preset_key is not None and (not isinstance(preset_key, str) or preset_key not in PRESETS):
        raise InputError("unknown_preset", "preset", choices=", ".join(PRESETS))
    preset = PRESETS[preset_key] if preset_key else None
    if preset is None and not merged.get("host"):
        preset = preset_for_address(from_email)
        preset_key = preset.key if preset else None
    host = _text(merged, "host", preset.host if preset else "", limit=253).lower().rstrip(".")
    if not host:
        raise InputError("unknown_provider", "host", domain=from_email.rpartition("@")[2])
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        raise InputError("invalid_host", "host") from None
    if not _HOSTNAME.match(ascii_host) and not re.fullmatch(r"[0-9.]+|[0-9a-f:]+", ascii_host):
        raise InputError("invalid_host", "host")
    port = merged.get("port", preset.port if preset else None)
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise InputError("invalid_port", "port")
    security = merged.get("security") or (preset.security if preset else ("tls" if port == 465 else "starttls"))
    if security not in SECURITY:
        raise InputError("invalid_security", "security")
    if security in ("none", "starttls_optional") and not allow_plaintext:
        raise InputError("plaintext_refused", "security")
    password = body.get("password")
    if password is not None and not isinstance(password, str):
        raise InputError("type_string", "password")
    if current is None and not password:
        raise InputError("required", "password")
    if password is not None and len(password) > 1024:
        raise InputError("too_long", "password", limit=1024)
    return SenderInput(
        from_email=from_email,
        from_name=_text(merged, "from_name", limit=200),
        host=ascii_host,
        port=port,
        security=security,
        username=_text(merged, "username", from_email) or from_email,
        password=password or None,
        preset=preset_key,
        per_minute=_optional_limit(merged, "per_minute", preset.per_minute if preset else None),
        per_day=_optional_limit(merged, "per_day", preset.per_day if preset else None),
        recipients_per_connection=_optional_limit(merged, "recipients_per_connection", None),
    )


def to_json(row: Any) -> dict[str, Any]:
    data = dict(row)
    for key in ("verified_at", "paused_until", "created_at"):
        data[key] = data[key].isoformat() if data.get(key) else None
    data["verified"] = data["verified_at"] is not None
    return data


async def vet(value: SenderInput, *, allow_private: bool) -> None:
    """Refuse a host that resolves to an address the workers must not connect to."""
    try:
        await vet_host(value.host, value.port, allow_private=allow_private)
    except HostRefused as exc:
        raise host_refused("host", value.host, exc.code, str(exc)) from None


async def one_shot_password(pool: asyncpg.Pool, keys: KeyProvider, user_id: int, from_email: str, host: str,
                            port: int, password: str) -> bytes:
    """The password of an /api/send-message sender, sealed: the stored blob itself when that
    sender already holds this password. Sealed afresh on every call, it changed the fingerprint an
    IMAP IDLE watch compares (bounces/idle.py): each send ended the watch and cost a log-in."""
    async with pool.acquire() as conn:
        stored = await conn.fetchval(
            "SELECT password_encrypted FROM senders WHERE user_id = $1 AND lower(from_email) = lower($2)"
            " AND lower(host) = lower($3) AND port = $4 AND username = $2 AND deleted_at IS NULL",
            user_id, from_email, host, port)
    if await holds(keys, stored, f"user:{user_id}", password):  # else new, or under a key gone since
        return bytes(stored)
    return await seal(keys, password, f"user:{user_id}")


async def create(conn: Conn, keys: KeyProvider, user_id: int, value: SenderInput, *,
                 allow_private: bool) -> dict[str, Any]:
    assert value.password is not None
    await vet(value, allow_private=allow_private)
    sealed = await seal(keys, value.password, f"user:{user_id}")
    row = await conn.fetchrow(
        f"""
        INSERT INTO senders (user_id, from_email, from_name, host, port, security, username,
                             password_encrypted, preset, per_minute, per_day, recipients_per_connection)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
        ON CONFLICT (user_id, lower(from_email), lower(host), port, username) WHERE deleted_at IS NULL DO NOTHING
        RETURNING {_COLUMNS}
        """,
        user_id, value.from_email, value.from_name, value.host, value.port, value.security, value.username,
        sealed, value.preset, value.per_minute, value.per_day, value.recipients_per_connection,
    )
    if row is None:
        raise InputError("sender_exists", "from_email")
    return to_json(row)


async def get(conn: Conn, user_id: int, sender_id: int) -> dict[str, Any] | None:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM senders WHERE id = $1 AND user_id = $2 AND deleted_at IS NULL",
                              sender_id, user_id)
    return to_json(row) if row else None


async def owned(conn: Conn, user_id: int, sender_id: int) -> bool:
    found: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM senders WHERE id = $1 AND user_id = $2 AND deleted_at IS NULL)",
        sender_id, user_id)
    return found


async def list_for(conn: Conn, user_id: int) -> list[dict[str, Any]]:
    """The user's senders, each with `held_by`: the campaigns not finished yet that keep it from
    being deleted (the page says so before asking, not after)."""
    rows = await conn.fetch(f"SELECT {_COLUMNS} FROM senders WHERE user_id = $1 AND deleted_at IS NULL ORDER BY id",
                            user_id)
    held = await holding(conn, [r["id"] for r in rows])
    return [{**to_json(r), "held_by": held.get(r["id"], [])} for r in rows]


UNFINISHED = ("scheduled", "queued", "sending", "paused")
HELD_BY_SHOWN = 5  # a few names say it; the rest are on the campaigns page


async def holding(conn: Conn, sender_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    """The unfinished campaigns through each sender (the first few of each, oldest first):
    {sender id: [{id, name, subject, status}]}."""
    rows = await conn.fetch(
        "SELECT sender_id, id, name, subject, status FROM (SELECT sender_id, id, name, subject, status,"
        " row_number() OVER (PARTITION BY sender_id ORDER BY created_at, id) AS n FROM campaigns"
        " WHERE sender_id = ANY($1::bigint[]) AND status = ANY($2::text[])) c WHERE n <= $3 ORDER BY n",
        sender_ids, list(UNFINISHED), HELD_BY_SHOWN)
    held: dict[int, list[dict[str, Any]]] = {}
    for r in rows:
        held.setdefault(r["sender_id"], []).append(
            {"id": str(r["id"]), "name": r["name"], "subject": r["subject"], "status": r["status"]})
    return held


async def update(conn: Conn, keys: KeyProvider, user_id: int, sender_id: int, value: SenderInput, *,
                 allow_private: bool) -> dict[str, Any] | None:
    """Store a sender's edit. The password stored stays as sealed when the same one is sent again:
    sealed afresh it changed the fingerprint the IMAP IDLE watch compares (bounces/idle.py) and
    the sender's verification, for a form saved unchanged."""
    same = bool(value.password) and await holds(keys, await conn.fetchval(
        "SELECT password_encrypted FROM senders WHERE id = $1 AND user_id = $2", sender_id, user_id),
        f"user:{user_id}", value.password or "")
    if not value.password:
        # The stored password was typed for one server: it never goes to another one unasked.
        current = await conn.fetchrow(
            "SELECT host, port FROM senders WHERE id = $1 AND user_id = $2 AND deleted_at IS NULL", sender_id, user_id)
        if current is not None and (current["host"].lower(), current["port"]) != (value.host.lower(), value.port):
            raise InputError("smtp_password_required", "password", host=value.host, port=value.port)
    await vet(value, allow_private=allow_private)
    sealed = await seal(keys, value.password, f"user:{user_id}") if value.password and not same else None
    try:
        row = await conn.fetchrow(
            f"""
            UPDATE senders SET from_email = $3, from_name = $4, host = $5, port = $6, security = $7,
                   username = $8, password_encrypted = COALESCE($9, password_encrypted), preset = $10,
                   per_minute = $11, per_day = $12, recipients_per_connection = $13, updated_at = now(),
                   verified_at = CASE WHEN $9::bytea IS NULL AND host = $5 AND port = $6 AND security = $7
                                       AND username = $8 THEN verified_at END
             WHERE id = $1 AND user_id = $2 AND deleted_at IS NULL
            RETURNING {_COLUMNS}
            """,
            sender_id, user_id, value.from_email, value.from_name, value.host, value.port, value.security,
            value.username, sealed, value.preset, value.per_minute, value.per_day, value.recipients_per_connection,
        )
    except asyncpg.UniqueViolationError:
        raise InputError("sender_exists", "from_email") from None
    return to_json(row) if row else None


async def delete(conn: Conn, user_id: int, sender_id: int) -> str:
    """'deleted', 'missing', or 'in_use' while a campaign still sends (or will) through it.

    Finished and cancelled campaigns keep the sender as their history (the row stays, hidden);
    drafts simply lose their choice of sender; bounce reading stops.
    """
    async with conn.transaction():
        found = await conn.fetchval(
            "SELECT id FROM senders WHERE id = $1 AND user_id = $2 AND deleted_at IS NULL FOR UPDATE",
            sender_id, user_id)
        if found is None:
            return "missing"
        if await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM campaigns WHERE sender_id = $1 AND status = ANY($2::text[]))",
                sender_id, list(UNFINISHED)):
            return "in_use"
        await conn.execute("UPDATE campaigns SET sender_id = NULL WHERE sender_id = $1 AND status = 'draft'", sender_id)
        await conn.execute(
            "UPDATE senders SET deleted_at = now(), imap_host = NULL, imap_claimed_until = NULL WHERE id = $1",
            sender_id)
    return "deleted"


@dataclass(frozen=True)
class VerifyProblem:
    kind: str  # dns, private, refused, timeout, tls, starttls, auth, protocol, plaintext, sender_refused, relay_denied
    detail: str
    code: int | None = None


async def verify(account: SmtpAccount, from_email: str, policy: ConnectPolicy) -> VerifyProblem | None:
    """Connect, TLS, EHLO, AUTH, then ask to send to ourselves (and reset): None when all is well."""
    conn = SmtpConnection(account, policy, pipelining=False)  # verification uses single commands
    try:
        await conn.open()
    except ConnectError as exc:
        return VerifyProblem(exc.kind, str(exc), exc.code)
    try:
        smtp = conn.smtp
        assert smtp is not None
        try:
            await smtp.mail(from_email)
        except aiosmtplib.SMTPResponseException as exc:
            return VerifyProblem("sender_refused", exc.message, exc.code)
        try:
            await smtp.rcpt(from_email)
        except aiosmtplib.SMTPResponseException as exc:
            if exc.code >= 500:
                return VerifyProblem("relay_denied", exc.message, exc.code)
        await smtp.rset()
    except (aiosmtplib.SMTPException, OSError) as exc:
        return VerifyProblem("protocol", str(exc))
    finally:
        await conn.quit()
    return None


async def record_verification(conn: Conn, sender_id: int, problem: VerifyProblem | None) -> None:
    if problem is None:
        await conn.execute("UPDATE senders SET verified_at = now(), last_error = NULL WHERE id = $1", sender_id)
    else:
        await conn.execute(
            "UPDATE senders SET verified_at = NULL, last_error = $2 WHERE id = $1", sender_id,
            f"{problem.kind}: {problem.detail}"[:1000],
        )


def explain(problem: VerifyProblem, from_email: str, host: str, port: int, preset: str | None,
            lang: str) -> dict[str, object]:
    """An SMTP problem as a person reads it, in `lang`, with a provider hint for log-in failures."""
    hint = ""
    if problem.kind == "auth":
        found = PRESETS.get(preset or "") or preset_for_address(from_email)
        if found is not None and found.app_password_hint:
            hint = translate("smtp_auth_hint", lang, provider=found.title)
    message = translate(f"smtp_{problem.kind}", lang, host=host, port=port, detail=problem.detail, hint=hint,
                        from_email=from_email)
    return {"code": f"smtp_{problem.kind}", "message": message, "smtp_code": problem.code}


@dataclass(frozen=True)
class Sender:
    """An account as the workers use it. The password stays sealed until a connection opens."""

    id: int
    user_id: int
    from_email: str
    from_name: str
    host: str
    port: int
    security: str
    username: str
    preset: str | None
    per_minute: int | None
    per_day: int | None
    recipients_per_connection: int | None
    sealed_password: bytes = field(repr=False)

    async def open_account(self, keys: KeyProvider) -> SmtpAccount:
        """The account with its password opened, for one connection; do not keep it."""
        password = await open_sealed(keys, self.sealed_password, f"user:{self.user_id}")
        return SmtpAccount(self.host, self.port, self.security, self.username, password)


async def load(conn: Conn, sender_id: int, user_id: int | None = None) -> Sender | None:
    """The account for sending (any user's when `user_id` is None: workers act for everyone)."""
    row = await conn.fetchrow(
        "SELECT * FROM senders WHERE id = $1 AND ($2::bigint IS NULL OR (user_id = $2 AND deleted_at IS NULL))",
        sender_id, user_id)
    if row is None:
        return None
    return Sender(
        id=row["id"], user_id=row["user_id"], from_email=row["from_email"], from_name=row["from_name"],
        host=row["host"], port=row["port"], security=row["security"], username=row["username"],
        preset=row["preset"], per_minute=row["per_minute"], per_day=row["per_day"],
        recipients_per_connection=row["recipients_per_connection"],
        sealed_password=bytes(row["password_encrypted"]),
    )


async def paused_until(conn: Conn, sender_id: int) -> float:
    """Epoch seconds until which a quota or lock-out reply paused the account (0 when not paused)."""
    until = await conn.fetchval("SELECT extract(epoch FROM paused_until) FROM senders WHERE id = $1", sender_id)
    return float(until or 0)


async def pause(conn: Conn, sender_id: int, until: float, reason: str) -> None:
    await conn.execute(
        "UPDATE senders SET paused_until = to_timestamp($2), pause_reason = $3 WHERE id = $1",
        sender_id, until, reason.replace("\x00", "")[:1000],
    )


async def recent_sends(conn: Conn, sender_id: int, latest: int | None = None) -> list[float]:
    """When the account's mail of the last 24 hours went out (epoch seconds), to seed its limits;
    only the `latest` ones when given."""
    rows = await conn.fetch(
        "SELECT extract(epoch FROM r.updated_at) AS at FROM recipients r JOIN campaigns c ON c.id = r.campaign_id"
        " WHERE c.sender_id = $1 AND r.status = 'sent' AND r.updated_at > now() - interval '24 hours'"
        " ORDER BY r.updated_at DESC LIMIT $2",
        sender_id, latest,
    )
    return [float(r["at"]) for r in rows]
