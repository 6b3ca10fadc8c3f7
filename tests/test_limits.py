from __future__ import annotations

from shared.limits import SendLimiter, Window


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_per_minute_window_is_never_exceeded() -> None:
    clock = Clock()
    limiter = SendLimiter([Window(60, 3)], clock)
    starts = []
    for _ in range(10):
        wait = limiter.wait_time()
        clock.now += wait
        assert limiter.wait_time() == 0
        starts.append(clock.now)
        limiter.begin()
        clock.now += 0.5  # the send takes time
        limiter.end(sent=True)
    completions = [s + 0.5 for s in starts]
    for i, first in enumerate(completions):
        assert sum(1 for c in completions[i:] if c < first + 60) <= 3


def test_in_flight_sends_count() -> None:
    clock = Clock()
    limiter = SendLimiter([Window(60, 2)], clock)
    limiter.begin()
    limiter.begin()
    assert limiter.wait_time() > 0
    limiter.end(sent=False)  # a failed send frees its slot
    assert limiter.wait_time() == 0


def test_daily_window_seeded_from_history() -> None:
    clock = Clock()
    limiter = SendLimiter([Window(60, 100), Window(86400, 5)], clock)
    limiter.seed([clock.now - 86000 + n for n in range(5)])
    wait = limiter.wait_time()
    assert 399 < wait <= 401  # the oldest of the five leaves the 24-hour window in ~400 s
    clock.now += wait
    assert limiter.wait_time() == 0


def test_unlimited_never_waits() -> None:
    limiter = SendLimiter([Window(60, 0)])
    assert not limiter.limited
    for _ in range(1000):
        limiter.begin()
        limiter.end(True)
    assert limiter.wait_time() == 0
