"""Mail held back behind the same user's other mail says so (issue 10, the final attack).

The attack: 30 one-shot messages through an SMTP server that accepts the connection and never
greets, then one through a good server. Each user's batches share one window (send_window.py), so
the good one waited about 3 minutes behind the user's own stuck mail — by design — but its
`status_reason` was null all along. Now a campaign with mail to go and no place in the window says
it waits for the user's other mail, in Russian and English, until it gets a place.
"""

from __future__ import annotations

import time
import uuid
from contextlib import AsyncExitStack
from typing import Any

import asyncpg
import httpx

from sendpy.devstack.smtp_sink import SmtpSink
from shared import recipients, send_window
from shared.accounts import ensure_user
from shared.commands import DeliveryBatch
from shared.send_window import OWN_MAIL_FIRST, Window
from tests.conftest import Workers, new_api_key
from tests.fault_report import record_user
from tests.helpers import eventually, wait_status
from tests.test_send_message_e2e import seed_request
from tests.test_user_faults_slow_smtp import SilentServer

RU, EN = OWN_MAIL_FIRST.split(" / ")
# Each message's connect and login may take half the batch budget (4 s); a server that overran
# keeps its account waiting 30 s a time, so its batches keep their places in the window meanwhile.
WORKER_ENV = {"SENDPY_BATCH_BUDGET_SECONDS": "8", "SENDPY_SLOW_BACKOFF_SECONDS": "30"}
STUCK = 10  # one-shots to the silent server: the session's window is 8
REASON_SECONDS = 60.0  # generous (a shared, noisy machine)


class Published:
    def __init__(self) -> None:
        self.batches: list[DeliveryBatch] = []

    async def __call__(self, batches: list[DeliveryBatch]) -> None:
        self.batches.extend(batches)


async def campaigns_of(db: asyncpg.Pool, sizes: list[int], *, skipped: bool = False) -> list[uuid.UUID]:
    ids = [uuid.uuid4() for _ in sizes]
    async with db.acquire() as conn:
        user_id = await ensure_user(conn, f"waits-{ids[0].hex[:8]}@example.com")
        sender_id = await conn.fetchval(
            "INSERT INTO senders (user_id, from_email, host, port, security, username, password_encrypted)"
            " VALUES ($1, 'a@example.com', 'smtp.example.com', 465, 'tls', 'a', '\\x00') RETURNING id", user_id)
        for campaign_id, size in zip(ids, sizes, strict=True):
            await conn.execute(
                "INSERT INTO campaigns (id, user_id, sender_id, status, subject, html_body, recipient_count,"
                " recipients_loaded) VALUES ($1, $2, $3, 'sending', 's', 'h', $4, true)",
                campaign_id, user_id, sender_id, size)
            await recipients.copy_in(conn, campaign_id, ((f"u{n}@example.com", {}) for n in range(1, size + 1)))
    return ids


async def reasons(db: asyncpg.Pool, ids: list[uuid.UUID]) -> list[str | None]:
    rows = {r["id"]: r["status_reason"] for r in await db.fetch(
        "SELECT id, status_reason FROM campaigns WHERE id = ANY($1::uuid[])", ids)}
    return [rows[campaign_id] for campaign_id in ids]


async def test_a_campaign_without_a_place_says_it_waits_and_stops_saying_it_once_it_has_one(db: Any) -> None:
    big, small, done = await campaigns_of(db, [200, 1, 1])
    await db.execute("UPDATE recipients SET status = 'skipped' WHERE campaign_id = $1", done)
    window, published = Window(batch_size=50, size=2), Published()
    for campaign_id in (big, small, done):
        async with db.acquire() as conn:
            await send_window.restart(conn, campaign_id)
        await send_window.top_up(db, campaign_id, published, window)
    assert [(b.campaign_id, b.first) for b in published.batches] == [(big, 1), (big, 51)]
    # The one-recipient campaign waits for the big one's batches; the one with nothing left to
    # send (every recipient skipped) waits for nothing and says nothing.
    assert await reasons(db, [big, small, done]) == [None, OWN_MAIL_FIRST, None]
    await send_window.finished(db, DeliveryBatch(big, 1, 1, 50, True), published, window)
    assert (published.batches[-1].campaign_id, published.batches[-1].first) == (small, 1)
    assert await reasons(db, [big, small]) == [None, None]  # it has its place: the reason goes


async def test_one_shots_stuck_at_a_silent_server_and_the_good_one_behind_them_all_say_why(
    api: httpx.AsyncClient, db: Any, clean_sink: SmtpSink, workers: Workers
) -> None:
    key = await new_api_key(db)
    auth = {"Authorization": f"Bearer {key}"}
    for usual in workers.running("sender"):
        workers.kill(usual)
    sender_worker = workers.start("sender", **WORKER_ENV)
    stuck: list[str] = []
    try:
        async with AsyncExitStack() as stack:
            silent = await stack.enter_async_context(SilentServer(clean_sink.port))
            silent.silent = True

            async def one_shot(email: str, port: int, sender: str) -> str:
                answer = await api.post("/api/send-message", headers=auth, json=seed_request(
                    clean_sink, [email], server_port=port, sender_email=sender))
                assert answer.status_code == 202, answer.text
                return str(answer.json()["campaign_id"])

            async def campaign(campaign_id: str) -> dict[str, Any]:
                found: dict[str, Any] = (await api.get(f"/v1/campaigns/{campaign_id}", headers=auth)).json()
                return found

            warm_up = await one_shot("warm-up@example.com", clean_sink.port, "good@example.org")
            await wait_status(api, auth, warm_up, {"finished"}, timeout=120)  # the new worker has its partitions
            began = time.monotonic()
            for n in range(STUCK):
                stuck.append(await one_shot(f"stuck{n}@example.com", silent.port, "stuck@example.org"))

            async def every_stuck_one_says_why() -> list[str] | None:
                said = [(await campaign(campaign_id))["status_reason"] for campaign_id in stuck]
                return said if all(said) else None

            # The stuck ones hold the user's window first (on a loaded machine the good one could
            # otherwise be given a place before they took theirs, and rightly not wait at all).
            said = await eventually(every_stuck_one_says_why, REASON_SECONDS, "every stuck one-shot says why")
            stuck_seconds = time.monotonic() - began
            good_began = time.monotonic()
            good = await one_shot("good@example.com", clean_sink.port, "good@example.org")

            async def good_says_why() -> dict[str, Any] | None:
                found = await campaign(good)
                return found if RU in (found["status_reason"] or "") and EN in found["status_reason"] else None

            held = await eventually(good_says_why, REASON_SECONDS, "the good one-shot says it waits for the user's")
            held_seconds = time.monotonic() - good_began
            assert held["status"] == "sending" and held["counts"]["sent"] == 0, held

            # Those with a place: their server; those without one (the window is 8): the user's other mail.
            assert any("отвечает очень медленно" in reason for reason in said), said

            for campaign_id in stuck:  # the user gives up on them: the good one goes, and says so no more
                assert (await api.post(f"/v1/campaigns/{campaign_id}/cancel", headers=auth)).status_code == 200
            done = await wait_status(api, auth, good, {"finished"}, timeout=120)
            assert done["counts"]["sent"] == 1 and done["status_reason"] is None, done
            assert [m for m in clean_sink.messages if "good@example.com" in m.rcpt_tos]
            record_user("waiting_behind_own_mail", f"the good one `sending` «{held['status_reason'][:70]}…»; each"
                        f" stuck one says why within {stuck_seconds:.0f} s; the stuck ones cancelled, the good one"
                        " `finished`, its reason gone", held_seconds)
    finally:
        workers.kill(sender_worker)
        workers.restore()
    print(f"every stuck one-shot said why within {stuck_seconds:.1f} s")
