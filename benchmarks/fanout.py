"""The fan-out's loading of a contact file, CPU per recipient: its own and the Postgres it causes.

    .venv/bin/python benchmarks/fanout.py [--rows 100000] [--runs 3] [--compare OTHER_TREE]

Starts Postgres (default durability) and moto S3, puts the CSV `sending.py` uses (`email,name`) in
S3 for each run, then loads it with `fanout.load_recipients` in a child process (no Kafka: only the
loading). Reported per run: wall seconds, rows/s, the child's CPU seconds (its rusage), the CPU
seconds of the Postgres process tree meanwhile, both per 100,000 rows, and the child's peak RSS.
With `--compare DIR` each run also loads with the `shared` package of DIR (e.g. a copy of the tree
before a change), alternating with this tree's, so that both meet the same machine load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
if "--child" not in sys.argv:  # the child imports `shared` from the tree PYTHONPATH names
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(BENCH))

import sysinfo  # noqa: E402  (stdlib only; the script's own directory is on the path anyway)


def _peak_rss_mb() -> float:
    """This process's own peak: ru_maxrss survives exec, so it would report the parent's peak at fork
    (which held the generated CSV) when that was higher."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(campaign_id: str) -> None:
    """Runs in its own process, importing `shared` from wherever PYTHONPATH says."""
    from shared.db import create_pool
    from shared.fanout import load_recipients
    from shared.settings import load_settings
    from shared.storage import UploadStore

    async def go() -> None:
        settings = load_settings()
        db = await create_pool(settings, max_size=2)

        async def published(first: int, last: int) -> None:
            return None

        cpu_before = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        await load_recipients(db, UploadStore(settings), uuid.UUID(campaign_id), published)
        elapsed = time.perf_counter() - started
        cpu_after = resource.getrusage(resource.RUSAGE_SELF)
        rows = await db.fetchval("SELECT recipient_count FROM campaigns WHERE id = $1", uuid.UUID(campaign_id))
        await db.close()
        cpu = (cpu_after.ru_utime + cpu_after.ru_stime) - (cpu_before.ru_utime + cpu_before.ru_stime)
        import shared

        print(json.dumps({"rows": rows, "seconds": elapsed, "cpu_s": cpu, "peak_rss_mb": _peak_rss_mb(),
                          "shared_from": str(Path(shared.__file__).parent.parent)}))

    asyncio.run(go())


def measure(tree: Path, campaign_id: str, env: dict[str, str], meter: sysinfo.CpuMeter) -> dict[str, object]:
    before = meter.snapshot()
    out = subprocess.run([sys.executable, __file__, "--child", campaign_id], check=True, capture_output=True,
                         text=True, cwd=tree, env={**env, "PYTHONPATH": str(tree)})
    after = meter.snapshot()
    result = json.loads(out.stdout.strip().splitlines()[-1])
    used = meter.between(before, after)
    per = 100_000 / result["rows"]
    return {**result, "rows_per_s": round(result["rows"] / result["seconds"]),
            "cpu_s_per_100k": round(result["cpu_s"] * per, 2),
            "postgres_cpu_s_per_100k": round(float(used["postgres"]) * per, 2),  # type: ignore[arg-type]
            "other_processes_cpu_s": used["other_processes_on_machine"], "load_1min": sysinfo.loadavg()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--compare", type=Path, help="a tree whose `shared` to load with too, alternately")
    parser.add_argument("--child", metavar="CAMPAIGN_ID")
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    from sending import prepare_campaign

    from sendpy.devstack.postgres import PostgresServer
    from sendpy.devstack.s3 import S3Server, ensure_bucket
    from shared.crypto import new_master_key

    work = Path(tempfile.mkdtemp(prefix="sendpy-bench-fanout-"))
    work.chmod(0o711)
    postgres = PostgresServer(work / "postgres", durable=True)
    s3 = S3Server(work)
    services: list[PostgresServer | S3Server] = [postgres, s3]
    for service in services:
        service.start()
    try:
        env = {"DATABASE_URL": postgres.url, "SENDPY_S3_ENDPOINT_URL": s3.endpoint, "AWS_ACCESS_KEY_ID": "bench",
               "AWS_SECRET_ACCESS_KEY": "bench", "AWS_REGION": "us-east-1", "SENDPY_LOCAL_MASTER_KEY": new_master_key(),
               "SENDPY_MAX_UPLOAD_BYTES": str(500 * 1024 * 1024), "SENDPY_LOG_LEVEL": "WARNING"}
        os.environ.update(env)
        ensure_bucket(s3.endpoint, "sendpy-uploads", "us-east-1")
        child_env = {**os.environ, **env}
        root_pid = postgres._child.pid if postgres._child and postgres._child.pid else 0
        meter = sysinfo.CpuMeter({"postgres": [root_pid]}, os.getpid())
        trees = {"this": ROOT, **({"compare": args.compare.resolve()} if args.compare else {})}
        results: dict[str, list[dict[str, object]]] = {name: [] for name in trees}
        for run in range(args.runs):
            for name, tree in trees.items():
                campaign = asyncio.run(prepare_campaign(env, args.rows, 25))
                result = measure(tree, campaign, child_env, meter)
                results[name].append(result)
                print(f"run {run + 1} {name}: {json.dumps(result)}", flush=True)
        for name, runs in results.items():
            medians = {key: statistics.median(float(r[key]) for r in runs)  # type: ignore[arg-type]
                       for key in ("rows_per_s", "cpu_s_per_100k", "postgres_cpu_s_per_100k", "peak_rss_mb")}
            print(f"median {name} ({args.rows:,} rows, {args.runs} runs): {json.dumps(medians)}")
    finally:
        for service in reversed(services):
            service.stop()


if __name__ == "__main__":
    main()
