"""How many sender workers a deployment should run, from consumer lag.

Used by the lag-publishing function in AWS (and documented with a simulation in the README).
Partitions are the unit of scale: more workers than partitions would sit idle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class ScalingPolicy:
    per_worker_lag: int = 5_000  # backlog one worker clears in about a minute
    min_workers: int = 1
    max_workers: int = 20
    scale_in_cooldown_seconds: float = 300.0
    scale_out_cooldown_seconds: float = 60.0


def desired_workers(
    lag: int | None,
    partitions: int,
    current: int,
    seconds_since_change: float,
    policy: ScalingPolicy = ScalingPolicy(),
) -> int:
    """The worker count to run now.

    `lag` is None when the metric is missing (brokers omit it during rebalances): then nothing
    changes, because a missing number is not an empty queue. Scaling out waits for the short
    cooldown, scaling in for the long one and at most halves the workers each time, so a lull
    inside a campaign does not tear down all the workers it still needs.
    """
    ceiling = max(1, min(policy.max_workers, partitions))
    floor = min(policy.min_workers, ceiling)
    if lag is None:
        return min(max(current, floor), ceiling)
    wanted = min(max(math.ceil(lag / policy.per_worker_lag), floor), ceiling)
    if wanted > current:
        return wanted if seconds_since_change >= policy.scale_out_cooldown_seconds or current < floor else current
    if wanted < current and seconds_since_change >= policy.scale_in_cooldown_seconds:
        return max(current // 2, wanted)
    return min(max(current, floor), ceiling)
