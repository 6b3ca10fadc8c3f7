"""The harness keeps tests apart: a campaign an earlier test started and never awaited must not
land in a later test's sink (it did: a verification test that expects an empty sink failed in CI
on mail of `test_send_message_reseal.py`)."""

from __future__ import annotations

import asyncio

import asyncpg
import httpx

from sendpy.devstack.smtp_sink import SmtpSink
from tests.conftest import Workers
from tests.helpers import eventually, run_campaign

RECIPIENTS = [f"left-behind-{n}@example.com" for n in range(5)]


async def test_a_campaign_started_and_left_behind(
    api: httpx.AsyncClient, api_key: str, db: asyncpg.Pool, clean_sink: SmtpSink, workers: Workers
) -> None:
    # Put off again and again (retries at most 2 s apart here) until this sink's faults are reset.
    clean_sink.faults.data_reply = lambda envelope: "451 4.3.0 try later"
    await run_campaign(api, {"Authorization": f"Bearer {api_key}"}, clean_sink, RECIPIENTS)
    await eventually(lambda: db.fetchval("SELECT min(attempts) FROM recipients WHERE email LIKE 'left-behind-%'"),
                     60, "every recipient tried once")


async def test_the_next_test_sees_none_of_it(clean_sink: SmtpSink, workers: Workers) -> None:
    await asyncio.sleep(5)  # more than the longest retry delay of the left-behind campaign
    assert [m.rcpt_tos for m in clean_sink.messages] == []
