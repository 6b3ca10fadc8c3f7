"""Sending throughput, in one run on one machine, against Postfix's smtp-sink.

    .venv/bin/python benchmarks/sending.py [--recipients 100000] [--fanout-rows 1000000]

1. smtp-source → smtp-sink: the machine's practical SMTP limit (10 sessions, 2 KB messages).
2. A full Sendpy campaign: CSV in S3 → fan-out → Kafka → sender worker → smtp-sink, every outcome
   persisted in Postgres; msgs/s from start to "finished" and over the sending phase alone.
3. The seed's way: a new smtplib connection and an EmailMessage per mail.
4. Fan-out of a large CSV from S3 into recipient rows (COPY), in its own process: rows/s, peak RSS.

Needs the Debian package `postfix` (smtp-sink, smtp-source); `scripts/bench` installs it.
Every service is a real process on loopback, started here and stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import shutil
import smtplib
import subprocess
import sys
import tempfile
import time
import uuid
from email.message import EmailMessage
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

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


def smtp_source_rate(port: int, messages: int) -> float:
    started = time.perf_counter()
    subprocess.run(["smtp-source", "-s", "10", "-l", "2048", "-m", str(messages), "-f", "bench@example.com",
                    "-t", "rcpt@example.com", f"127.0.0.1:{port}"], check=True)
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


async def run_campaign(campaign_id: str) -> dict[str, float]:
    from shared import broker
    from shared.commands import CampaignCommand
    from shared.db import create_pool
    from shared.settings import load_settings

    settings = load_settings()
    db = await create_pool(settings, max_size=2)
    producer = await broker.start_producer(settings)
    cid = uuid.UUID(campaign_id)
    await db.execute("UPDATE campaigns SET status = 'queued', started_at = now() WHERE id = $1", cid)
    started = time.perf_counter()
    await producer.send_and_wait(settings.topic_campaigns, CampaignCommand(cid).encode(), key=cid.bytes)
    await producer.stop()
    while True:
        status = await db.fetchval("SELECT status FROM campaigns WHERE id = $1", cid)
        if status in ("finished", "paused", "cancelled"):
            break
        await asyncio.sleep(0.2)
    total = time.perf_counter() - started
    row = await db.fetchrow(
        "SELECT count(*) FILTER (WHERE status = 'sent') AS sent, count(*) AS recipients,"
        " extract(epoch FROM max(updated_at) - min(updated_at)) AS span FROM recipients WHERE campaign_id = $1",
        cid,
    )
    await db.close()
    return {"status": status, "sent": row["sent"], "recipients": row["recipients"], "seconds": total,
            "sending_seconds": float(row["span"] or 0)}


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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--fanout-rows", type=int, default=1_000_000)
    parser.add_argument("--source-messages", type=int, default=100_000)
    parser.add_argument("--seed-seconds", type=float, default=10.0)
    parser.add_argument("--senders", type=int, default=2, help="sender worker processes")
    parser.add_argument("--fanout-only", metavar="CAMPAIGN_ID")
    args = parser.parse_args()
    if args.fanout_only:
        fanout_child(args.fanout_only)
        return
    for tool in ("smtp-sink", "smtp-source"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is missing: apt-get install postfix (or run scripts/bench)")

    work = Path(tempfile.mkdtemp(prefix="sendpy-bench-"))
    work.chmod(0o711)
    logs = work / "logs"
    services: list[object] = []
    children: list[Child] = []
    results: dict[str, object] = {
        "machine": f"{os.cpu_count()} cores, {platform.machine()}, {platform.processor() or 'cpu'}, "
                   f"{platform.python_implementation()} {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d"),
        "sender_workers": args.senders,
    }
    try:
        postgres = PostgresServer(work / "postgres", durable=False,
                                  settings={"log_min_duration_statement": os.environ.get("BENCH_PG_LOG_MS", "-1")})
        kafka = KafkaServer(work / "kafka", cache_dir())
        s3 = S3Server(logs)
        for service in (postgres, kafka, s3):
            service.start()
            services.append(service)
        sink_port = free_port()
        children.append(smtp_sink(sink_port, logs))

        print("1. smtp-source → smtp-sink …", flush=True)
        source = smtp_source_rate(sink_port, args.source_messages)
        results["smtp_source_msgs_per_s"] = round(source)

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
        for n, kind in enumerate(["fanout"] + ["sender"] * args.senders):
            worker = Child(kind, [sys.executable, "-m", "worker_image", kind], logs / f"{kind}-{n}.log",
                           env=child_env, cwd=ROOT)
            worker.start()
            children.append(worker)

        print(f"2. a {args.recipients:,}-recipient campaign through Kafka and the workers …", flush=True)
        campaign_id = asyncio.run(prepare_campaign(env, args.recipients, sink_port))
        campaign = asyncio.run(run_campaign(campaign_id))
        results["campaign"] = {
            **campaign,
            "msgs_per_s": round(campaign["sent"] / campaign["seconds"]),
            "sending_msgs_per_s": round(campaign["sent"] / campaign["sending_seconds"])
            if campaign["sending_seconds"] else None,
        }
        results["campaign_vs_smtp_source"] = round(campaign["sent"] / campaign["seconds"] / source, 3)

        print("3. the seed's way …", flush=True)
        seed_rate, seed_sent = seed_way_rate(sink_port, args.seed_seconds)
        results["seed_way"] = {"msgs_per_s": round(seed_rate), "sent": seed_sent}
        results["campaign_vs_seed_way"] = round(campaign["sent"] / campaign["seconds"] / seed_rate, 1)

        print(f"4. fan-out of {args.fanout_rows:,} rows from S3 …", flush=True)
        fanout_campaign = asyncio.run(prepare_campaign(env, args.fanout_rows, sink_port))
        out = subprocess.run([sys.executable, __file__, "--fanout-only", fanout_campaign], env=child_env,
                             capture_output=True, text=True, check=True, cwd=ROOT)
        fanout = json.loads(out.stdout.strip().splitlines()[-1])
        fanout["rows_per_s"] = round(fanout["rows"] / fanout["seconds"])
        results["fanout"] = fanout
    finally:
        for child in reversed(children):
            child.stop()
        for service in reversed(services):
            service.stop()  # type: ignore[attr-defined]
        if os.environ.get("BENCH_KEEP"):
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
