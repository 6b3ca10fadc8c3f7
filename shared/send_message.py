"""The seed's one-shot API: a message, a list of addresses and SMTP settings in one request.

Parsing is pure; `accept` stores the sender (password sealed), the campaign and its recipients
in one transaction, so a failure leaves nothing half-written.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from shared import outbox, smtp_accounts, suppressions
from shared import recipients as recipient_store
from shared.addresses import check_address, reason_in_russian
from shared.campaigns.preview import first_recipient, trial
from shared.commands import CampaignCommand
from shared.crypto import KeyProvider
from shared.errors import InputError, host_refused
from shared.mail.blank import is_blank
from shared.netguard import HostRefused, vet_host
from shared.smtp_presets import preset_for_address, security_for_port

MAX_RECIPIENTS = 10_000  # one request body; larger lists go through CSV uploads
MAX_SUBJECT = 998
MAX_MESSAGE = 2_000_000


@dataclass(frozen=True)
class OneShotSend:
    subject: str
    html: str
    recipients: list[str]  # normalised, unique (case-insensitive), in the order given
    duplicates: int
    sender_email: str
    password: str
    host: str
    port: int
    security: str
    per_minute: int | None
    per_day: int | None

    def __repr__(self) -> str:
        return f"OneShotSend({self.sender_email!r} via {self.host}:{self.port}, {len(self.recipients)} recipients)"


def _string(payload: dict[str, Any], field: str, *, required: bool = True) -> str:
    value = payload.get(field)
    if value is None or value == "":
        if required:
            raise InputError("required", field)
        return ""
    if not isinstance(value, str):
        raise InputError("type_string", field)
    return value


def parse(payload: Any, *, allow_plaintext: bool = False) -> OneShotSend:
    """Validate the seed's JSON keys; raises InputError naming the first problem.

    The JSON has no security field: port 465 means TLS, any other port STARTTLS — or, where the
    operator allows plaintext SMTP, STARTTLS when the server offers it and plaintext otherwise.
    """
    if not isinstance(payload, dict):
        raise InputError("invalid_json")
    html = _string(payload, "message")
    if len(html) > MAX_MESSAGE:
        raise InputError("too_long", "message", limit=MAX_MESSAGE)
    if is_blank(html):  # <p><br></p>: no text, no image
        raise InputError("empty_body", "message")
    subject = _string(payload, "message_subject")
    if "\r" in subject or "\n" in subject:
        raise InputError("line_break", "message_subject")
    if len(subject) > MAX_SUBJECT:
        raise InputError("too_long", "message_subject", limit=MAX_SUBJECT)

    sender_raw = _string(payload, "sender_email")
    sender = check_address(sender_raw)
    if sender.normalized is None:
        raise InputError("invalid_email", "sender_email", value=sender_raw, reason=sender.reason,
                         reason_ru=reason_in_russian(sender.reason or ""))
    password = _string(payload, "smtp_password")

    raw_list = payload.get("recipient_email_list")
    if raw_list is None:
        raise InputError("required", "recipient_email_list")
    if not isinstance(raw_list, list) or not all(isinstance(item, str) for item in raw_list):
        raise InputError("type_list", "recipient_email_list")
    if not raw_list:
        raise InputError("empty_list", "recipient_email_list")
    if len(raw_list) > MAX_RECIPIENTS:
        raise InputError("too_many", "recipient_email_list", count=len(raw_list), limit=MAX_RECIPIENTS)
    recipients: list[str] = []
    seen: set[str] = set()
    invalid = []
    for item in raw_list:
        checked = check_address(item)
        if checked.normalized is None:
            invalid.append(checked)
            continue
        key = checked.normalized.lower()
        if key not in seen:
            seen.add(key)
            recipients.append(checked.normalized)
    if invalid:
        first = invalid[0]
        raise InputError(
            "invalid_recipients", "recipient_email_list",
            count=len(invalid), value=first.original, reason=first.reason,
            reason_ru=reason_in_russian(first.reason or ""),
        )

    host = _string(payload, "server_host", required=False).strip()
    port_raw = payload.get("server_port")
    preset = None
    if not host and port_raw in (None, ""):
        preset = preset_for_address(sender.normalized)
        if preset is None:
            raise InputError("unknown_provider", "server_host", domain=sender.normalized.rpartition("@")[2])
        host, port, security = preset.host, preset.port, preset.security
    elif not host or port_raw in (None, ""):
        raise InputError("host_without_port", "server_host" if not host else "server_port")
    else:
        port = _port(port_raw)
        security = security_for_port(port)
        if security == "starttls" and allow_plaintext:
            security = "starttls_optional"  # a relay inside a network may offer no TLS at all

    # Compiled and filled in once for the first recipient, as sending would: a template that fails
    # there is refused now rather than by every recipient.
    trial(subject, html, None, {"email": recipients[0]}, first_recipient(recipients[0]),
          {"subject": "message_subject", "html": "message", "text": "message"})

    return OneShotSend(
        subject=subject,
        html=html,
        recipients=recipients,
        duplicates=len(raw_list) - len(recipients),
        sender_email=sender.normalized,
        password=password,
        host=host.lower(),
        port=port,
        security=security,
        per_minute=preset.per_minute if preset else None,
        per_day=preset.per_day if preset else None,
    )


def _port(raw: Any) -> int:
    if isinstance(raw, bool):
        raise InputError("invalid_port", "server_port")
    if isinstance(raw, str) and raw.strip().isascii() and raw.strip().isdigit():
        raw = int(raw.strip())
    if not isinstance(raw, int) or not 1 <= raw <= 65535:
        raise InputError("invalid_port", "server_port")
    return raw


async def accept(
    pool: asyncpg.Pool, keys: KeyProvider, user_id: int, request: OneShotSend, *, allow_private: bool
) -> uuid.UUID:
    """Vet the host, then store sender, campaign, recipients and the start command (in the outbox)."""
    try:
        await vet_host(request.host, request.port, allow_private=allow_private)
    except HostRefused as exc:
        raise host_refused("server_host", request.host, exc.code, str(exc)) from None
    sealed = await smtp_accounts.one_shot_password(pool, keys, user_id, request.sender_email, request.host,
                                                   request.port, request.password)
    campaign_id = uuid.uuid4()
    async with pool.acquire() as conn, conn.transaction():
        sender_id = await conn.fetchval(
            """
            INSERT INTO senders (user_id, from_email, host, port, security, username,
                                 password_encrypted, per_minute, per_day)
            VALUES ($1, $2, $3, $4, $5, $2, $6, $7, $8)
            ON CONFLICT (user_id, lower(from_email), lower(host), port, username) WHERE deleted_at IS NULL
            DO UPDATE SET password_encrypted = EXCLUDED.password_encrypted,
                          security = EXCLUDED.security, updated_at = now()
            RETURNING id
            """,
            user_id, request.sender_email, request.host, request.port, request.security,
            sealed, request.per_minute, request.per_day,
        )
        await conn.execute(
            """
            INSERT INTO campaigns (id, user_id, sender_id, subject, html_body, status,
                                   recipient_count, recipients_loaded, duplicates_removed, started_at)
            VALUES ($1, $2, $3, $4, $5, 'queued', $6, true, $7, now())
            """,
            campaign_id, user_id, sender_id, request.subject, request.html, len(request.recipients),
            request.duplicates,
        )
        await recipient_store.copy_in(conn, campaign_id, ((email, {}) for email in request.recipients))
        # Only this message's addresses are looked up: a list of a million made each send read it all.
        keyed = [(position, suppressions.fast_key(email)) for position, email in enumerate(request.recipients, start=1)]
        suppressed = await suppressions.among(conn, user_id, (key for _, key in keyed))
        if suppressed:
            await recipient_store.skip_positions(conn, campaign_id, [
                position for position, key in keyed if key in suppressed], "suppressed")
        await outbox.add(conn, CampaignCommand(campaign_id))
    return campaign_id
