"""Mail goes out in the order of the contact file, on the real stack (issue 12).

People expect row 1 first, and on an account with a daily limit the first day's mail must be the
file's first rows. Measured before the fix (batches of 50, 8 in flight): a 2,000-recipient
campaign's first email at the sink was row 151, rows up to 487 out of place; at 1,200 a minute,
600 recipients, the first was row 351. The sender worker works on a window of batches at once;
their sends now queue for the account's connections lowest row first (shared/delivery/turns.py),
and meet the account's limits holding a connection (shared/delivery/pacing.py), so only the sends
in flight at once — the account's connections × 2 lanes on a pipelining server — may pass one
another. The sink's arrival times give the order.
"""

from __future__ import annotations

import httpx
import pytest

from sendpy.devstack.smtp_sink import SmtpSink
from shared.settings import get_settings
from tests.conftest import Workers
from tests.helpers import run_campaign, wait_status

FINAL = {"finished", "paused", "cancelled"}


@pytest.fixture
def auth(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


def in_flight() -> int:
    """Sends of one account out at once in a worker: its connections, two lanes on each (the sink pipelines)."""
    return get_settings().smtp_pool_size * 2


def rows_as_received(sink: SmtpSink, prefix: str) -> list[int]:
    received = sorted((m for m in list(sink.messages) if m.rcpt_tos[0].startswith(prefix)), key=lambda m: m.at)
    return [int(m.rcpt_tos[0].removeprefix(prefix).split("@")[0]) for m in received]


def out_of_place(rows: list[int]) -> list[tuple[int, int]]:
    """(Nth received, row) for every row received later than the sends in flight allow: the first
    N received must be among the first N + in-flight rows."""
    return [(n, row) for n, row in enumerate(rows, start=1) if row > n + in_flight()]


async def test_an_unlimited_campaign_goes_out_in_the_order_of_the_file(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink, workers: Workers
) -> None:
    count = 1_000  # 20 batches of 50, 8 of them in the worker at once
    emails = [f"unlimited-order-{n}@example.com" for n in range(1, count + 1)]
    campaign_id = await run_campaign(api, auth, clean_sink, emails)
    done = await wait_status(api, auth, campaign_id, FINAL, timeout=240)
    assert done["status"] == "finished" and done["counts"]["sent"] == count, done
    rows = rows_as_received(clean_sink, "unlimited-order-")
    assert sorted(rows) == list(range(1, count + 1))
    assert not out_of_place(rows), f"(received as Nth, row): {out_of_place(rows)[:20]}; the first 30: {rows[:30]}"


async def test_a_limited_account_spends_its_limit_on_the_first_rows_in_order(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink, workers: Workers
) -> None:
    # 100 a minute, 160 rows in four batches: the first minute's 100 are rows 1-100 (but for the
    # sends in flight), then the batches deferred for the limit come back and go on in order.
    limit, count = 100, 160
    emails = [f"limited-order-{n}@example.com" for n in range(1, count + 1)]
    campaign_id = await run_campaign(api, auth, clean_sink, emails, per_minute=limit)
    done = await wait_status(api, auth, campaign_id, FINAL, timeout=300)
    assert done["status"] == "finished" and done["counts"]["sent"] == count, done
    rows = rows_as_received(clean_sink, "limited-order-")
    assert sorted(rows) == list(range(1, count + 1))
    assert not out_of_place(rows), f"(received as Nth, row): {out_of_place(rows)[:20]}; the first 30: {rows[:30]}"
    assert max(rows[:limit]) <= limit + in_flight(), rows[:limit]
