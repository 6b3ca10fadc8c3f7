"""Two campaigns through one mailbox share its limits: the second one's plan counts the first
one's mail still to go (the walk saw both promise the same date)."""

from __future__ import annotations

import httpx

from sendpy.devstack.smtp_sink import SmtpSink
from tests.conftest import Workers
from tests.helpers import draft_campaign, get_campaign, make_sender, start_campaign, wait_status


async def test_a_second_campaign_on_the_same_account_plans_behind_the_first(
    api: httpx.AsyncClient, api_key: str, clean_sink: SmtpSink, workers: Workers
) -> None:
    auth = {"Authorization": f"Bearer {api_key}"}
    sender = await make_sender(api, auth, clean_sink, per_minute=20, per_day=500)
    first = await start_campaign(api, auth, sender["id"], [f"a{n}@example.com" for n in range(450)])
    await wait_status(api, auth, first, {"sending"})
    second = await draft_campaign(api, auth, sender["id"], [f"b{n}@example.com" for n in range(300)])
    alone = (await get_campaign(api, auth, first))["plan"]
    behind = (await get_campaign(api, auth, second))["plan"]
    assert alone["days"] == 1  # 450 fit into today's 500
    assert behind["count"] == 300
    assert behind["days"] == 2, behind  # 450 + 300 do not: its last email goes tomorrow
    assert behind["first_at"] > alone["first_at"]  # and its first one after the first campaign's
    await api.post(f"/v1/campaigns/{first}/cancel", headers=auth)
