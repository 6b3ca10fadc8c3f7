"""Campaigns as users edit and control them: drafts, preview, start, pause, resume, cancel."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from jinja2 import ChainableUndefined

from shared.db import Conn
from shared.errors import InputError
from shared.mail.compose import BUILTIN_FIELDS, CampaignContent, CompiledCampaign, TemplateError, template_fields
from shared.unsubscribe import Unsubscriber

EDITABLE = ("name", "sender_id", "upload_id", "subject", "html_body", "text_body")
MAX_SUBJECT = 998
MAX_BODY = 2_000_000
_COLUMNS = (
    "id, name, status, status_reason, sender_id, upload_id, subject, html_body, text_body, recipient_count,"
    " duplicates_removed, created_at, updated_at, started_at, finished_at"
)


class StateConflict(Exception):
    """The campaign is not in a state that allows this action."""

    def __init__(self, status: str, action: str) -> None:
        super().__init__(f"cannot {action} a campaign that is {status}")
        self.status = status
        self.action = action


def to_json(row: Any) -> dict[str, Any]:
    data = dict(row)
    data["id"] = str(data["id"])
    data["upload_id"] = str(data["upload_id"]) if data.get("upload_id") else None
    for key in ("created_at", "updated_at", "started_at", "finished_at"):
        data[key] = data[key].isoformat() if data.get(key) else None
    return data


def _template_error(exc: TemplateError) -> InputError:
    field = {"subject": "subject", "html": "html_body", "text": "text_body"}[exc.part]
    where = f" (line {exc.line})" if exc.line else ""
    return InputError("template", field, part=exc.part, where=where, reason=str(exc))


async def _check_refs(conn: Conn, user_id: int, values: dict[str, Any]) -> None:
    sender_id = values.get("sender_id")
    if sender_id is not None:
        if isinstance(sender_id, bool) or not isinstance(sender_id, int) or not 0 < sender_id < 2**63:
            raise InputError("unknown_sender", "sender_id")
        if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM senders WHERE id = $1 AND user_id = $2)",
                                   sender_id, user_id):
            raise InputError("unknown_sender", "sender_id")
    upload_id = values.get("upload_id")
    if upload_id is not None:
        try:
            values["upload_id"] = uuid.UUID(str(upload_id))
        except ValueError:
            raise InputError("unknown_upload", "upload_id") from None
        if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM uploads WHERE id = $1 AND user_id = $2)",
                                   values["upload_id"], user_id):
            raise InputError("unknown_upload", "upload_id")


def parse(body: dict[str, Any]) -> dict[str, Any]:
    """The editable fields present in `body`, validated (templates compiled to find errors)."""
    unknown = set(body) - set(EDITABLE)
    if unknown:
        raise InputError("unknown_field", sorted(unknown)[0], choices=", ".join(EDITABLE))
    values: dict[str, Any] = {}
    for name in ("name", "subject", "html_body", "text_body"):
        if name in body:
            value = body[name]
            if value is None and name == "text_body":
                values[name] = None
                continue
            if not isinstance(value, str):
                raise InputError("type_string", name)
            limit = {"name": 200, "subject": MAX_SUBJECT}.get(name, MAX_BODY)
            if len(value) > limit:
                raise InputError("too_long", name, limit=limit)
            if name in ("name", "subject") and ("\r" in value or "\n" in value):
                raise InputError("line_break", name)
            values[name] = value
    for name in ("sender_id", "upload_id"):
        if name in body:
            values[name] = body[name]
    try:
        template_fields(values.get("subject", ""), values.get("html_body", ""), values.get("text_body") or "")
    except TemplateError as exc:
        raise _template_error(exc) from None
    return values


async def create(conn: Conn, user_id: int, body: dict[str, Any]) -> dict[str, Any]:
    values = parse(body)
    await _check_refs(conn, user_id, values)
    row = await conn.fetchrow(
        f"""
        INSERT INTO campaigns (id, user_id, name, sender_id, upload_id, subject, html_body, text_body, status)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'draft')
        RETURNING {_COLUMNS}
        """,
        uuid.uuid4(), user_id, values.get("name", ""), values.get("sender_id"), values.get("upload_id"),
        values.get("subject", ""), values.get("html_body", ""), values.get("text_body"),
    )
    return to_json(row)


async def get(conn: Conn, user_id: int, campaign_id: uuid.UUID) -> dict[str, Any] | None:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM campaigns WHERE id = $1 AND user_id = $2",
                              campaign_id, user_id)
    return to_json(row) if row else None


async def list_for(conn: Conn, user_id: int, limit: int = 100) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM campaigns WHERE user_id = $1 ORDER BY created_at DESC LIMIT $2", user_id, limit
    )
    return [to_json(r) for r in rows]


async def update(conn: Conn, user_id: int, campaign_id: uuid.UUID, body: dict[str, Any]) -> dict[str, Any] | None:
    values = parse(body)
    await _check_refs(conn, user_id, values)
    async with conn.transaction():
        status = await conn.fetchval(
            "SELECT status FROM campaigns WHERE id = $1 AND user_id = $2 FOR UPDATE", campaign_id, user_id
        )
        if status is None:
            return None
        if status != "draft":
            raise StateConflict(status, "edit")
        if values:
            assignments = ", ".join(f"{name} = ${n}" for n, name in enumerate(values, start=3))
            await conn.execute(
                f"UPDATE campaigns SET {assignments}, updated_at = now() WHERE id = $1 AND user_id = $2",
                campaign_id, user_id, *values.values(),
            )
    return await get(conn, user_id, campaign_id)


async def delete(conn: Conn, user_id: int, campaign_id: uuid.UUID) -> bool:
    async with conn.transaction():
        status = await conn.fetchval(
            "SELECT status FROM campaigns WHERE id = $1 AND user_id = $2 FOR UPDATE", campaign_id, user_id
        )
        if status is None:
            return False
        if status in ("queued", "sending", "paused"):
            raise StateConflict(status, "delete")
        await conn.execute("DELETE FROM campaigns WHERE id = $1", campaign_id)
    return True


def _recorder(seen: list[str]) -> type[ChainableUndefined]:
    """An undefined that renders empty and remembers the names it stood for, for previews."""

    class Recorder(ChainableUndefined):
        def __str__(self) -> str:
            if self._undefined_name and self._undefined_name not in seen:
                seen.append(self._undefined_name)
            return ""

    return Recorder


@dataclass(frozen=True)
class Preview:
    subject: str
    html: str
    text: str
    undefined: list[str]


def preview(campaign: dict[str, Any], from_email: str, from_name: str, email: str, fields: dict[str, Any],
            unsubscriber: Unsubscriber | None = None) -> Preview:
    """Render for one row; fields the templates use but the row lacks are listed, not fatal."""
    content = CampaignContent(campaign["id"], from_email, from_name, campaign["subject"], campaign["html_body"],
                              campaign["text_body"])
    seen: list[str] = []
    try:
        compiled = CompiledCampaign(content, unsubscriber=unsubscriber, undefined=_recorder(seen))
    except TemplateError as exc:
        raise _template_error(exc) from None
    try:
        subject, text, html = compiled.render_parts(compiled.merge_fields(1, email, fields))
    except Exception as exc:  # parses, but fails for this row's data, e.g. {{ 1 / count }}
        raise InputError("template", "html_body", part="html", where="", reason=str(exc)) from None
    return Preview(subject, html, text, seen)


def missing_fields(campaign: dict[str, Any], columns: list[dict[str, Any]]) -> list[str]:
    """Merge fields the templates use that the contact file does not provide."""
    used = template_fields(campaign["subject"], campaign["html_body"], campaign["text_body"] or "")
    known = {c["field"] for c in columns} | set(BUILTIN_FIELDS)
    return sorted(used - known)


async def start_checks(conn: Conn, user_id: int, campaign: dict[str, Any]) -> None:
    """Everything that must hold before a draft may start; raises InputError naming what is missing."""
    if not campaign["sender_id"]:
        raise InputError("start_needs", "sender_id")
    if not campaign["upload_id"]:
        raise InputError("start_needs", "upload_id")
    if not campaign["subject"].strip():
        raise InputError("start_needs", "subject")
    if not campaign["html_body"].strip():
        raise InputError("start_needs", "html_body")
    verified = await conn.fetchval("SELECT verified_at IS NOT NULL FROM senders WHERE id = $1 AND user_id = $2",
                                   campaign["sender_id"], user_id)
    if not verified:
        raise InputError("sender_not_verified", "sender_id")
    upload = await conn.fetchrow("SELECT status, columns FROM uploads WHERE id = $1 AND user_id = $2",
                                 uuid.UUID(campaign["upload_id"]), user_id)
    if upload is None or upload["status"] != "ready":
        raise InputError("upload_not_ready", "upload_id")
    missing = missing_fields(campaign, json.loads(upload["columns"]))
    if missing:
        raise InputError("undefined_fields", "html_body", names=", ".join(missing))


async def transition(conn: Conn, user_id: int, campaign_id: uuid.UUID, action: str) -> dict[str, Any] | None:
    """start / pause / resume / cancel; returns the campaign, None when it is not the user's."""
    allowed = {
        "start": (("draft",), "queued"),
        "pause": (("queued", "sending"), "paused"),
        "resume": (("paused",), "queued"),
        "cancel": (("draft", "queued", "sending", "paused"), "cancelled"),
    }
    sources, target = allowed[action]
    async with conn.transaction():
        row = await conn.fetchrow(
            "SELECT status FROM campaigns WHERE id = $1 AND user_id = $2 FOR UPDATE", campaign_id, user_id
        )
        if row is None:
            return None
        if row["status"] not in sources:
            raise StateConflict(row["status"], action)
        await conn.execute(
            """
            UPDATE campaigns SET status = $2, status_reason = NULL, updated_at = now(),
                   started_at = CASE WHEN $3 = 'start' THEN now() ELSE started_at END,
                   finished_at = CASE WHEN $2 = 'cancelled' THEN now() ELSE finished_at END
             WHERE id = $1
            """,
            campaign_id, target, action,
        )
        if action == "cancel":
            await skip_open(conn, campaign_id, "cancelled")
    return await get(conn, user_id, campaign_id)


async def skip_open(conn: Conn, campaign_id: uuid.UUID, reason: str) -> int:
    """Mark recipients not being sent right now as skipped (a worker finishing one records it)."""
    result = await conn.execute(
        "UPDATE recipients SET status = 'skipped', reply = $2, updated_at = now()"
        " WHERE campaign_id = $1 AND status = 'pending'",
        campaign_id, reason,
    )
    return int(result.split()[-1])
