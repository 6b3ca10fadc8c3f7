"""Sending under SMTP faults and limits, on the real stack (Kafka, Postgres, workers, SMTP socket)."""

from __future__ import annotations

import random
from collections import Counter

import httpx
import pytest

from sendpy.devstack.smtp_sink import SmtpSink
from tests.conftest import Workers
from tests.helpers import make_sender, make_upload, run_campaign, wait_status


@pytest.fixture
def auth(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


def addresses(n: int, tag: str) -> list[str]:
    return [f"{tag}{i}@example.com" for i in range(n)]


async def test_random_451s_are_retried_until_everyone_has_it(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink, workers: Workers
) -> None:
    clean_sink.faults.random_451_rate = 0.3
    emails = addresses(300, "retry")
    campaign_id = await run_campaign(api, auth, clean_sink, emails)
    done = await wait_status(api, auth, campaign_id, {"finished", "paused"}, timeout=120)
    assert done["status"] == "finished", done
    assert done["counts"]["sent"] == 300 and done["counts"]["failed"] == 0
    received = Counter(r for m in clean_sink.messages for r in m.rcpt_tos)
    assert set(received) == set(emails)
    assert max(received.values()) == 1  # a 451 means not accepted: nothing was sent twice
    retried = (await api.get(f"/v1/campaigns/{campaign_id}/recipients?limit=500", headers=auth)).json()["items"]
    assert any(r["attempts"] > 1 for r in retried)


async def test_550_fails_those_recipients_with_the_reply(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink, workers: Workers
) -> None:
    emails = addresses(60, "some")
    gone = set(random.sample(emails, 7))
    clean_sink.faults.rcpt_reply = lambda rcpt: f"550 5.1.1 <{rcpt}>: user unknown" if rcpt in gone else None
    campaign_id = await run_campaign(api, auth, clean_sink, emails)
    done = await wait_status(api, auth, campaign_id, {"finished", "paused"})
    assert done["counts"] == {"pending": 0, "sending": 0, "sent": 53, "failed": 7, "skipped": 0}
    failed = (await api.get(f"/v1/campaigns/{campaign_id}/recipients?status=failed", headers=auth)).json()["items"]
    assert {r["email"] for r in failed} == gone
    assert all(r["reply"].startswith("550 5.1.1") and r["attempts"] == 1 for r in failed)
    assert {r for m in clean_sink.messages for r in m.rcpt_tos} == set(emails) - gone


async def test_rejected_password_pauses_the_campaign_and_fails_nobody(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink, workers: Workers
) -> None:
    sender = await make_sender(api, auth, clean_sink, password="soon-revoked")  # verified while it worked
    upload = await make_upload(api, auth, ("email\n" + "\n".join(addresses(40, "auth")) + "\n").encode())
    clean_sink.faults.rejected_passwords.add("soon-revoked")  # then the provider revokes it
    draft = (await api.post("/v1/campaigns", headers=auth, json={
        "sender_id": sender["id"], "upload_id": upload["id"], "subject": "s", "html_body": "<p>b</p>"})).json()
    assert (await api.post(f"/v1/campaigns/{draft['id']}/start", headers=auth)).status_code == 202
    done = await wait_status(api, auth, draft["id"], {"finished", "paused"})
    assert done["status"] == "paused"
    assert "535" in done["status_reason"] or "password" in done["status_reason"].lower()
    assert done["counts"] == {"pending": 40, "sending": 0, "sent": 0, "failed": 0, "skipped": 0}

    clean_sink.faults.rejected_passwords.clear()  # the user fixes the password, then resumes
    assert (await api.post(f"/v1/campaigns/{draft['id']}/resume", headers=auth)).status_code == 202
    done = await wait_status(api, auth, draft["id"], {"finished"})
    assert done["counts"]["sent"] == 40


async def test_quota_reply_pauses_the_sender_then_everyone_is_sent(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink, workers: Workers
) -> None:
    state = {"refusals": 0}

    def quota_once(envelope: object) -> str | None:
        if state["refusals"] < 1 and len(clean_sink.messages) >= 10:
            state["refusals"] += 1
            return "550 5.4.5 Daily user sending limit exceeded"
        return None

    clean_sink.faults.data_reply = quota_once  # type: ignore[assignment]
    emails = addresses(50, "quota")
    campaign_id = await run_campaign(api, auth, clean_sink, emails)
    done = await wait_status(api, auth, campaign_id, {"finished", "paused"}, timeout=90)
    assert done["status"] == "finished", done
    assert done["counts"]["sent"] == 50 and done["counts"]["failed"] == 0
    assert state["refusals"] == 1
    assert sorted(r for m in clean_sink.messages for r in m.rcpt_tos) == sorted(emails)


async def test_per_minute_limit_holds_at_the_sink(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink, workers: Workers
) -> None:
    limit = 15
    emails = addresses(35, "paced")
    campaign_id = await run_campaign(api, auth, clean_sink, emails, per_minute=limit)
    done = await wait_status(api, auth, campaign_id, {"finished", "paused"}, timeout=200)
    assert done["status"] == "finished" and done["counts"]["sent"] == 35
    arrivals = sorted(m.at for m in clean_sink.messages if m.rcpt_tos[0].startswith("paced"))
    assert len(arrivals) == 35
    busiest = max(sum(1 for t in arrivals if start <= t < start + 60) for start in arrivals)
    assert busiest <= limit, busiest
    assert arrivals[-1] - arrivals[0] >= 120  # 35 at 15 a minute cannot take less than two minutes
