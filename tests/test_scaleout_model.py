"""The scale-out simulation in benchmarks/ reproduces the capacities it is built from."""

from __future__ import annotations

from benchmarks.scaleout import Costs, Scenario, simulate

RELAY = Scenario("one fast relay", accounts=1, smtp_ms=0.1, per_minute=None, recipients_per_account=200_000)


def test_one_worker_is_bound_by_its_cpu() -> None:
    costs = Costs(sender_us=200.0, pg_us=10.0)
    result = simulate(costs, RELAY, workers=1, partitions=6)
    assert result.busiest == "sender CPU"
    assert abs(result.msgs_per_s - 5_000) / 5_000 < 0.05


def test_many_workers_are_bound_by_postgres() -> None:
    costs = Costs(sender_us=200.0, pg_us=100.0, pg_cores=2)
    result = simulate(costs, RELAY, workers=40, partitions=40)
    assert result.busiest == "Postgres CPU"
    assert abs(result.msgs_per_s - 20_000) / 20_000 < 0.05


def test_limited_accounts_send_no_faster_than_their_limits() -> None:
    gmail = Scenario("gmail", accounts=50, smtp_ms=100.0, per_minute=20.0, recipients_per_account=200)
    result = simulate(Costs(), gmail, workers=10, partitions=10)
    # 200 each at 20 a minute: the first 20 at once, the other 180 over 9 minutes at least.
    assert result.msgs_per_s <= 50 * 200 / (9 * 60) * 1.01
    assert result.busiest == "account limits"
