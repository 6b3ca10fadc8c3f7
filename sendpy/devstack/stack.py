"""The whole local stack as child processes: what `sendpy dev` runs.

Each service can be replaced by an existing one through its environment variable
(DATABASE_URL, SENDPY_KAFKA_BOOTSTRAP, SENDPY_S3_ENDPOINT_URL); then it is not started here.
"""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from sendpy.devstack.imap import DovecotServer
from sendpy.devstack.kafka import KafkaServer
from sendpy.devstack.ports import free_port, wait_for_port
from sendpy.devstack.postgres import PostgresServer
from sendpy.devstack.process import Child
from sendpy.devstack.s3 import S3Server, ensure_bucket
from sendpy.devstack.tls import ensure_certificates
from shared.crypto import new_master_key


def default_home() -> Path:
    return Path(os.environ.get("SENDPY_HOME", Path.cwd() / ".sendpy")).resolve()


def cache_dir() -> Path:
    return Path(os.environ.get("SENDPY_CACHE", Path.home() / ".cache" / "sendpy")).resolve()


def master_key(home: Path) -> str:
    """The dev master key, kept in the data folder so sealed passwords open after a restart."""
    path = home / "master.key"
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        path.write_text(new_master_key())
        path.chmod(0o600)
    return path.read_text().strip()


def write_env_file(home: Path, env: dict[str, str]) -> Path:
    path = home / "env"
    path.write_text("".join(f"{k}={v}\n" for k, v in sorted(env.items())))
    path.chmod(0o600)
    return path


def load_env_file(home: Path) -> None:
    """Let CLI commands reach a running dev stack without exporting anything by hand."""
    path = home / "env"
    if path.exists():
        for line in path.read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep:
                os.environ.setdefault(key, value)


@dataclass
class Stack:
    home: Path
    api_port: int = 8000
    sender_workers: int = 1
    services: list[object] = field(default_factory=list)
    children: list[Child] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    sink_ports: tuple[int, int] = (0, 0)
    imap_port: int | None = None

    def start_services(self) -> dict[str, str]:
        """Start Postgres, Kafka, S3 and the SMTP sink as needed; return the app's environment."""
        home = self.home
        home.mkdir(parents=True, exist_ok=True)
        env = {
            "SENDPY_LOCAL_MASTER_KEY": os.environ.get("SENDPY_LOCAL_MASTER_KEY") or master_key(home),
            "SENDPY_SMTP_ALLOW_PRIVATE": "true",
            "SENDPY_SERVE_WEB": "true",
            "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "local"),
            "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "local"),
            "AWS_REGION": os.environ.get("AWS_REGION", "us-east-1"),
            "SENDPY_PUBLIC_BASE_URL": f"http://127.0.0.1:{self.api_port}",
        }
        if os.environ.get("DATABASE_URL"):
            env["DATABASE_URL"] = os.environ["DATABASE_URL"]
        else:
            postgres = PostgresServer(home / "postgres")
            postgres.start()
            self.services.append(postgres)
            env["DATABASE_URL"] = postgres.url
        if os.environ.get("SENDPY_KAFKA_BOOTSTRAP"):
            env["SENDPY_KAFKA_BOOTSTRAP"] = os.environ["SENDPY_KAFKA_BOOTSTRAP"]
        else:
            kafka = KafkaServer(home / "kafka", cache_dir())
            kafka.start()
            self.services.append(kafka)
            env["SENDPY_KAFKA_BOOTSTRAP"] = kafka.bootstrap
        if os.environ.get("SENDPY_S3_ENDPOINT_URL"):
            env["SENDPY_S3_ENDPOINT_URL"] = os.environ["SENDPY_S3_ENDPOINT_URL"]
        else:
            s3 = S3Server(home / "logs")
            s3.start()
            self.services.append(s3)
            env["SENDPY_S3_ENDPOINT_URL"] = s3.endpoint
        ensure_bucket(env["SENDPY_S3_ENDPOINT_URL"], os.environ.get("SENDPY_S3_BUCKET_UPLOADS", "sendpy-uploads"),
                      env["AWS_REGION"])

        certs = ensure_certificates(home / "certs")
        env["SENDPY_SMTP_CA_FILE"] = str(certs.ca_file)
        bounce_args: list[str] = []
        try:
            # The senders' own mailboxes, where the SMTP sink's bounces for @bounce.example.net land.
            dovecot = DovecotServer(home / "dovecot", certs)
            dovecot.start()
            self.services.append(dovecot)
            self.imap_port = dovecot.port
            bounce_args = ["--dovecot-dir", str(home / "dovecot"), "--dovecot-port", str(dovecot.port)]
        except RuntimeError as exc:  # no Dovecot here (e.g. not installed as a normal user)
            print(f"Bounces off: {exc}", flush=True)
        self.sink_ports = (free_port(), free_port())
        sink = Child(
            "smtp-sink",
            [sys.executable, "-m", "sendpy.devstack.smtp_sink", "--port", str(self.sink_ports[0]),
             "--tls-port", str(self.sink_ports[1]), "--certs", str(home / "certs"),
             "--maildir", str(home / "mail"), *bounce_args],
            home / "logs" / "smtp-sink.log",
        )
        sink.start()
        self.children.append(sink)
        wait_for_port(self.sink_ports[0], 15, alive=sink.alive)
        self.env = env
        write_env_file(home, env)
        return env

    def prepare(self) -> None:
        """Migrate the database and create the topics before any process uses them."""
        from shared import broker
        from shared.db import create_pool, migrate
        from shared.settings import load_settings

        async def run() -> None:
            settings = load_settings()
            pool = await create_pool(settings, max_size=1)
            async with pool.acquire() as conn:
                await migrate(conn)
            await pool.close()
            await broker.ensure_topics(settings)

        os.environ.update(self.env)
        asyncio.run(run())

    def start_app(self) -> None:
        child_env = {**os.environ, **self.env}
        logs = self.home / "logs"
        api = Child("api", [sys.executable, "-m", "functions.serve", "--host", "127.0.0.1",
                            "--port", str(self.api_port)], logs / "api.log", env=child_env)
        workers = [Child("fanout", [sys.executable, "-m", "worker_image", "fanout"], logs / "fanout.log",
                         env=child_env)]
        workers += [
            Child(f"sender-{n}", [sys.executable, "-m", "worker_image", "sender"], logs / f"sender-{n}.log",
                  env=child_env)
            for n in range(1, self.sender_workers + 1)
        ]
        if self.imap_port is not None:  # bounces are read back from the local Dovecot every 10 s
            workers.append(Child("bounce", [sys.executable, "-m", "worker_image", "bounce"], logs / "bounce.log",
                                 env={**child_env, "SENDPY_BOUNCE_POLL_SECONDS": "10"}))
        for child in [api, *workers]:
            child.start()
            self.children.append(child)
        wait_for_port(self.api_port, 30, alive=api.alive)

    def stop(self) -> None:
        for child in reversed(self.children):
            child.stop()
        for service in reversed(self.services):
            service.stop()  # type: ignore[attr-defined]
        self.children.clear()
        self.services.clear()
