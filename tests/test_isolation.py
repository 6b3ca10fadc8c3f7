"""The harness keeps tests apart: a campaign an earlier test started and never awaited must not
land in a later test's sink (it did: a verification test that expects an empty sink failed in CI
on mail of `test_send_message_reseal.py`, sent once a later test's workers took it up)."""

from __future__ import annotations

import time

import asyncpg
import httpx

from sendpy.devstack.smtp_sink import SmtpSink
from tests.conftest import Workers, stop_earlier_campaigns
from tests.helpers import eventually, never, run_campaign

RECIPIENTS = [f"left-behind-{n}@example.com" for n in range(5)]


async def test_a_campaign_left_behind_reaches_no_later_test(
    api: httpx.AsyncClient, api_key: str, db: asyncpg.Pool, clean_sink: SmtpSink, workers: Workers
) -> None:
    # An earlier test: its campaign started while no sender worker runs, and never awaited.
    for child in workers.running("sender"):
        workers.kill(child)
    try:
        campaign_id = await run_campaign(api, {"Authorization": f"Bearer {api_key}"}, clean_sink, RECIPIENTS)
        await eventually(lambda: db.fetchval("SELECT count(*) FROM recipients WHERE campaign_id = $1::uuid",
                                             campaign_id), 60, "the recipients loaded")
        # The next test begins: what `clean_sink` does, then a sender worker that would take it up.
        await stop_earlier_campaigns(db, time.time() + 1)
    finally:
        workers.restore()
    await never(lambda: clean_sink.messages, 10, "the left-behind campaign's mail")
    assert await db.fetchval("SELECT status FROM campaigns WHERE id = $1::uuid", campaign_id) == "cancelled"
