"""A hostile IMAP server gets bounded answers and bounded time (issue 11, attack H3), and a slow one
is reported as slow.

The servers are real sockets on loopback (tests/hostile_imap.py), with TLS from the local CA:
one answers LOGIN with a 64 MB literal, one a FETCH with one, one drips its greeting a byte at a
time for as long as anyone listens.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
import httpx
import pytest

from functions import resources
from sendpy.devstack.imap import DovecotServer
from sendpy.devstack.smtp_sink import SmtpSink
from sendpy.devstack.tls import LocalCertificates
from shared.bounces import reader
from shared.bounces.reader import check_sender
from shared.imap_connection import MAX_LITERAL_BYTES
from shared.mail.messenger import ConnectPolicy
from shared.settings import get_settings
from shared.smtp_accounts import LIVE_CHECK_SECONDS
from shared.unsubscribe import signing_key
from tests.helpers import make_sender
from tests.hostile_imap import hostile_imap
from tests.imap import ImapUser

MB = 1024 * 1024


@pytest.fixture
def auth(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


async def until(check: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
        await asyncio.sleep(0.2)


async def test_a_huge_literal_in_answer_to_login_is_refused_after_at_most_the_limit(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink, certs: LocalCertificates,
) -> None:
    sender = await make_sender(api, auth, clean_sink)
    with hostile_imap(certs, "literal", literal_size=64 * MB) as server:
        put = await api.put(f"/v1/senders/{sender['id']}/imap", headers={**auth, "Accept-Language": "ru"}, json={
            "imap_host": "127.0.0.1", "imap_port": server.port, "imap_password": "imap-pass"})
        assert put.status_code == 422, put.text
        error = put.json()["error"]
        assert error["code"] == "imap_too_large", error
        assert "больше 2 МБ" in error["message"], error
        # Shown on the sender's page, in both languages.
        problem = put.json()["imap"]["problem"]
        assert "больше 2 МБ" in problem and "larger than 2 MB" in problem, problem
        # Refused after the literal's size was read, not after reading it: what the server got out
        # is what socket buffers hold, nowhere near 64 MB.
        await until(lambda: server.open_connections == 0, 30, "the connection closed")
        assert server.sent < 16 * MB, server.sent


async def test_a_huge_literal_in_answer_to_fetch_is_refused_and_shown_on_the_sender(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink, certs: LocalCertificates, db: asyncpg.Pool,
) -> None:
    sender = await make_sender(api, auth, clean_sink)
    with hostile_imap(certs, "fetch", literal_size=64 * MB) as server:
        await db.execute("UPDATE senders SET imap_host = '127.0.0.1', imap_port = $2 WHERE id = $1",
                         sender["id"], server.port)
        policy = ConnectPolicy.from_settings(get_settings())
        found = await check_sender(db, resources.keys(), policy, sender["id"], signing_key=signing_key(get_settings()))
        assert found is None  # the look failed
        problem = await db.fetchval("SELECT imap_problem FROM senders WHERE id = $1", sender["id"])
        assert "larger than 2 MB" in problem and "больше 2 МБ" in problem, problem
        await until(lambda: server.open_connections == 0, 30, "the connection closed")
        assert server.sent < MAX_LITERAL_BYTES + 16 * MB, server.sent
    status = (await api.get(f"/v1/senders/{sender['id']}/imap", headers=auth)).json()
    assert status["problem"] == problem


async def test_a_dripping_imap_server_delays_no_one_else_and_lets_its_threads_go(
    api: httpx.AsyncClient, new_client: Callable[[], httpx.AsyncClient], auth: dict[str, str],
    clean_sink: SmtpSink, certs: LocalCertificates, dovecot: DovecotServer, imap_user: ImapUser,
) -> None:
    # More live checks than there are IMAP threads (32), each against a server that sends its
    # greeting a byte every half second, for ever.
    sender = await make_sender(api, auth, clean_sink)
    with hostile_imap(certs, "drip", drip_seconds=0.5) as server:
        put = await api.put(f"/v1/senders/{sender['id']}/imap", headers=auth, json={
            "imap_host": "127.0.0.1", "imap_port": server.port, "imap_password": "imap-pass"})
        assert put.status_code == 422 and put.json()["error"]["code"] == "imap_timeout", put.text
        checks = [asyncio.create_task(api.post(f"/v1/senders/{sender['id']}/imap/verify", headers=auth))
                  for _ in range(40)]
        await until(lambda: server.open_connections >= 32, 30, "every IMAP thread held by the drip")

        # Meanwhile another person registers, logs in and checks an SMTP sender, at their usual pace.
        async with new_client() as other:
            started = time.monotonic()
            email, password = f"other-{uuid.uuid4().hex[:8]}@example.com", "correct horse 1"
            assert (await other.post("/v1/auth/register", json={"email": email, "password": password})).status_code == 201
            login = await other.post("/v1/auth/login", json={"email": email, "password": password})
            assert login.status_code == 200, login.text
            csrf = {"X-CSRF-Token": login.json()["csrf_token"]}
            made = await other.post("/v1/senders", headers=csrf, json={
                "from_email": "other@example.org", "host": "127.0.0.1", "port": clean_sink.port,
                "security": "starttls", "password": "smtp-pass"})
            assert made.status_code == 201, made.text
            smtp = await other.post(f"/v1/senders/{made.json()['id']}/verify", headers=csrf)
            assert smtp.status_code == 200, smtp.text
            took = time.monotonic() - started
            assert server.open_connections >= 32, "the drip ended early: the test proves nothing"
        assert took < 10, f"log-in and SMTP check took {took:.1f} s while IMAP threads were held"

        # Every IMAP check ends by its deadline with the problem in words, and lets its thread go
        # although the server would drip on: a new check against a real server passes at once.
        answers: list[Any] = await asyncio.wait_for(asyncio.gather(*checks), LIVE_CHECK_SECONDS * 3)
        assert {a.status_code for a in answers} == {422}
        assert {a.json()["error"]["code"] for a in answers} == {"imap_timeout"}
        await until(lambda: server.open_connections == 0, 15, "the drip's connections closed by Sendpy")
    good = await api.put(f"/v1/senders/{sender['id']}/imap", headers=auth, json={
        "imap_host": "127.0.0.1", "imap_port": dovecot.port, "imap_username": imap_user.name,
        "imap_password": imap_user.password})
    assert good.status_code == 200 and good.json()["verified"], good.text


@pytest.mark.parametrize("mode", ["silent-search", "drip-search"])
async def test_a_look_the_server_makes_too_slow_is_reported_as_too_slow(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink, certs: LocalCertificates, db: asyncpg.Pool,
    monkeypatch: pytest.MonkeyPatch, mode: str,
) -> None:
    # Logged in and INBOX selected, then SEARCH gets no answer (longer than one read may wait), or
    # one byte every 0.2 s (longer than the look may take): it read «ответил неожиданно: timed out».
    monkeypatch.setattr(reader, "LOOK_SECONDS", 3.0)
    sender = await make_sender(api, auth, clean_sink)
    with hostile_imap(certs, mode, drip_seconds=0.2) as server:
        await db.execute("UPDATE senders SET imap_host = '127.0.0.1', imap_port = $2 WHERE id = $1",
                         sender["id"], server.port)
        policy = dataclasses.replace(ConnectPolicy.from_settings(get_settings()), timeout=1.0)
        found = await check_sender(db, resources.keys(), policy, sender["id"], signing_key=signing_key(get_settings()))
        assert found is None and server.most_searching == 1
    problem = (await api.get(f"/v1/senders/{sender['id']}/imap", headers=auth)).json()["problem"]
    seconds = "1" if mode == "silent-search" else "3"
    assert f"отвечал слишком медленно: ответ не пришёл за {seconds} с" in problem, problem
    assert f"was too slow: an answer did not come within {seconds} s" in problem, problem
    assert "неожиданно" not in problem and "unexpected" not in problem, problem


async def test_a_search_answer_over_the_line_limit_reads_as_too_large(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink, certs: LocalCertificates, db: asyncpg.Pool,
) -> None:
    # imaplib's own line limit read «ответил неожиданно: command: SEARCH => got more than 1000000
    # bytes» (issue 11): it is an answer too large, in plain words.
    sender = await make_sender(api, auth, clean_sink)
    with hostile_imap(certs, "huge-search", literal_size=3 * MB) as server:
        await db.execute("UPDATE senders SET imap_host = '127.0.0.1', imap_port = $2 WHERE id = $1",
                         sender["id"], server.port)
        policy = ConnectPolicy.from_settings(get_settings())
        found = await check_sender(db, resources.keys(), policy, sender["id"], signing_key=signing_key(get_settings()))
        assert found is None
        problem = await db.fetchval("SELECT imap_problem FROM senders WHERE id = $1", sender["id"])
        assert "larger than 1 MB" in problem and "больше 1 МБ" in problem, problem
        assert "got more than" not in problem, problem
