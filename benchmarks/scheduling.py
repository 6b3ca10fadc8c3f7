"""The scheduler's own CPU per message, without Postgres or a network: µs a message.

    .venv/bin/python benchmarks/scheduling.py [--messages 40000] [--rounds 5] [--against HEAD]

Several delivery batches of one account run at once through one `Deliverer` (as a sender worker
runs a partition's batches), their lanes competing for the account's pooled connections and its
limiter: what decides which message goes next, and through which connection. The store is in
memory and the connections are pipelined fakes that answer "250" after yielding to the loop once,
so what is measured is the scheduler, the connection pool and the limiter (plus rendering a small
plain template, the same in every version). Two cases: an account without limits, and one whose
per-minute limit is checked for every message but never reached (2,000 messages a round there: the
limiter counts its window from the newest send back, so its cost grows with what the window holds).

`--against REV` measures `shared/` at that git revision too (exported with `git archive`; the
working tree is not touched), interleaved round by round in fresh processes; medians printed.
CPU is user + system of the process (os.times) on uvloop, as the workers run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import revisions  # the script's own directory is on the path
import sysinfo

ROOT = Path(__file__).resolve().parent.parent
BATCHES = 8  # the tests' window: 4 partitions × 2, all of one account
CONNECTIONS = 5
LIMITED = 2_000


def child(root: Path, messages: int, per_minute: int | None) -> dict[str, float]:
    """Runs in its own process with `root`'s shared/ first on the path."""
    sys.path[:0] = [str(root), str(ROOT)]
    import asyncio
    import uuid

    import uvloop

    from shared.campaigns.states import CampaignForSending
    from shared.commands import DeliveryBatch
    from shared.crypto import LocalKeyProvider, seal
    from shared.delivery.scheduler import Deliverer
    from shared.mail.messenger import ConnectPolicy, Reply, ReplyKind
    from shared.recipients import Claimed
    from shared.smtp_accounts import Sender

    sent_reply = Reply(ReplyKind.SENT, 250, "2.0.0 queued")

    class Connection:
        pipelined, users, sent, is_open, may_send = True, 0, 0, False, None

        def __init__(self, account: Any, policy: Any) -> None:
            pass

        async def open(self, deadline: float | None = None) -> None:
            self.is_open = True

        async def send(self, sender: str, recipient: str, message: bytes, deadline: float | None = None) -> Reply:
            await asyncio.sleep(0)  # the reply comes on a later turn of the loop, as a server's does
            self.sent += 1
            return sent_reply

        async def quit(self) -> None:
            self.is_open = False

        def close(self) -> None:
            self.is_open = False

    class Store:
        transient_errors = (ConnectionError,)

        def __init__(self, campaign: CampaignForSending, sender: Sender, count: int) -> None:
            self.campaign_row, self.sender_row = campaign, sender
            self.status = {p: "pending" for p in range(1, count + 1)}
            self.rows = {p: (f"person{p}@example.com", {"name": f"Person {p}"}) for p in range(1, count + 1)}

        async def campaign(self, campaign_id: uuid.UUID) -> CampaignForSending:
            return self.campaign_row

        async def campaign_status(self, campaign_id: uuid.UUID) -> str:
            return "sending"

        async def sender(self, sender_id: int) -> Sender:
            return self.sender_row

        async def sender_paused_until(self, sender_id: int) -> float:
            return 0.0

        async def recent_sends(self, sender_id: int) -> list[float]:
            return []

        async def due_positions(self, campaign_id: uuid.UUID, first: int, last: int, lease: float) -> list[int]:
            return [p for p in range(first, last + 1) if self.status[p] == "pending"]

        async def claim(self, campaign_id: uuid.UUID, user_id: int, positions: Any, lease: float) -> list[Claimed]:
            for p in positions:
                self.status[p] = "sending"
            return [Claimed(p, *self.rows[p], 1) for p in positions]

        async def record(self, campaign_id: uuid.UUID, results: Any) -> None:
            for r in results:
                self.status[r.position] = "pending" if r.status == "released" else r.status

        async def next_due(self, campaign_id: uuid.UUID, first: int, last: int, lease: float) -> float | None:
            return None

        async def heartbeat(self, campaign_id: uuid.UUID) -> None:
            pass

        async def finish_if_done(self, campaign_id: uuid.UUID) -> bool:
            return False

        async def defer(self, batch: DeliveryBatch, not_before: float, reason: str) -> None:
            raise AssertionError(f"deferred: {reason}")

        async def note_slow_server(self, campaign_id: uuid.UUID, reason: str | None) -> None:
            pass

    async def run() -> dict[str, float]:
        keys = LocalKeyProvider(os.urandom(32))
        sender = Sender(id=3, user_id=7, from_email="news@example.org", from_name="News", host="smtp.example.org",
                        port=465, security="tls", username="news@example.org", preset=None, per_minute=per_minute,
                        per_day=None, recipients_per_connection=None,
                        sealed_password=await seal(keys, "app-password", "user:7"))
        policy = ConnectPolicy(allow_private=True, allow_plaintext=False, timeout=5.0)
        each = messages // BATCHES
        total = 0.0
        sent = 0
        passes = max(2, 20_000 // messages)  # os.times ticks in 10 ms: enough messages to measure
        for pass_ in range(passes + 1):
            campaign = CampaignForSending(uuid.uuid4(), 7, 3, "sending", "News for {{ name }}",
                                          "<p>Dear {{ name }}, our news.</p>", None, each * BATCHES)
            store = Store(campaign, sender, each * BATCHES)
            deliverer = Deliverer(store, keys, policy, connections_per_sender=CONNECTIONS,  # type: ignore[arg-type]
                                  connect=Connection)  # type: ignore[arg-type]
            batches = [DeliveryBatch(campaign.id, 3, n * each + 1, (n + 1) * each) for n in range(BATCHES)]
            await deliverer.deliver(DeliveryBatch(campaign.id, 3, 1, 1))  # the compiled template, the account
            before = os.times()
            await asyncio.gather(*(deliverer.deliver(batch) for batch in batches))
            after = os.times()
            await deliverer.close()
            assert all(status == "sent" for status in store.status.values()), "every message sent"
            if pass_:  # the first warms up
                total += after.user + after.system - before.user - before.system
                sent += each * BATCHES
        return {"us_per_message": total / sent * 1e6}

    return uvloop.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=40_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--against", help="a git revision whose shared/ is measured too")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--per-minute", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.messages, args.per_minute)))
        return
    trees = {"working tree": ROOT}
    with tempfile.TemporaryDirectory(prefix="sendpy-scheduling-bench-") as scratch:
        if args.against:
            trees[args.against] = Path(scratch) / "baseline"
            trees[args.against].mkdir()
            revisions.export_shared(args.against, trees[args.against])
        cases = {"no limits": (args.messages, None), "per-minute limit": (LIMITED, 2 * LIMITED)}
        results: dict[tuple[str, str], list[float]] = {}
        for round_ in range(1, args.rounds + 1):
            for case, (messages, per_minute) in cases.items():
                for name, root in trees.items():
                    load = sysinfo.loadavg()
                    argv = [sys.executable, __file__, "--child", str(root), "--messages", str(messages)]
                    if per_minute:
                        argv += ["--per-minute", str(per_minute)]
                    started = time.perf_counter()
                    measured = json.loads(subprocess.run(argv, check=True, capture_output=True, text=True).stdout)
                    results.setdefault((case, name), []).append(measured["us_per_message"])
                    print(f"round {round_} {case}, {name}: {measured['us_per_message']:.1f} µs a message"
                          f" (load {load:.1f}, {time.perf_counter() - started:.1f} s)")
        print()
        for (case, name), values in results.items():
            print(f"median {case}, {name}: {statistics.median(values):.1f} µs a message")


if __name__ == "__main__":
    main()
