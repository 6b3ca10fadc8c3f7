"""How sending throughput grows with sender workers and partitions: a discrete-event simulation.

One machine cannot show what 10 or 100 sender workers do, so this models the pipeline at the
granularity of delivery batches, with costs measured by `sending.py` on the 2-core machine
(the defaults below; pass the figures of a newer run with the options):

- Kafka: a deliveries topic of P partitions, each read in order by one worker of the group
  (a worker works on all its partitions at once, `--lanes` batches of each at a time, as
  `worker_image/consume.py` does). More workers than partitions sit idle.
- A sender worker is one Python process on one vCPU: every message costs it `sender_us` of CPU
  (rendering, SMTP client, driver), shared by the batches it works on at once.
- An SMTP account has at most `connections` per worker, shared by all the worker's batches of it;
  a message holds a connection for `smtp_ms` (the remote server's time per pipelined
  transaction). A rate-limited account's batches all go to one partition (their key is the
  sender), so one worker at a time enforces its limit, and a batch the limit holds back is
  deferred, freeing the partition; an unlimited one (a company relay) is spread over every
  partition.
- Postgres: `pg_cores` cores; every recipient costs `pg_us` of its CPU (the claim and the outcome
  write) and `wal_bytes` of WAL, written at `wal_mb_s`.

The output names, for each worker count, the throughput and the busiest resource, which is the
bottleneck. Run: `.venv/bin/python benchmarks/scaleout.py` (options: `--help`).
"""

from __future__ import annotations

import argparse
import functools
import heapq
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Costs:
    sender_us: float = 198.0  # 5,043 messages per sender CPU-second (run B)
    pg_us: float = 170.0  # 16.7–17.0 Postgres CPU-s per 100,000 recipients (run B)
    wal_bytes: float = 1_000.0
    pg_cores: int = 2
    wal_mb_s: float = 125.0  # gp3's baseline throughput
    batch_size: int = 200  # SENDPY_DELIVERY_BATCH_SIZE
    connections: int = 5  # SENDPY_SMTP_POOL_SIZE: per account and worker


@dataclass(frozen=True)
class Scenario:
    name: str
    accounts: int
    smtp_ms: float
    per_minute: float | None  # the account's limit; None: unlimited, spread over partitions
    recipients_per_account: int


@dataclass
class Result:
    workers: int
    partitions: int
    msgs_per_s: float
    busiest: str
    utilisation: dict[str, float]


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self._events: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()

    def at(self, when: float, action: Callable[[], None]) -> None:
        heapq.heappush(self._events, (when, next(self._order), action))

    def run(self) -> None:
        while self._events:
            self.now, _, action = heapq.heappop(self._events)
            action()


class _Server:
    """A FIFO station with `servers` identical servers; remembers how long they were busy."""

    def __init__(self, clock: _Clock, servers: int) -> None:
        self.clock, self.servers = clock, servers
        self.free_at = [0.0] * servers
        self.busy = 0.0

    def serve(self, seconds: float, then: Callable[[], None]) -> None:
        slot = min(range(self.servers), key=self.free_at.__getitem__)
        start = max(self.clock.now, self.free_at[slot])
        self.free_at[slot] = start + seconds
        self.busy += seconds
        self.clock.at(start + seconds, then)


def simulate(costs: Costs, scenario: Scenario, workers: int, partitions: int, lanes: int = 1) -> Result:
    """`lanes`: batches of one partition a worker works on at once."""
    clock = _Clock()
    active = min(workers, partitions)
    cpus = [_Server(clock, 1) for _ in range(active)]
    postgres = _Server(clock, costs.pg_cores)
    wal = _Server(clock, 1)
    queues: list[list[tuple[int, int]]] = [[] for _ in range(partitions)]  # (account, recipients)
    # Each account's (user's) batches interleaved with the others', as the per-user send windows
    # publish them.
    batches = math.ceil(scenario.recipients_per_account / costs.batch_size)
    for number in range(batches):
        size = min(costs.batch_size, scenario.recipients_per_account - number * costs.batch_size)
        for account in range(scenario.accounts):
            spread = scenario.per_minute is None
            partition = hash((account, number)) % partitions if spread else account % partitions
            queues[partition].append((account, size))
    # A limited account's allowance, refilled at its rate up to one minute's worth: a batch sends
    # what it allows and defers the rest to when it allows more, freeing the partition meanwhile.
    tokens = [scenario.per_minute or 0.0] * scenario.accounts
    refilled_at = [0.0] * scenario.accounts
    idle_lanes = [0] * partitions  # of a partition's `lanes` batches at once, how many have none
    pools: dict[tuple[int, int], _Server] = {}
    sent = [0]

    def allowance(account: int) -> float:
        assert scenario.per_minute is not None
        rate = scenario.per_minute / 60
        tokens[account] = min(scenario.per_minute, tokens[account] + (clock.now - refilled_at[account]) * rate)
        refilled_at[account] = clock.now
        return tokens[account]

    def defer(partition: int, account: int, size: int, not_before: float) -> None:
        def republish() -> None:
            queues[partition].append((account, size))
            if idle_lanes[partition]:
                idle_lanes[partition] -= 1
                work_on(partition)
        clock.at(not_before, republish)

    def work_on(partition: int) -> None:
        if not queues[partition]:
            idle_lanes[partition] += 1
            return
        account, size = queues[partition].pop(0)
        if scenario.per_minute is not None:
            allowed = min(size, int(allowance(account) + 1e-9))  # a refill due now may fall 1e-15 short
            tokens[account] -= allowed
            if allowed < size:
                wanted = min(size - allowed, scenario.per_minute)
                wait = (wanted - tokens[account]) / (scenario.per_minute / 60)
                defer(partition, account, size - allowed, clock.now + max(wait, 0.001))
            if not allowed:
                work_on(partition)
                return
            size = allowed
        cpu = cpus[partition % active]

        def after_claim() -> None:
            wire = math.ceil(size / costs.connections) * scenario.smtp_ms / 1000
            done = {"cpu": False, "wire": False}

            def part_done(which: str) -> None:
                done[which] = True
                if all(done.values()):
                    postgres.serve(size * costs.pg_us / 2e6, lambda: wal.serve(
                        size * costs.wal_bytes / (costs.wal_mb_s * 1e6), finished))

            cpu.serve(size * costs.sender_us / 1e6, lambda: part_done("cpu"))
            # A worker opens at most `connections` to an account, however many of its batches it
            # works on: batches of one account on one worker take turns on them.
            key = (partition % active, account)
            pool = pools.setdefault(key, _Server(clock, 1))
            pool.serve(wire, lambda: part_done("wire"))

        def finished() -> None:
            sent[0] += size
            work_on(partition)

        postgres.serve(size * costs.pg_us / 2e6, after_claim)

    for partition in range(partitions):
        for _ in range(lanes):
            clock.at(0.0, functools.partial(work_on, partition))
    clock.run()
    elapsed = clock.now
    utilisation = {
        "sender CPU": sum(c.busy for c in cpus) / (active * elapsed),
        "Postgres CPU": postgres.busy / (costs.pg_cores * elapsed),
        "WAL": wal.busy / elapsed,
    }
    busiest = max(utilisation, key=utilisation.__getitem__)
    if utilisation[busiest] < 0.8:
        # Nothing inside Sendpy is busy: the mail waits on the accounts' limits, or on the remote
        # servers with only partitions × connections messages in flight.
        limits = scenario.accounts * (scenario.per_minute or math.inf) / 60
        in_flight = partitions * lanes * costs.connections / (scenario.smtp_ms / 1000)
        busiest = "account limits" if limits <= in_flight else "in-flight messages ÷ SMTP latency"
    return Result(workers, partitions, sent[0] / elapsed, busiest, utilisation)


SCENARIOS = (
    Scenario("company relay, 1 ms a message (unlimited)", 1, 1.0, None, 2_000_000),
    Scenario("200 relays at 40 ms a message (unlimited)", 200, 40.0, None, 20_000),
    Scenario("2,000 Gmail accounts, 20 a minute", 2_000, 150.0, 20.0, 100),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sender-us", type=float, default=Costs.sender_us, help="sender CPU per message")
    parser.add_argument("--pg-us", type=float, default=Costs.pg_us, help="Postgres CPU per recipient")
    parser.add_argument("--pg-cores", type=int, default=Costs.pg_cores)
    parser.add_argument("--wal-bytes", type=float, default=Costs.wal_bytes)
    parser.add_argument("--wal-mb-s", type=float, default=Costs.wal_mb_s)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--lanes", type=int, default=1, help="batches of one partition worked on at once")
    parser.add_argument("--partitions", type=int, help="deliveries topic partitions (default: 6, or one a worker)")
    args = parser.parse_args()
    costs = replace(Costs(), sender_us=args.sender_us, pg_us=args.pg_us, pg_cores=args.pg_cores,
                    wal_bytes=args.wal_bytes, wal_mb_s=args.wal_mb_s)
    print(f"costs: {costs}")
    print("| scenario | workers | partitions | msgs/s | bottleneck | sender CPU | Postgres CPU | WAL |")
    print("|---|---|---|---|---|---|---|---|")
    for scenario in SCENARIOS:
        for workers in args.workers:
            result = simulate(costs, scenario, workers, partitions=args.partitions or max(6, workers),
                              lanes=args.lanes)
            u = result.utilisation
            print(f"| {scenario.name} | {workers} | {result.partitions} | {result.msgs_per_s:,.0f} | "
                  f"{result.busiest} | {u['sender CPU']:.0%} | {u['Postgres CPU']:.0%} | {u['WAL']:.0%} |")


if __name__ == "__main__":
    main()
