"""A campaign's life: draft → queued → sending → finished, with paused and cancelled on the side.

Users move it with start / pause / resume / cancel; workers with mark_sending, pause (a problem a
person must fix) and finish_if_done.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

from shared import file_jobs, outbox, recipients, send_window, smtp_accounts, uploads
from shared.campaigns.next_batch import REASON_SQL, deferral_text
from shared.campaigns.preview import missing_fields
from shared.commands import CampaignCommand
from shared.db import Conn
from shared.errors import InputError
from shared.mail.blank import is_blank
from shared.storage import UploadStore

OPEN_FOR_SENDING = ("queued", "sending")


class StateConflict(Exception):
    """The campaign is not in a state that allows this action."""

    def __init__(self, status: str, action: str) -> None:
        super().__init__(f"cannot {action} a campaign that is {status}")
        self.status = status
        self.action = action


@dataclass(frozen=True)
class CampaignForSending:
    id: uuid.UUID
    user_id: int
    sender_id: int | None
    status: str
    subject: str
    html: str
    text: str | None
    recipient_count: int


async def load_for_sending(conn: Conn, campaign_id: uuid.UUID) -> CampaignForSending | None:
    row = await conn.fetchrow(
        "SELECT id, user_id, sender_id, status, subject, html_body, text_body, recipient_count"
        " FROM campaigns WHERE id = $1",
        campaign_id,
    )
    if row is None:
        return None
    return CampaignForSending(
        row["id"], row["user_id"], row["sender_id"], row["status"], row["subject"],
        row["html_body"], row["text_body"], row["recipient_count"],
    )


async def status_of(conn: Conn, campaign_id: uuid.UUID) -> str | None:
    status: str | None = await conn.fetchval("SELECT status FROM campaigns WHERE id = $1", campaign_id)
    return status


async def mark_sending(conn: Conn, campaign_id: uuid.UUID) -> bool:
    """queued → sending; True if the campaign is (now) sending."""
    status: str | None = await conn.fetchval(
        "UPDATE campaigns SET status = 'sending', status_reason = NULL"
        " WHERE id = $1 AND status IN ('queued', 'sending') RETURNING status",
        campaign_id,
    )
    return status == "sending"


async def pause(conn: Conn, campaign_id: uuid.UUID, reason: str) -> None:
    await conn.execute(
        "UPDATE campaigns SET status = 'paused', status_reason = $2"
        " WHERE id = $1 AND status IN ('queued', 'sending')",
        campaign_id, reason.replace("\x00", "")[:2000],
    )


async def finish_if_done(conn: Conn, campaign_id: uuid.UUID) -> bool:
    """Mark the campaign finished when no recipient is open any more; "your other mail goes first"
    no longer holds then (its last recipients may have come in batches from before a resume)."""
    status: str | None = await conn.fetchval(
        """
        UPDATE campaigns SET status = 'finished', finished_at = now(), status_reason = NULLIF(status_reason, $2)
         WHERE id = $1 AND status = 'sending' AND recipients_loaded
           AND NOT EXISTS (SELECT 1 FROM recipients
                            WHERE campaign_id = $1 AND status IN ('pending', 'sending'))
        RETURNING status
        """,
        campaign_id, send_window.OWN_MAIL_FIRST,
    )
    return status == "finished"


async def start_checks(conn: Conn, store: UploadStore, user_id: int, campaign: dict[str, Any]) -> None:
    """Everything that must hold before a draft may start; raises InputError naming what is missing."""
    if not campaign["sender_id"]:
        raise InputError("start_needs", "sender_id")
    if not campaign["upload_id"]:
        raise InputError("start_needs", "upload_id")
    if not campaign["subject"].strip():
        raise InputError("start_needs", "subject")
    if not campaign["html_body"].strip():
        raise InputError("start_needs", "html_body")
    if await asyncio.to_thread(is_blank, campaign["html_body"]):  # converted to text: not on the loop
        raise InputError("empty_body", "html_body")  # an editor's empty paragraph, <p><br></p>
    sender = await smtp_accounts.get(conn, user_id, campaign["sender_id"])
    if sender is None or not sender["verified"]:
        raise InputError("sender_not_verified", "sender_id")
    upload = await uploads.get(conn, user_id, uuid.UUID(campaign["upload_id"]))
    if upload is None or upload["status"] != "ready":
        raise InputError("upload_not_ready", "upload_id")
    file = await uploads.stored_file(conn, user_id, uuid.UUID(campaign["upload_id"]))
    stored = await asyncio.to_thread(store.head, file[0]) if file else None
    if file is None or stored is None:
        raise InputError("contacts_file_gone", "upload_id")
    if file[1] and stored.etag != file[1]:
        raise InputError("contacts_file_changed", "upload_id")
    missing = await asyncio.to_thread(missing_fields, campaign, upload["columns"])  # compiles: not on the loop
    if missing:
        raise InputError("undefined_fields", "html_body", names=", ".join(missing))


async def transition(conn: Conn, user_id: int, campaign_id: uuid.UUID, action: str) -> bool:
    """start / pause / resume / cancel; False when the user has no such campaign.

    Start and resume write the fan-out's command to the outbox in the same transaction.
    """
    allowed = {
        "start": (("draft", "scheduled"), "queued"),
        "pause": (("queued", "sending"), "paused"),
        "resume": (("paused",), "queued"),
        "cancel": (("draft", "scheduled", "queued", "sending", "paused"), "cancelled"),
    }
    sources, target = allowed[action]
    async with conn.transaction():
        row = await conn.fetchrow(
            "SELECT status FROM campaigns WHERE id = $1 AND user_id = $2 FOR UPDATE", campaign_id, user_id
        )
        if row is None:
            return False
        if row["status"] not in sources:
            raise StateConflict(row["status"], action)
        await conn.execute(
            """
            UPDATE campaigns SET status = $2, status_reason = NULL, updated_at = now(), scheduled_at = NULL,
                   started_at = CASE WHEN $3 = 'start' THEN now() ELSE started_at END,
                   finished_at = CASE WHEN $2 = 'cancelled' THEN now() ELSE finished_at END
             WHERE id = $1
            """,
            campaign_id, target, action,
        )
        if action == "cancel":
            await recipients.skip_open(conn, campaign_id, "cancelled")
        if action in ("start", "resume"):
            await outbox.add(conn, CampaignCommand(campaign_id, action))
    return True


async def heartbeat(conn: Conn, campaign_id: uuid.UUID) -> None:
    """A worker finished a batch: `updated_at` is what the stall sweeper reads (deferrals.py)."""
    await conn.execute("UPDATE campaigns SET updated_at = now() WHERE id = $1", campaign_id)


# Shown on the campaign page as it is: both languages, since workers do not know the reader's.
WAITING_FOR_QUEUE = ("Рассылка ждёт очереди сообщений: она сейчас недоступна. Отправка начнётся сама, когда"
                     " очередь вернётся; ничего не потеряно. / Waiting for the message queue, which is unavailable"
                     " right now. Sending starts by itself when it is back; nothing is lost.")

# A column for reads of a campaign: its start has waited in the outbox longer than a healthy
# broker would take (then `shown_reason` says so).
_QUEUE_AND_RETRY = (
    "(status = 'queued' AND EXISTS (SELECT 1 FROM outbox o WHERE o.key = convert_to(campaigns.id::text, 'UTF8')"
    " AND o.created_at < now() - interval '10 seconds')) AS waiting_for_queue,"
    " (SELECT d.not_before FROM deferred_batches d WHERE d.campaign_id = campaigns.id AND status = 'sending'"
    "   AND d.not_before > now() + interval '10 seconds' ORDER BY d.not_before LIMIT 1) AS retry_at"
)
# What the latest deferral is for, worded as next_batch.py words it (REASON_SQL is a constant there).
_RETRY_REASON = (
    f"(SELECT {REASON_SQL} FROM deferred_batches d WHERE d.campaign_id = campaigns.id AND status = 'sending'"  # noqa: S608
    " AND d.not_before > now() + interval '10 seconds' ORDER BY d.not_before LIMIT 1) AS retry_reason"
)
WAITING_SQL = ", ".join((_QUEUE_AND_RETRY, _RETRY_REASON, file_jobs.wait_columns("campaigns.id")))
_THEN = ("Отправка начнётся сама.", "Sending starts by itself.")


def shown_reason(row: Any) -> str | None:
    """The reason a campaign shows: the stored one; else that its start waits for the queue, or its
    big contact file for a file reader (behind the user's own other files, or anyone's); else,
    while its work waits out a limit or a retry, what for and until when."""
    reason: str | None = row["status_reason"]
    if reason:
        return reason
    if row["waiting_for_queue"]:
        return WAITING_FOR_QUEUE
    if row["status"] == "queued" and (waiting := file_jobs.waiting_reason(row, _THEN)):
        return waiting  # its big contact file waits for a file reader
    if row["retry_at"] is not None:  # the page words it itself from the API's next_batch
        return deferral_text(row["retry_at"], str(row["retry_reason"] or ""))
    return None
CONTACTS_FILE_GONE = ("Файл контактов больше не хранится (файлы хранятся 30 дней). Отмените эту рассылку"
                      " и создайте новую с файлом. / The contact file is no longer in storage (files are kept"
                      " for 30 days). Cancel this campaign and start a new one with the file.")

CONTACTS_FILE_CHANGED = ("Файл контактов заменили после проверки. Отмените эту рассылку и создайте новую, загрузив"
                         " файл снова. / The contact file was replaced after it was checked. Cancel this campaign"
                         " and start a new one, uploading the file again.")


def loading_too_slow(minutes: int) -> str:
    """The reason shown when loading a campaign's recipients ran into the file readers' time limit."""
    return (f"Загрузка получателей из файла заняла больше {minutes} мин. и остановлена; нажмите «Продолжить»,"
            f" чтобы загрузить остальных. / Loading the recipients from the file took more than {minutes}"
            " minutes and was stopped; resume to load the rest.")


def could_not_process(error: str) -> str:
    """The reason shown when part of a campaign's work was dead-lettered (both languages)."""
    return (f"Часть рассылки не удалось обработать ({error[:300]}); нажмите «Продолжить», чтобы повторить."
            f" / Part of this campaign could not be processed ({error[:300]}); resume it to try again.")
