"""Sending throughput, in one run on one machine, against Postfix's smtp-sink.

    .venv/bin/python benchmarks/sending.py [--recipients 100000] [--runs 3] [--fanout-rows 1000000]

Postgres runs with its default durability (fsync, synchronous_commit and full_page_writes on), as
production does; the run checks and prints those settings. Then, interleaved `--runs` times:

1. the limit: `smtp-source -s 10 -d` → smtp-sink (10 sessions, connections reused) and, for
   reference, `smtp-source -s 10` without `-d` (a new connection per message), with `-l` chosen so
   that smtp-source puts as many DATA bytes on the wire as one campaign message (both printed);
2. a full Sendpy campaign: CSV in S3 → fan-out → Kafka → sender workers → smtp-sink, every
   outcome committed to Postgres; msgs/s from the start command to status "finished", the ratio to
   the `-d` limit of the same round, and messages per CPU-second of the sender workers.

The median of each is reported. Before each measured step the 1-minute load is checked and, above
`--max-load`, waited out (within `--quiet-wait-minutes` in all); the load and the CPU other
processes used are written beside each number. Then:

3. the seed's way: a new smtplib connection and an EmailMessage per mail;
4. a profile of the sender workers during one more campaign (py-spy, Postgres's statement log and
   the statements the workers made, see profiling.py), unless `--no-profile` or py-spy is missing;
5. fan-out of a large CSV from S3 into recipient rows (COPY), in its own process: rows/s, peak RSS.

Needs the Debian package `postfix` (smtp-sink, smtp-source); `scripts/bench` installs it and py-spy.
Every service is a real process on loopback, started here and stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import smtplib
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

import profiling  # noqa: E402
import sysinfo  # noqa: E402
import wire  # noqa: E402

from sendpy.devstack.kafka import KafkaServer  # noqa: E402
from sendpy.devstack.ports import free_port, wait_for_port  # noqa: E402
from sendpy.devstack.postgres import PostgresServer  # noqa: E402
from sendpy.devstack.process import Child  # noqa: E402
from sendpy.devstack.s3 import S3Server, ensure_bucket  # noqa: E402
from sendpy.devstack.stack import cache_dir  # noqa: E402
from shared.crypto import new_master_key  # noqa: E402

# ≈ 2 KB of HTML with two merge fields (plus the unsubscribe link Sendpy adds).
BODY = ("<p>Dear {{ name }},</p><p>" + "Here is this month's news from our shop, with offers and events. " * 28
        + "</p><p>Sent to {{ email }}.</p>")


def smtp_sink(port: int, logs: Path) -> Child:
    child = Child("smtp-sink", ["smtp-sink", "-u", "nobody", "-m", "500", f"127.0.0.1:{port}", "1024"],
                  logs / "smtp-sink.log")
    child.start()
    wait_for_port(port, 10, alive=child.alive)
    return child


def smtp_source_rate(port: int, messages: int, length: int, *, reuse: bool) -> float:
    """smtp-source, 10 sessions, `length` payload bytes; `reuse` (-d) keeps each connection for the next message."""
    argv = ["smtp-source", "-s", "10", *(["-d"] if reuse else []), "-l", str(length), "-m", str(messages),
            "-f", "bench@example.com", "-t", "rcpt@example.com", f"127.0.0.1:{port}"]
    started = time.perf_counter()
    subprocess.run(argv, check=True)
    return messages / (time.perf_counter() - started)


def seed_way_rate(port: int, seconds: float) -> tuple[float, int]:
    """The seed project: connect, (no TLS here), build an EmailMessage, send, quit — per mail."""
    sent = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        message = EmailMessage()
        message["From"] = "bench@example.com"
        message["To"] = f"r{sent}@example.com"
        message["Subject"] = "News"
        message.set_content(BODY.replace("{{ email }}", f"r{sent}@example.com"), subtype="html")
        with smtplib.SMTP("127.0.0.1", port) as smtp:
            smtp.send_message(message)
        sent += 1
    return sent / (time.perf_counter() - started), sent


async def prepare_campaign(env: dict[str, str], rows: int, sink_port: int) -> str:
    """A user, a sender pointed at smtp-sink (verified), a contact CSV in S3 and a draft."""
    from shared.accounts import ensure_user
    from shared.crypto import key_provider_from_settings, seal
    from shared.db import create_pool, migrate
    from shared.settings import load_settings
    from shared.storage import UploadStore
    from shared.uploads import prepare, s3_key

    settings = load_settings()
    db = await create_pool(settings, max_size=2)
    async with db.acquire() as conn:
        await migrate(conn)
        user_id = await ensure_user(conn, f"bench-{uuid.uuid4().hex[:6]}@example.com")
        sealed = await seal(key_provider_from_settings(settings), "unused", f"user:{user_id}")
        sender_id = await conn.fetchval(
            "INSERT INTO senders (user_id, from_email, host, port, security, username, password_encrypted,"
            " verified_at) VALUES ($1, 'bench@example.com', '127.0.0.1', $2, 'none', '', $3, now()) RETURNING id",
            user_id, sink_port, sealed,
        )
        upload_id = uuid.uuid4()
        await conn.execute(
            "INSERT INTO uploads (id, user_id, filename, s3_key, status)"
            " VALUES ($1, $2, 'c.csv', $3, 'awaiting_upload')",
            upload_id, user_id, s3_key(user_id, upload_id),
        )
    store = UploadStore(settings)
    data = ("email,name\n" + "".join(f"person{n}@example.com,Person {n}\n" for n in range(rows))).encode()
    await asyncio.to_thread(store.put, s3_key(user_id, upload_id), data)
    await prepare(db, store, user_id, upload_id, settings.max_upload_bytes)  # detection, as the API does
    async with db.acquire() as conn:
        # Big files are counted by a worker; the fan-out needs only the detection, so skip the wait.
        await conn.execute("UPDATE uploads SET status = 'ready' WHERE id = $1", upload_id)
        campaign_id = uuid.uuid4()
        await conn.execute(
            "INSERT INTO campaigns (id, user_id, sender_id, upload_id, subject, html_body, status)"
            " VALUES ($1, $2, $3, $4, 'News for {{ name }}', $5, 'draft')",
            campaign_id, user_id, sender_id, upload_id, BODY,
        )
    await db.close()
    return str(campaign_id)


async def run_campaign(campaign_id: str, cpu: sysinfo.CpuMeter | None = None) -> dict[str, object]:
    from shared import broker
    from shared.commands import CampaignCommand
    from shared.db import create_pool
    from shared.settings import load_settings

    settings = load_settings()
    db = await create_pool(settings, max_size=2)
    producer = await broker.start_producer(settings)
    cid = uuid.UUID(campaign_id)
    await db.execute("UPDATE campaigns SET status = 'queued', started_at = now() WHERE id = $1", cid)
    before = cpu.snapshot() if cpu else None
    started = time.perf_counter()
    await producer.send_and_wait(settings.topic_campaigns, CampaignCommand(cid).encode(), key=cid.bytes)
    while True:
        status = await db.fetchval("SELECT status FROM campaigns WHERE id = $1", cid)
        if status in ("finished", "paused", "cancelled"):
            break
        await asyncio.sleep(0.1)
    total = time.perf_counter() - started
    after = cpu.snapshot() if cpu else None
    await producer.stop()
    row = await db.fetchrow(
        "SELECT count(*) FILTER (WHERE status = 'sent') AS sent, count(*) AS recipients,"
        " extract(epoch FROM max(updated_at) - min(updated_at)) AS span FROM recipients WHERE campaign_id = $1",
        cid,
    )
    await db.close()
    result: dict[str, object] = {"status": status, "sent": row["sent"], "recipients": row["recipients"],
                                 "seconds": round(total, 3), "sending_seconds": round(float(row["span"] or 0), 3)}
    if cpu and before and after:
        result["cpu_seconds"] = cpu.between(before, after)
        if cpu.split_root is not None:
            clients = {r["pid"]: r["application_name"] for r in await db_clients(settings.database_url)}
            result["postgres_cpu_seconds_by_process"] = cpu.split(before, after, clients)
    return result


async def db_clients(url: str) -> list[dict[str, object]]:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        return [dict(r) for r in await conn.fetch("SELECT pid, application_name FROM pg_stat_activity"
                                                  " WHERE backend_type = 'client backend'")]
    finally:
        await conn.close()


async def postgres_settings(url: str) -> dict[str, str]:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        names = ("fsync", "synchronous_commit", "full_page_writes", "wal_sync_method", "wal_level",
                 "shared_buffers", "max_wal_size", "checkpoint_timeout", "commit_delay", "server_version")
        return {name: await conn.fetchval(f"SHOW {name}") for name in names}
    finally:
        await conn.close()


async def postgres_counters(url: str) -> dict[str, float]:
    """Cumulative WAL, commit and tuple counters (each backend flushes its counts within a second)."""
    import asyncpg

    await asyncio.sleep(1.2)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("SELECT pg_stat_clear_snapshot()")
        wal = await conn.fetchrow("SELECT wal_records, wal_fpi, wal_bytes, wal_write, wal_sync, wal_write_time,"
                                  " wal_sync_time FROM pg_stat_wal")
        db = await conn.fetchrow("SELECT xact_commit, tup_inserted, tup_updated, blks_read, blks_hit"
                                 " FROM pg_stat_database WHERE datname = current_database()")
        ckpt = await conn.fetchrow("SELECT checkpoints_timed + checkpoints_req AS checkpoints FROM pg_stat_bgwriter")
        rec = await conn.fetchrow("SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables"
                                  " WHERE relname = 'recipients'")
    finally:
        await conn.close()
    out: dict[str, float] = {}
    for row in (wal, db, ckpt, rec):
        if row is not None:
            out.update({key: float(value) for key, value in row.items()})
    return out


def per_recipient(before: dict[str, float], after: dict[str, float], recipients: int) -> dict[str, float]:
    delta = {key: after[key] - before.get(key, 0.0) for key in after}
    return {
        "commits": round(delta["xact_commit"] / recipients, 3),
        "wal_bytes": round(delta["wal_bytes"] / recipients),
        "wal_full_page_images": round(delta["wal_fpi"] / recipients, 3),
        "wal_flushes_fsync": round(delta["wal_sync"] / recipients, 4),
        "recipient_row_updates": round(delta["n_tup_upd"] / recipients, 2),
        "of_which_hot": round(delta["n_tup_hot_upd"] / recipients, 2),
        "checkpoints_during_run": delta["checkpoints"],
        "wal_fsync_ms_total": round(delta["wal_sync_time"], 1),  # 0 unless track_wal_io_timing (profile pass)
    }


async def postgres_logging(url: str, on: bool) -> None:
    """The profile pass's server-side timings: every statement's duration, WAL write/flush timing."""
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        for name, value in (("log_min_duration_statement", "0"), ("log_parameter_max_length", "0"),
                            ("track_wal_io_timing", "on"), ("track_io_timing", "on")):
            if on:
                await conn.execute(f"ALTER SYSTEM SET {name} = '{value}'")
            else:
                await conn.execute(f"ALTER SYSTEM RESET {name}")
        await conn.execute("SELECT pg_reload_conf()")
    finally:
        await conn.close()
    await asyncio.sleep(0.5)


async def middle_recipient(campaign_id: str, count: int) -> tuple[int, str, dict[str, object]]:
    """A recipient as the fan-out stores it, from the middle of a `count`-recipient campaign (the CSV
    prepare_campaign writes); the stored fields of `campaign_id` show their shape."""
    from shared.db import create_pool
    from shared.settings import load_settings

    db = await create_pool(load_settings(), max_size=1)
    try:
        stored = await db.fetchval("SELECT fields FROM recipients WHERE campaign_id = $1 ORDER BY position LIMIT 1",
                                   uuid.UUID(campaign_id))
    finally:
        await db.close()
    if set(json.loads(stored)) != {"name"}:
        raise RuntimeError(f"the fan-out stored fields {stored}, not only name: update middle_recipient")
    n = count // 2
    return n + 1, f"person{n}@example.com", {"name": f"Person {n}"}


def fanout_child(campaign_id: str) -> None:
    """Runs in its own process: load the recipients of a campaign from its CSV in S3."""
    from shared.db import create_pool
    from shared.fanout import load_recipients
    from shared.settings import load_settings
    from shared.storage import UploadStore

    async def go() -> None:
        settings = load_settings()
        db = await create_pool(settings, max_size=2)
        started = time.perf_counter()
        async def published(first: int, last: int) -> None:
            return None  # only the loading is measured here

        await load_recipients(db, UploadStore(settings), uuid.UUID(campaign_id), published)
        elapsed = time.perf_counter() - started
        rows = await db.fetchval("SELECT recipient_count FROM campaigns WHERE id = $1", uuid.UUID(campaign_id))
        await db.close()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps({"rows": rows, "seconds": elapsed, "peak_rss_mb": peak}))

    asyncio.run(go())


def start_workers(kinds: list[str], child_env: dict[str, str], logs: Path, *,
                  shim_dir: Path | None = None) -> list[Child]:
    """Worker processes as production runs them (`python -m worker_image KIND`), or under
    worker_shim.py (Postgres calls timed) for the profile pass."""
    started = []
    for kind in kinds:
        n = len(list(logs.glob(f"{kind}-*.log")))
        # Named in pg_stat_activity, so that Postgres's CPU can be told apart by client.
        env = {**child_env, "DATABASE_URL": f"{child_env['DATABASE_URL']}?application_name=sendpy-{kind}"}
        argv = [sys.executable, "-m", "worker_image", kind]
        if shim_dir is not None:
            env = {**env, "BENCH_STATEMENTS_OUT": str(shim_dir / f"{kind}-{n}.json")}
            argv = [sys.executable, str(BENCH / "worker_shim.py"), kind]
        worker = Child(kind, argv, logs / f"{kind}-{n}.log", env=env, cwd=ROOT)
        worker.start()
        started.append(worker)
    return started


def limit_step(quiet: sysinfo.QuietWaiter, cpu: sysinfo.CpuMeter, port: int, messages: int, length: int,
               reuse: bool) -> dict[str, object]:
    what = "smtp-source -s 10" + (" -d" if reuse else "")
    load = quiet.wait(what)
    before = cpu.snapshot()
    rate = smtp_source_rate(port, messages, length, reuse=reuse)
    after = cpu.snapshot()
    used = cpu.between(before, after)
    print(f"   {what}: {rate:,.0f} msgs/s (load {load['load_1min_before']:.2f})", flush=True)
    return {"msgs_per_s": round(rate), **load, "load_1min_after": sysinfo.loadavg(),
            "other_processes_cpu_s": used["other_processes_on_machine"], "wall_s": used["wall"]}


def campaign_step(quiet: sysinfo.QuietWaiter, cpu: sysinfo.CpuMeter, env: dict[str, str], postgres_url: str,
                  recipients: int, sink_port: int) -> dict[str, object]:
    campaign_id = asyncio.run(prepare_campaign(env, recipients, sink_port))
    load = quiet.wait("the campaign")
    counters_before = asyncio.run(postgres_counters(postgres_url))
    campaign = asyncio.run(run_campaign(campaign_id, cpu))
    counters_after = asyncio.run(postgres_counters(postgres_url))
    sent = int(campaign["sent"])  # type: ignore[call-overload]
    if campaign["status"] != "finished" or sent != recipients:
        raise RuntimeError(f"the campaign did not finish with every recipient sent: {campaign}")
    used = campaign["cpu_seconds"]
    assert isinstance(used, dict)
    sender_cpu = float(used["senders"])
    rate = sent / float(campaign["seconds"])  # type: ignore[arg-type]
    print(f"   campaign: {rate:,.0f} msgs/s in {campaign['seconds']} s, senders used {sender_cpu:.1f} CPU-s"
          f" (load {load['load_1min_before']:.2f})", flush=True)
    return {
        **campaign, "campaign_id": campaign_id, **load, "load_1min_after": sysinfo.loadavg(),
        "msgs_per_s": round(rate),
        "sending_msgs_per_s": round(sent / float(campaign["sending_seconds"]))  # type: ignore[arg-type]
        if campaign["sending_seconds"] else None,
        "msgs_per_sender_cpu_s": round(sent / sender_cpu) if sender_cpu else None,
        "postgres_per_recipient": per_recipient(counters_before, counters_after, recipients),
    }


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def table(results: dict[str, object]) -> str:
    """The interleaved runs as a Markdown table, for benchmarks/README.md."""
    runs = results["runs"]
    assert isinstance(runs, list)
    lines = ["| round | 1-min load before -d / campaign | other processes' CPU during the campaign |"
             " smtp-source -d | smtp-source (no -d) | campaign start → finished | campaign ÷ -d |"
             " msgs per sender CPU-s |",
             "|---|---|---|---|---|---|---|---|"]
    for n, run in enumerate(runs, 1):
        used = run["campaign"]["cpu_seconds"]
        others = used["other_processes_on_machine"] / used["wall"] if used["wall"] else 0.0
        lines.append(f"| {n} | {run['limit_d']['load_1min_before']:.1f} / {run['campaign']['load_1min_before']:.1f} |"
                     f" {others:.2f} cores | {run['limit_d']['msgs_per_s']:,} | {run['limit_no_d']['msgs_per_s']:,} |"
                     f" {run['campaign']['msgs_per_s']:,} ({run['campaign']['seconds']:.1f} s) |"
                     f" **{run['ratio']:.3f}** | {run['campaign']['msgs_per_sender_cpu_s']:,} |")
    med = results["medians"]
    assert isinstance(med, dict)
    lines.append(f"| median | | | {med['limit_d']:,} | {med['limit_no_d']:,} | {med['campaign']:,} |"
                 f" **{med['ratio']:.3f}** | {med['msgs_per_sender_cpu_s']:,} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3, help="interleaved rounds of limit and campaign")
    parser.add_argument("--warmup", type=int, default=5_000, help="recipients of the unmeasured first campaign")
    parser.add_argument("--fanout-rows", type=int, default=1_000_000, help="0 skips the fan-out measurement")
    parser.add_argument("--source-messages", type=int, default=100_000)
    parser.add_argument("--seed-seconds", type=float, default=10.0)
    parser.add_argument("--senders", type=int, default=2, help="sender worker processes")
    parser.add_argument("--max-load", type=float, default=2.5, help="wait while the 1-minute load is above this")
    parser.add_argument("--quiet-wait-minutes", type=float, default=30.0, help="at most this long in all")
    parser.add_argument("--no-profile", action="store_true", help="skip the profile pass")
    parser.add_argument("--profile-rate", type=int, default=50, help="py-spy samples per second")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--fanout-only", metavar="CAMPAIGN_ID")
    args = parser.parse_args()
    if args.fanout_only:
        fanout_child(args.fanout_only)
        return
    for tool in ("smtp-sink", "smtp-source"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is missing: apt-get install postfix (or run scripts/bench)")
    profile = not args.no_profile
    if profile and profiling.Profiler.available() is None:
        print("py-spy is missing (pip install py-spy, or run scripts/bench): no profile pass", flush=True)
        profile = False

    work = Path(tempfile.mkdtemp(prefix="sendpy-bench-"))
    work.chmod(0o711)
    logs = work / "logs"
    services: list[object] = []
    children: list[Child] = []
    quiet = sysinfo.QuietWaiter(args.max_load, args.quiet_wait_minutes * 60)
    results: dict[str, object] = {"sender_workers": args.senders, "recipients": args.recipients}
    try:
        # Default durability: the benchmark measures what production commits, fsync and all.
        postgres = PostgresServer(work / "postgres", durable=True)
        kafka = KafkaServer(work / "kafka", cache_dir())
        s3 = S3Server(logs)
        for service in (postgres, kafka, s3):
            service.start()
            services.append(service)
        results["machine"] = sysinfo.machine(work)
        results["machine"]["disk_fsync"] = sysinfo.fsync_probe(work)  # type: ignore[index]
        pg = asyncio.run(postgres_settings(postgres.url))
        if pg["fsync"] != "on" or pg["synchronous_commit"] != "on" or pg["full_page_writes"] != "on":
            raise RuntimeError(f"Postgres is not running with default durability: {pg}")
        results["postgres"] = pg
        sink_port = free_port()
        children.append(smtp_sink(sink_port, logs))

        env = {
            "DATABASE_URL": postgres.url, "SENDPY_KAFKA_BOOTSTRAP": kafka.bootstrap,
            "SENDPY_S3_ENDPOINT_URL": s3.endpoint, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_REGION": "us-east-1", "SENDPY_LOCAL_MASTER_KEY": new_master_key(),
            "SENDPY_SMTP_ALLOW_PRIVATE": "true", "SENDPY_SMTP_ALLOW_PLAINTEXT": "true",
            "SENDPY_SMTP_POOL_SIZE": "10", "SENDPY_DELIVERY_BATCH_SIZE": "1000",
            "SENDPY_MAX_UPLOAD_BYTES": str(500 * 1024 * 1024), "SENDPY_LOG_LEVEL": "WARNING",
        }
        os.environ.update(env)
        ensure_bucket(s3.endpoint, "sendpy-uploads", "us-east-1")
        from shared import broker
        from shared.settings import load_settings

        asyncio.run(broker.ensure_topics(load_settings()))
        child_env = {**os.environ, **env}
        fanout_workers = start_workers(["fanout"], child_env, logs)
        senders = start_workers(["sender"] * args.senders, child_env, logs)
        children += fanout_workers + senders

        def meter(sender_children: list[Child]) -> sysinfo.CpuMeter:
            groups = {
                "senders": [c.pid for c in sender_children if c.pid], "fanout": [fanout_workers[0].pid or 0],
                "postgres": [postgres._child.pid if postgres._child and postgres._child.pid else 0],
                "kafka": [kafka._child.pid if kafka._child and kafka._child.pid else 0],
                "s3": [s3._child.pid or 0], "smtp_sink": [children[0].pid or 0],
            }
            return sysinfo.CpuMeter(groups, os.getpid(), [c.pid for c in sender_children if c.pid],
                                    split_root=groups["postgres"][0] or None)

        cpu = meter(senders)
        print(f"0. warm-up: a {args.warmup:,}-recipient campaign (workers join Kafka, connect) …", flush=True)
        warm_id = asyncio.run(prepare_campaign(env, args.warmup, sink_port))
        warm = asyncio.run(run_campaign(warm_id))
        results["warmup"] = {"recipients": args.warmup, "seconds": warm["seconds"], "status": warm["status"]}

        position, email, fields = asyncio.run(middle_recipient(warm_id, args.recipients))
        message = wire.campaign_message_bytes(warm_id, position, email, fields)
        length, overhead, source_bytes = wire.smtp_source_length_for(message)
        results["message_size"] = {
            "campaign_data_bytes": message, "smtp_source_data_bytes": source_bytes,
            "smtp_source_l": length, "smtp_source_header_bytes": overhead,
            "note": "DATA payload on the wire (dot-stuffed, without the final '.' line)",
        }
        print(f"   message on the wire: campaign {message:,} B, smtp-source -l {length} → {source_bytes:,} B",
              flush=True)

        runs: list[dict[str, object]] = []
        for n in range(1, args.runs + 1):
            print(f"{n}. round {n} of {args.runs}: limit without -d, limit with -d, then the campaign", flush=True)
            no_d = limit_step(quiet, cpu, sink_port, args.source_messages, length, reuse=False)
            with_d = limit_step(quiet, cpu, sink_port, args.source_messages, length, reuse=True)
            campaign = campaign_step(quiet, cpu, env, postgres.url, args.recipients, sink_port)
            runs.append({"limit_no_d": no_d, "limit_d": with_d, "campaign": campaign,
                         "ratio": round(float(campaign["msgs_per_s"]) / float(with_d["msgs_per_s"]), 3),  # type: ignore[arg-type]
                         "ratio_no_d": round(float(campaign["msgs_per_s"]) / float(no_d["msgs_per_s"]), 3)})  # type: ignore[arg-type]
        results["runs"] = runs
        medians = {
            "limit_d": round(median([float(r["limit_d"]["msgs_per_s"]) for r in runs])),  # type: ignore[index]
            "limit_no_d": round(median([float(r["limit_no_d"]["msgs_per_s"]) for r in runs])),  # type: ignore[index]
            "campaign": round(median([float(r["campaign"]["msgs_per_s"]) for r in runs])),  # type: ignore[index]
            "ratio": round(median([float(r["ratio"]) for r in runs]), 3),  # type: ignore[arg-type]
            "msgs_per_sender_cpu_s": round(median(
                [float(r["campaign"]["msgs_per_sender_cpu_s"] or 0) for r in runs])),  # type: ignore[index]
        }
        medians["ratio_of_medians"] = round(medians["campaign"] / medians["limit_d"], 3) if medians["limit_d"] else 0
        results["medians"] = medians
        results["quiet_wait_minutes_spent"] = round(quiet.waited / 60, 1)

        print(f"{args.runs + 1}. the seed's way …", flush=True)
        seed_load = quiet.wait("the seed's way")
        seed_rate, seed_sent = seed_way_rate(sink_port, args.seed_seconds)
        results["seed_way"] = {"msgs_per_s": round(seed_rate), "sent": seed_sent, **seed_load}
        results["campaign_vs_seed_way"] = round(medians["campaign"] / seed_rate, 1)

        if profile:
            print(f"{args.runs + 2}. profile: sender workers under py-spy, Postgres logging every statement …",
                  flush=True)
            results["profile"] = profile_pass(args, quiet, env, child_env, logs, work, postgres, sink_port,
                                              senders, children, meter)

        if args.fanout_rows:
            print(f"{args.runs + 3}. fan-out of {args.fanout_rows:,} rows from S3 …", flush=True)
            fanout_campaign = asyncio.run(prepare_campaign(env, args.fanout_rows, sink_port))
            fanout_load = quiet.wait("the fan-out")
            out = subprocess.run([sys.executable, __file__, "--fanout-only", fanout_campaign], env=child_env,
                                 capture_output=True, text=True, check=True, cwd=ROOT)
            fanout = json.loads(out.stdout.strip().splitlines()[-1])
            fanout["rows_per_s"] = round(fanout["rows"] / fanout["seconds"])
            results["fanout"] = {**fanout, **fanout_load}
    finally:
        for child in reversed(children):
            child.stop()
        for service in reversed(services):
            service.stop()  # type: ignore[attr-defined]
        if os.environ.get("BENCH_KEEP"):
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results, indent=2, ensure_ascii=False))
    if "runs" in results:
        print()
        print(table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, ensure_ascii=False))


def user_system(campaign: dict[str, object]) -> tuple[float, float]:
    """The sender workers' user and system CPU seconds over a campaign."""
    used = campaign.get("cpu_seconds", {})
    split = used.get("user_system_by_pid", {}) if isinstance(used, dict) else {}
    return (sum(float(v["user"]) for v in split.values()), sum(float(v["system"]) for v in split.values()))


def profile_pass(args: argparse.Namespace, quiet: sysinfo.QuietWaiter, env: dict[str, str],
                 child_env: dict[str, str], logs: Path, work: Path, postgres: PostgresServer, sink_port: int,
                 senders: list[Child], children: list[Child],
                 meter: Callable[[list[Child]], sysinfo.CpuMeter]) -> dict[str, object]:
    """One more campaign, not counted in the medians: the sender workers restarted under
    worker_shim.py (their Postgres calls timed) and recorded by py-spy, Postgres logging the
    duration of every statement and timing its WAL writes and flushes."""
    for worker in senders:
        worker.stop()
        children.remove(worker)
    shim_dir = work / "statements"
    shim_dir.mkdir()
    shimmed = start_workers(["sender"] * args.senders, child_env, logs, shim_dir=shim_dir)
    children.extend(shimmed)
    warm_id = asyncio.run(prepare_campaign(env, args.warmup, sink_port))
    asyncio.run(run_campaign(warm_id))  # the new workers join the group and connect
    campaign_id = asyncio.run(prepare_campaign(env, args.recipients, sink_port))
    asyncio.run(postgres_logging(postgres.url, on=True))
    load = quiet.wait("the profiled campaign")
    shim_files = sorted(shim_dir.glob("*.json"))
    statements_before = profiling.read_statements(shim_files)
    log_path = work / "postgres" / "postgres.log"
    log_start = log_path.stat().st_size
    counters_before = asyncio.run(postgres_counters(postgres.url))
    profiler = profiling.Profiler(work / "profile", [c.pid or 0 for c in shimmed], args.profile_rate)
    profiler.start()
    time.sleep(1.0)  # py-spy attaches
    try:
        campaign = asyncio.run(run_campaign(campaign_id, meter(shimmed)))
    finally:
        profiler.stop()
    log_end = log_path.stat().st_size
    counters_after = asyncio.run(postgres_counters(postgres.url))
    time.sleep(1.0)  # the shims write their totals twice a second
    statements_after = profiling.read_statements(shim_files)
    asyncio.run(postgres_logging(postgres.url, on=False))
    sent = int(campaign["sent"])  # type: ignore[call-overload]
    calls = profiling.statement_deltas(statements_before, statements_after)
    for row in calls:
        row["per_1000_recipients"] = round(int(row["calls"]) / sent * 1000, 1)  # type: ignore[call-overload]
    delta = {key: counters_after[key] - counters_before.get(key, 0.0) for key in counters_after}
    profile_files = work / "profile"
    keep = Path(os.environ.get("BENCH_PROFILE_DIR", "")) if os.environ.get("BENCH_PROFILE_DIR") else None
    if keep:
        keep.mkdir(parents=True, exist_ok=True)
        for path in profile_files.glob("*.txt"):
            shutil.copy(path, keep / path.name)
    return {
        **load,
        "campaign": {key: campaign[key] for key in ("status", "sent", "seconds", "cpu_seconds")},
        "msgs_per_s_while_profiled": round(sent / float(campaign["seconds"])),  # type: ignore[arg-type]
        "senders_py_spy": profiler.summary(*user_system(campaign)),
        "sender_postgres_calls": calls,
        "postgres_per_recipient": per_recipient(counters_before, counters_after, sent),
        "postgres_wal": {"wal_write_ms": round(delta["wal_write_time"], 1),
                         "wal_fsync_ms": round(delta["wal_sync_time"], 1),
                         "wal_fsyncs": int(delta["wal_sync"]), "commits": int(delta["xact_commit"])},
        "postgres_statements": profiling.statement_log(log_path, log_start, log_end),
    }


if __name__ == "__main__":
    main()
