"""When a sending campaign's next emails are due, and why they wait.

A sender worker that must not send yet (the account's limit, a server that asked it to wait, a
temporary error) defers the rest of its batch with a short English reason (`deferrals.defer`).
The campaign page words that in its reader's language and time zone from the structured form
here; `status_reason` keeps a bilingual sentence for API users (in UTC: it has no reader's zone).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from shared.db import Conn

# The reasons the scheduler writes itself, as codes; anything else is a server's or a library's
# words after a temporary failure, shown as they are.
_CODES = {"rate limit": "rate_limit", "sender paused": "sender_paused", "slow server": "slow_server",
          "time budget": "continuing", "retry": "retry", "in progress": "in_progress",
          "campaign paused": "resumed"}
_WORDS = {
    "minute_limit": ("лимит отправителя", "the sender's limit"),
    "day_limit": ("лимит отправителя", "the sender's limit"),
    "rate_limit": ("лимит отправителя", "the sender's limit"),
    "sender_paused": ("почтовый сервер попросил подождать", "the mail server asked to wait"),
    "slow_server": ("сервер отвечает медленно", "the server answers slowly"),
    "continuing": ("отправка продолжается", "sending goes on"),
    "retry": ("повтор после временной ошибки сервера", "a retry after a temporary server error"),
    "in_progress": ("проверка писем, которые уже отправляются", "a check on emails that are already being sent"),
    "resumed": ("отправка продолжается после паузы", "sending goes on after a pause"),
}
# The scheduler stores "retry" whenever open recipients are left and nothing stopped the batch. That
# is a retry only when one of them waits for its next attempt after a temporary error; otherwise
# they are still claimed by another batch of the same recipients (a pause and resume, or a window
# refill, published them again) and the deferral only checks they went out.
REASON_SQL = (
    "CASE WHEN d.reason = 'retry' AND NOT EXISTS (SELECT 1 FROM recipients r WHERE r.campaign_id = d.campaign_id"
    " AND r.position BETWEEN d.first_position AND d.last_position AND r.status = 'pending'"
    " AND r.next_attempt_at > now()) THEN 'in progress' ELSE d.reason END"
)
# A per-minute wait is at most a minute; a deferral put off longer than this waits for the day's.
_DAY_WAIT_SECONDS = 90


@dataclass(frozen=True)
class NextBatch:
    at: dt.datetime
    reason: str  # as stored by the scheduler ("in progress" for a "retry" that is none, REASON_SQL)
    code: str  # minute_limit, day_limit, rate_limit, sender_paused, slow_server, continuing, retry, error
    limit: int | None  # the sender's limit that holds the emails back (minute_limit / day_limit)

    @property
    def detail(self) -> str | None:
        """The server's words after a temporary error (they have no translation)."""
        return self.reason.replace("\x00", "")[:200] if self.code == "error" else None

    def to_json(self, status_reason: str | None) -> dict[str, Any]:
        return {"at": int(self.at.timestamp()), "reason": self.code, "limit": self.limit, "detail": self.detail,
                # True when status_reason says nothing but this wait: the page shows this instead.
                "in_status_reason": status_reason == deferral_text(self.at, self.reason)}


def classify(reason: str, span_seconds: float, per_minute: int | None, per_day: int | None) -> tuple[str, int | None]:
    """(code, limit) of a stored deferral reason; `span_seconds` is how long the batch was put off."""
    code = _CODES.get(reason, "error")
    if code != "rate_limit":
        return code, None
    if per_day and (span_seconds > _DAY_WAIT_SECONDS or not per_minute):
        return "day_limit", per_day
    if per_minute:
        return "minute_limit", per_minute
    return "rate_limit", None


def deferral_text(at: dt.datetime, reason: str) -> str:
    """The wait in both languages, for `status_reason` (workers and API users have no reader's
    language or zone: the time is UTC, and said so in each language)."""
    clock = at.astimezone(dt.UTC).strftime("%H:%M")
    code = _CODES.get(reason, "error")
    if code == "error":
        why = reason.replace("\x00", "")[:200].replace(" / ", " - ")  # " / " parts the two languages
        return (f"Следующая попытка около {clock} (UTC) после временной ошибки: {why}"
                f" / Next attempt around {clock} UTC after a temporary error: {why}")
    ru, en = _WORDS[code]
    if code in ("sender_paused", "retry"):
        return f"Следующая попытка около {clock} (UTC) — {ru} / Next attempt around {clock} UTC — {en}"
    return f"Следующие письма около {clock} (UTC) — {ru} / Next emails around {clock} UTC — {en}"


async def next_batch(conn: Conn, campaign_id: uuid.UUID) -> NextBatch | None:
    """The campaign's earliest deferred work, if it is sending and that work waits more than a few
    seconds (the same rows `states.shown_reason` reads)."""
    row = await conn.fetchrow(
        f"SELECT d.not_before, {REASON_SQL} AS reason,"  # noqa: S608  # a constant of this module
        " extract(epoch FROM d.not_before - d.created_at)::float8 AS span, s.per_minute, s.per_day"
        " FROM deferred_batches d JOIN campaigns c ON c.id = d.campaign_id LEFT JOIN senders s ON s.id = d.sender_id"
        " WHERE d.campaign_id = $1 AND c.status = 'sending' AND d.not_before > now() + interval '10 seconds'"
        " ORDER BY d.not_before LIMIT 1",
        campaign_id,
    )
    if row is None:
        return None
    code, limit = classify(row["reason"], row["span"], row["per_minute"], row["per_day"])
    return NextBatch(row["not_before"], row["reason"], code, limit)
