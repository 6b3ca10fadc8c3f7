"""Real services for the tests, started once per session: Kafka, Postgres, S3 (moto), SMTP sink.

Every service listens on a free loopback port, so two runs on one machine never collide.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from starlette.applications import Starlette

from sendpy.devstack.kafka import KafkaServer
from sendpy.devstack.postgres import PostgresServer
from sendpy.devstack.process import Child
from sendpy.devstack.s3 import S3Server, ensure_bucket
from sendpy.devstack.smtp_sink import SmtpSink
from sendpy.devstack.stack import cache_dir
from sendpy.devstack.tls import LocalCertificates, ensure_certificates
from shared.crypto import new_master_key
from shared.recipients import CLAIM_LEASE_SECONDS
from tests import fault_report
from tests.helpers import eventually

ROOT = Path(__file__).resolve().parent.parent

pytest_plugins = ["tests.mailpit", "tests.imap", "tests.browser"]


@pytest.fixture(scope="session")
def workdir() -> Iterator[Path]:
    # Not pytest's tmp_path: its parents are private to root, and Postgres runs as its own user.
    path = Path(tempfile.mkdtemp(prefix="sendpy-test-"))
    path.chmod(0o711)
    yield path
    if os.environ.get("SENDPY_KEEP_TEST_WORKDIR"):
        print(f"\ntest servers' data and logs kept in {path}")
    else:
        shutil.rmtree(path, ignore_errors=True)


def pytest_configure(config: pytest.Config) -> None:
    # A SIGTERM (a CI time-out, `kill`) ends the run like Ctrl-C, so fixtures stop their servers.
    # A SIGKILL cannot be caught: the children's parent-death signal covers that (process.py).
    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


@pytest.fixture(scope="session", autouse=True)
def fault_run() -> dict[str, object]:
    """This run's fault report header; its seed also seeds `random` for the whole session."""
    run = fault_report.start_run()
    random.seed(run["seed"])
    print(f"\nfault report run {run['id']} (commit {run['commit']}), random seed {run['seed']}")
    return run


@pytest.fixture(scope="session")
def postgres(workdir: Path) -> Iterator[PostgresServer]:
    server = PostgresServer(workdir / "postgres", durable=False)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def kafka(workdir: Path) -> Iterator[KafkaServer]:
    server = KafkaServer(workdir / "kafka", cache_dir())
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def s3(workdir: Path) -> Iterator[S3Server]:
    server = S3Server(workdir / "logs")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def certs(workdir: Path) -> LocalCertificates:
    return ensure_certificates(workdir / "certs")


@pytest.fixture(scope="session")
def sink(certs: LocalCertificates) -> Iterator[SmtpSink]:
    server = SmtpSink(certs)
    server.start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def test_started_at() -> float:
    """When this test began (before its other fixtures), so `clean_sink` tells earlier tests'
    campaigns from the ones this test's fixtures start."""
    return time.time()


# Earlier tests' campaigns still sending (or started and never awaited: they go out once some
# later test starts workers) would land in this test's sink. Cancelled, they claim no more; what
# a worker already claimed is waited for.
CANCEL_EARLIER = """
    WITH earlier AS (
        UPDATE campaigns SET status = 'cancelled', finished_at = now(), updated_at = now(), scheduled_at = NULL
         WHERE status IN ('scheduled', 'queued', 'sending', 'paused') AND created_at < to_timestamp($1)
        RETURNING id)
    UPDATE recipients SET status = 'skipped', reply = 'cancelled', updated_at = now()
     WHERE campaign_id IN (SELECT id FROM earlier) AND status = 'pending'
"""
# Claims older than the lease are a killed worker's: nobody sends them (shared/recipients.py).
IN_FLIGHT = """SELECT count(*) FROM recipients r JOIN campaigns c ON c.id = r.campaign_id
                WHERE c.created_at < to_timestamp($1) AND r.status = 'sending'
                  AND r.claimed_at > now() - make_interval(secs => $2)"""


async def stop_earlier_campaigns(db: asyncpg.Pool, before: float) -> None:
    """Cancel the campaigns created before `before` (epoch seconds) and wait, 10 s at most, for
    what workers had already claimed of them."""
    await db.execute(CANCEL_EARLIER, before)

    async def settled() -> bool:
        return not await db.fetchval(IN_FLIGHT, before, float(CLAIM_LEASE_SECONDS))

    # Bounded: a claim within its lease may still be a killed worker's, which nobody sends.
    with contextlib.suppress(AssertionError):
        await eventually(settled, 10, "earlier tests' claimed mail sent", interval=0.2)


@pytest.fixture
async def clean_sink(sink: SmtpSink, db: asyncpg.Pool, test_started_at: float) -> SmtpSink:
    sink.faults.__init__()  # type: ignore[misc]
    sink.pipelining = True
    sink.smtputf8 = True
    await stop_earlier_campaigns(db, test_started_at)
    sink.clear()
    return sink


@pytest.fixture(scope="session")
def app_env(postgres: PostgresServer, kafka: KafkaServer, s3: S3Server, certs: LocalCertificates) -> dict[str, str]:
    """The environment of the API and workers under test, also applied to this process."""
    run = uuid.uuid4().hex[:8]
    env = {
        "DATABASE_URL": postgres.url,
        "SENDPY_KAFKA_BOOTSTRAP": kafka.bootstrap,
        "SENDPY_S3_ENDPOINT_URL": s3.endpoint,
        "SENDPY_S3_BUCKET_UPLOADS": f"uploads-{run}",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_REGION": "us-east-1",
        "SENDPY_LOCAL_MASTER_KEY": new_master_key(),
        "SENDPY_SMTP_ALLOW_PRIVATE": "true",
        "SENDPY_SMTP_CA_FILE": str(certs.ca_file),
        "SENDPY_SMTP_TIMEOUT": "10",
        "SENDPY_DELIVERY_BATCH_SIZE": "50",
        "SENDPY_DELIVERY_PARTITIONS": "4",
        "SENDPY_LOG_LEVEL": "INFO",
        "SENDPY_MAX_UPLOAD_BYTES": str(3 * 1024 * 1024),
        "SENDPY_RETRY_BASE_SECONDS": "0.3",
        "SENDPY_RETRY_MAX_DELAY_SECONDS": "2",
        "SENDPY_SENDER_PAUSE_SECONDS": "3",
        "SENDPY_WAKER_INTERVAL": "0.5",
        "SENDPY_CLAIM_LEASE_SECONDS": "5",
        "SENDPY_KAFKA_SESSION_TIMEOUT_MS": "6000",
        "SENDPY_FANOUT_CHUNK_ROWS": "1000",
        # The stall sweeper stays out of the way: the crash tests must prove commit-after-durable
        # on their own, not be rescued by a sweep. tests/test_crash_safety.py tests the sweeper
        # with a worker of its own.
        "SENDPY_STALL_SECONDS": "3600",
    }
    os.environ.update(env)
    from shared.settings import get_settings

    get_settings.cache_clear()
    ensure_bucket(s3.endpoint, env["SENDPY_S3_BUCKET_UPLOADS"], "us-east-1")
    return env


@pytest.fixture(scope="session")
async def db(app_env: dict[str, str]) -> AsyncIterator[asyncpg.Pool]:
    from shared.db import create_pool, migrate
    from shared.settings import get_settings

    pool = await create_pool(get_settings(), max_size=5)
    async with pool.acquire() as conn:
        await migrate(conn)
    yield pool
    await pool.close()


@pytest.fixture
async def fresh_db(app_env: dict[str, str]) -> AsyncIterator[asyncpg.Connection]:
    """A connection to a new, empty database on the session's Postgres, for migration tests."""
    from shared.settings import get_settings

    name = f"m{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(get_settings().database_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    conn = await asyncpg.connect(get_settings().database_url.rsplit("/", 1)[0] + f"/{name}")
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture(scope="session")
async def topics(app_env: dict[str, str]) -> None:
    from shared import broker
    from shared.settings import get_settings

    await broker.ensure_topics(get_settings())


class Workers:
    """Worker processes under test; tests may kill and restart them."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = {**os.environ, **env}
        self.logs = logs
        self.children: list[Child] = []
        self.started = 0
        self.customised: set[str] = set()  # log files of workers started with their own settings

    def start(self, kind: str, **env: str) -> Child:
        """Start a worker; `env` overrides settings for this one process."""
        self.started += 1
        n = self.started
        child = Child(f"{kind}-{n}", [sys.executable, "-m", "worker_image", kind],
                      self.logs / f"{kind}-{n}.log", env={**self.env, **env}, cwd=ROOT)
        if env:
            self.customised.add(child.log_path.name)
        child.start()
        self.children.append(child)
        return child

    def running(self, kind: str) -> list[Child]:
        return [c for c in self.children if c.name.startswith(kind) and c.alive()]

    def kill(self, child: Child) -> None:
        child.kill()
        self.children.remove(child)

    def stop_all(self) -> None:
        for child in self.children:
            child.stop()
        self.children.clear()

    def restore(self) -> None:
        """Back to one fan-out and one sender worker, whatever a test killed or added."""
        for kind in ("fanout", "sender"):
            running = self.running(kind)
            for extra in running[1:]:
                extra.stop()
                self.children.remove(extra)
            if not running:
                self.start(kind)
        for dead in [c for c in self.children if not c.alive()]:
            self.children.remove(dead)

    def log_marks(self) -> dict[Path, int]:
        """Where every worker log ends now, for `logged(..., since=)`."""
        return {path: path.stat().st_size for path in self.logs.glob("*.log")}

    def logged(self, message: str, since: dict[Path, int] | None = None, *, usual_only: bool = False) -> list[str]:
        """Worker log lines whose message is `message` (written after `since`, if given; only
        from workers with the session's settings when `usual_only`)."""
        found = []
        for path in sorted(self.logs.glob("*.log")):
            if usual_only and path.name in self.customised:
                continue
            with path.open("rb") as log:
                log.seek((since or {}).get(path, 0))
                text = log.read().decode(errors="replace")
            found += [f"{path.name}: {line}" for line in text.splitlines() if f'"message": "{message}"' in line]
        return found


@pytest.fixture(scope="session")
def workers(app_env: dict[str, str], topics: None, db: asyncpg.Pool, workdir: Path) -> Iterator[Workers]:
    running = Workers(app_env, workdir / "logs")
    running.start("fanout")
    running.start("sender")
    yield running
    running.stop_all()


@pytest.fixture(scope="session")
async def asgi_app(app_env: dict[str, str], db: asyncpg.Pool) -> AsyncIterator[Starlette]:
    from functions import resources
    from functions.app import create_app

    yield create_app(serve_web=False)
    await resources.close()


class SecretWatch:
    """Every secret the tests hand to the API or get from it, and any answer that gave one back.

    SMTP passwords are taken from request bodies, API keys and session tokens from answers; the
    last test (test_zz_secrets.py) searches every Kafka topic and log file for all of them.
    """

    def __init__(self) -> None:
        self.smtp_passwords: set[str] = set()
        self.tokens: set[str] = set()
        self.leaks: list[str] = []

    async def on_request(self, request: httpx.Request) -> None:
        try:
            if not request.headers.get("content-type", "").startswith("application/json") or not request.content:
                return
            body = json.loads(request.content)
        except (ValueError, RecursionError, httpx.RequestNotRead):
            return  # not a JSON object the app could take a password from
        if not isinstance(body, dict):
            return
        fields = ("smtp_password", "password") if "/senders" in request.url.path else ("smtp_password",)
        self.smtp_passwords |= {body[f] for f in fields if isinstance(body.get(f), str) and body[f]}

    async def on_response(self, response: httpx.Response) -> None:
        body = (await response.aread()).decode("utf-8", "replace")
        for password in self.smtp_passwords:
            if len(password) >= 6 and password in body:
                self.leaks.append(f"{response.request.method} {response.request.url.path} answered an SMTP password")
        if '"key": "sp_' in body and response.status_code == 201:
            self.tokens.add(json.loads(body)["key"])
        for name in ("sendpy_session", "sendpy_csrf"):
            if name in response.cookies:
                self.tokens.add(response.cookies[name])


@pytest.fixture(scope="session")
def secret_watch() -> SecretWatch:
    return SecretWatch()


@pytest.fixture
def new_client(asgi_app: Starlette, secret_watch: SecretWatch) -> Callable[[], httpx.AsyncClient]:
    """A fresh client per browser: each has its own cookie jar."""

    def make() -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=asgi_app), base_url="http://sendpy.test",
                                 event_hooks={"request": [secret_watch.on_request],
                                              "response": [secret_watch.on_response]})

    return make


@pytest.fixture
async def api(new_client: Callable[[], httpx.AsyncClient]) -> AsyncIterator[httpx.AsyncClient]:
    async with new_client() as client:
        yield client


ISSUED_API_KEYS: set[str] = set()


async def new_api_key(db: asyncpg.Pool, email: str | None = None) -> str:
    from shared.accounts import create_api_key, ensure_user

    async with db.acquire() as conn:
        user_id = await ensure_user(conn, email or f"user-{uuid.uuid4().hex[:8]}@example.com")
        key = await create_api_key(conn, user_id)
    ISSUED_API_KEYS.add(key)
    return key


@pytest.fixture
async def api_key(db: asyncpg.Pool) -> str:
    return await new_api_key(db)


@pytest.fixture(scope="session")
def live_server(app_env: dict[str, str], topics: None, db: asyncpg.Pool, workdir: Path) -> Iterator[str]:
    """The API and the web UI in a real uvicorn process, as a browser or a fuzzer sees them."""
    from sendpy.devstack.ports import free_port, wait_for_port

    port = free_port()
    env = {**os.environ, **app_env, "SENDPY_SERVE_WEB": "true", "SENDPY_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}"}
    child = Child("api", [sys.executable, "-m", "functions.serve", "--host", "127.0.0.1", "--port", str(port)],
                  workdir / "logs" / "api-live.log", env=env, cwd=ROOT)
    child.start()
    wait_for_port(port, 30, alive=child.alive)
    yield f"http://127.0.0.1:{port}"
    child.stop()
    log = child.tail(300)
    assert "Traceback" not in log, log
