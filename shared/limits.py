"""Per-SMTP-account sending limits: a sliding window per minute and per rolling 24 hours.

A message counts from the moment it starts until forever in the window it completed in, so
however long a send takes, no 60-second (or 24-hour) window can see more arrivals than the limit.
One account's mail is consumed by one worker at a time (it is keyed to one partition), so the
window lives in that worker; it is seeded from Postgres when the worker takes the account over.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Window:
    seconds: float
    limit: int


class SendLimiter:
    def __init__(self, windows: Iterable[Window], clock: Callable[[], float] = time.time) -> None:
        self._windows = [w for w in windows if w.limit]
        self._clock = clock
        horizon = max((w.seconds for w in self._windows), default=0)
        self._horizon = horizon
        self._done: deque[float] = deque()
        self._in_flight = 0

    @property
    def limited(self) -> bool:
        return bool(self._windows)

    def seed(self, completed_at: Iterable[float]) -> None:
        """Sends done before this worker took over (from Postgres)."""
        self._done.extend(sorted(completed_at))
        self._trim(self._clock())

    def _trim(self, now: float) -> None:
        while self._done and self._done[0] <= now - self._horizon:
            self._done.popleft()

    def _count_since(self, since: float) -> int:
        # _done is sorted; counting from the right is cheap for the short window.
        count = 0
        for stamp in reversed(self._done):
            if stamp <= since:
                break
            count += 1
        return count

    def wait_time(self) -> float:
        """0 if a send may start now, else the seconds until one may."""
        now = self._clock()
        self._trim(now)
        wait = 0.0
        for window in self._windows:
            used = self._in_flight + self._count_since(now - window.seconds)
            if used >= window.limit:
                # The slot frees when enough completed sends have left the window.
                excess = used - window.limit  # sends beyond the limit that must leave first
                inside = [s for s in self._done if s > now - window.seconds]
                if excess < len(inside):
                    wait = max(wait, inside[excess] + window.seconds - now)
                else:
                    wait = max(wait, 1.0)  # only in-flight sends fill it: check again shortly
        return wait

    def begin(self) -> None:
        self._in_flight += 1

    def end(self, sent: bool) -> None:
        self._in_flight -= 1
        if sent:
            self._done.append(self._clock())
