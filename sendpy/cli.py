"""`sendpy`: run the local stack, create users and keys, migrate, run a worker."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import signal
import sys
import time
from pathlib import Path

from sendpy.devstack.stack import Stack, default_home, load_env_file


def _dev(args: argparse.Namespace) -> int:
    stack = Stack(default_home(), api_port=args.port, sender_workers=args.senders)
    stopping = False

    def request_stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    started = time.monotonic()
    try:
        print(f"Starting the local stack in {stack.home} …", flush=True)
        stack.start_services()
        stack.prepare()
        stack.start_app()
        key = _ensure_dev_key(stack)
        sink_plain, sink_tls = stack.sink_ports
        imap = (f"127.0.0.1:{stack.imap_port} (TLS), your SMTP login and password; mail to anyone@bounce.example.net"
                " bounces there" if stack.imap_port else "off (Dovecot is not installed)")
        print(
            f"""
Sendpy is up in {time.monotonic() - started:.1f}s.
  Web UI and API   http://127.0.0.1:{args.port}/
  Dev API key      {key}   (also in {stack.home / 'dev-api-key'})
  SMTP sink        127.0.0.1:{sink_plain} (STARTTLS), 127.0.0.1:{sink_tls} (TLS); mail in {stack.home / 'mail'}
  IMAP (bounces)   {imap}
  Kafka            {stack.env['SENDPY_KAFKA_BOOTSTRAP']}
  Postgres         {stack.env['DATABASE_URL']}
  S3               {stack.env['SENDPY_S3_ENDPOINT_URL']}
  Logs             {stack.home / 'logs'}

Try it:
  curl -s http://127.0.0.1:{args.port}/api/send-message -H "Authorization: Bearer {key}" \\
    -H 'Content-Type: application/json' -d '{{"message": "<p>Hello!</p>", "message_subject": "Hi",
    "recipient_email_list": ["a@example.com", "b@example.com"], "sender_email": "me@example.com",
    "smtp_password": "any", "server_host": "127.0.0.1", "server_port": {sink_plain}}}'

Ctrl-C stops everything.""",
            flush=True,
        )
        while not stopping:
            for child in stack.children:
                if not child.alive():
                    print(f"{child.name} exited; its log:\n{child.tail()}", file=sys.stderr, flush=True)
                    stopping = True
            time.sleep(0.5)
    finally:
        print("Stopping …", flush=True)
        stack.stop()
    return 0


def _ensure_dev_key(stack: Stack) -> str:
    path = stack.home / "dev-api-key"
    if path.exists():
        return path.read_text().strip()
    token = asyncio.run(_create_user("dev@localhost", None))
    path.write_text(token + "\n")
    path.chmod(0o600)
    return token


async def _create_user(email: str, password: str | None) -> str:
    """Create the user if missing and a new API key for them; returns the key."""
    from shared.accounts import create_api_key, ensure_user
    from shared.addresses import check_address
    from shared.db import create_pool, migrate
    from shared.settings import load_settings

    if email != "dev@localhost" and check_address(email).normalized is None:
        raise SystemExit(f"not an email address: {email} ({check_address(email).reason})")
    pool = await create_pool(load_settings(), max_size=1)
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
            async with conn.transaction():
                user_id = await ensure_user(conn, email, password)
                return await create_api_key(conn, user_id, "cli")
    finally:
        await pool.close()


def _create_user_cmd(args: argparse.Namespace) -> int:
    password = getpass.getpass("Password for the web UI (empty: API key only): ") if args.password else None
    print(asyncio.run(_create_user(args.email, password or None)))
    return 0


def _migrate(args: argparse.Namespace) -> int:
    from shared.db import create_pool, migrate
    from shared.settings import load_settings

    async def run() -> list[int]:
        pool = await create_pool(load_settings(), max_size=1)
        async with pool.acquire() as conn:
            applied = await migrate(conn)
        await pool.close()
        return applied

    applied = asyncio.run(run())
    print(f"applied: {applied}" if applied else "schema is up to date")
    return 0


def _new_master_key(args: argparse.Namespace) -> int:
    from shared.crypto import new_master_key

    print(new_master_key())
    return 0


def _package_lambda(args: argparse.Namespace) -> int:
    from sendpy.packaging import build

    built = build(Path(args.output))
    print(f"{built} ({built.stat().st_size / 1e6:.1f} MB)")
    return 0


def _worker(args: argparse.Namespace) -> int:
    from worker_image.__main__ import main as worker_main

    worker_main([args.kind])
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sendpy", description="Sendpy: bulk email through your own mailbox.")
    commands = parser.add_subparsers(dest="command", required=True)
    dev = commands.add_parser("dev", help="run the whole local stack (Kafka, Postgres, S3, SMTP sink, API, workers)")
    dev.add_argument("--port", type=int, default=int(os.environ.get("SENDPY_API_PORT", "8000")))
    dev.add_argument("--senders", type=int, default=1, help="sender worker processes")
    dev.set_defaults(run=_dev)
    user = commands.add_parser("create-user", help="create a user (if new) and print a new API key")
    user.add_argument("email")
    user.add_argument("--password", action="store_true", help="also set a password for the web UI")
    user.set_defaults(run=_create_user_cmd)
    commands.add_parser("migrate", help="apply database migrations").set_defaults(run=_migrate)
    commands.add_parser("new-master-key", help="print a new local master key").set_defaults(run=_new_master_key)
    package = commands.add_parser("package-lambda", help="build the Lambda deployment package (zip)")
    package.add_argument("--output", default="build/lambda.zip")
    package.set_defaults(run=_package_lambda)
    worker = commands.add_parser("worker", help="run one worker process")
    worker.add_argument("kind", choices=["sender", "fanout"])
    worker.set_defaults(run=_worker)
    args = parser.parse_args(argv)
    if args.command != "dev":
        load_env_file(default_home())
    result: int = args.run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
