"""The sending plan against the workers' own limiter: what the review promises is what happens."""

from __future__ import annotations

import random
import time

import pytest

from shared.campaigns.plan import DAY, plan
from shared.limits import SendLimiter, Window

NOW = 1_800_000_000.0


def simulate(count: int, per_minute: int | None, per_day: int | None, sent_at: list[float]) -> tuple[float, float]:
    """When the first and last of `count` instant sends go out under the workers' SendLimiter."""
    clock = [NOW]
    limiter = SendLimiter([Window(60, per_minute or 0), Window(DAY, per_day or 0)], clock=lambda: clock[0])
    limiter.seed(sent_at)
    times = []
    for _ in range(count):
        while (wait := limiter.wait_time()) > 0:
            clock[0] += wait
        limiter.begin()
        limiter.end(sent=True)
        times.append(clock[0])
    return times[0], times[-1]


@pytest.mark.parametrize(("count", "per_minute", "per_day", "history"), [
    (2755, 20, 500, 0),  # the school secretary's Gmail campaign
    (2755, 20, 500, 480),  # … after a day of other mail through the same account
    (1200, 20, 500, 500),  # the account is full for today
    (900, 60, 2000, 1700),  # Google Workspace
    (700, None, 300, 120),  # only a daily limit
    (5000, 10, None, 0),  # only a per-minute limit
    (300, 1, 5000, 0),  # a per-minute limit so low the daily one never binds
])
def test_the_plan_matches_the_workers_limiter(count: int, per_minute: int | None, per_day: int | None,
                                              history: int) -> None:
    rng = random.Random(count + history)
    sent_at = sorted(NOW - rng.uniform(1, DAY - 1) for _ in range(history))
    made = plan(count, per_minute, per_day, sent_at, NOW)
    assert made is not None
    first, last = simulate(count, per_minute, per_day, sent_at)
    # The limiter lets a minute's worth go at once where the plan paces them evenly: within a minute.
    assert made.first_at == pytest.approx(first, abs=61)
    assert made.last_at == pytest.approx(last, abs=61)


def test_the_gmail_plan_reads_as_the_issue_says() -> None:
    made = plan(2755, 20, 500, [], NOW)
    assert made is not None
    assert (made.days, made.per_day) == (6, 500)
    assert made.last_at == NOW + 5 * DAY + 254 * 3


def test_an_account_without_limits_uses_the_pace_seen_or_says_nothing() -> None:
    assert plan(100, None, None, [], NOW) is None
    paced = plan(1000, None, None, [], NOW, rate_per_minute=600)
    assert paced is not None and paced.last_at == pytest.approx(NOW + 99.9)
    assert plan(0, 20, 500, [], NOW).days == 0  # type: ignore[union-attr]


def test_a_million_recipients_plan_at_once() -> None:
    made = plan(1_000_000, 20, 500, [NOW - 10.0] * 500, NOW)
    assert made is not None and made.days == 2000  # the day the 1,000,000th email goes out


async def test_the_campaign_page_poll_reads_a_days_sends_once_in_a_few_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    from shared import smtp_accounts
    from shared.campaigns import progress

    reads: list[int] = []

    async def recent_sends(conn: object, sender_id: int, latest: int | None = None) -> list[float]:
        reads.append(sender_id)
        return [time.time() - 60] * 9_000  # a busy Office 365 account: 9,000 rows per read

    class Conn:
        async def fetchrow(self, query: str, sender_id: int) -> dict[str, int]:
            return {"per_minute": 30, "per_day": 10_000}

        async def fetchval(self, query: str, *args: object) -> int:
            return 0  # no other campaign of the account under way

    monkeypatch.setattr(smtp_accounts, "recent_sends", recent_sends)
    monkeypatch.setattr(progress, "_recent", progress._Recently())
    for _ in range(5):  # the page polls every 1.5 s
        shown = await progress.campaign_plan(Conn(), 41, 5_000, 0)  # type: ignore[arg-type]
        assert shown is not None and shown.count == 5_000
    assert reads == [41]
    monkeypatch.setattr(progress, "_RECENT_SECONDS", 0.0)
    await progress.campaign_plan(Conn(), 41, 5_000, 0)  # type: ignore[arg-type]
    assert reads == [41, 41]
