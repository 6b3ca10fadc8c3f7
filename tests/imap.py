"""Dovecot, a real IMAP server, as pytest fixtures (a plugin: `-p tests.imap`).

`dovecot` is the server (sendpy/devstack/imap.py), started once per session under the session's
workdir: implicit TLS on `dovecot.port`, plain IMAP + STARTTLS on `dovecot.starttls_port`, both
with the local CA's certificate (the `certs` fixture). Each test makes its own users, so no test
sees another's mail: `imap_user` is one fresh user, `new_imap_user()` makes more.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sendpy.devstack.imap import DovecotServer
from sendpy.devstack.tls import LocalCertificates


@dataclass(frozen=True)
class ImapUser:
    name: str  # also its address: Dovecot accepts any name, mail for it is never routed anywhere
    password: str


def fresh_password() -> str:
    # A space, a quote and a backslash on purpose: LOGIN must quote them. ASCII only: imaplib's
    # LOGIN (and IMAP's quoted strings) carry no 8-bit text.
    return f'imap "pass" \\ {secrets.token_urlsafe(12)}'


@pytest.fixture(scope="session")
def dovecot(certs: LocalCertificates, workdir: Path) -> Iterator[DovecotServer]:
    server = DovecotServer(workdir / "dovecot", certs, starttls=True)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def new_imap_user(dovecot: DovecotServer) -> Iterator[Callable[..., ImapUser]]:
    """`new_imap_user(password=None, prefix="user")`: a user of its own, usable at once.

    Fails the test afterwards if Dovecot died under it.
    """

    def make(password: str | None = None, prefix: str = "user") -> ImapUser:
        password = fresh_password() if password is None else password
        name = dovecot.add_user(f"{prefix}-{uuid.uuid4().hex[:12]}@example.org", password)
        return ImapUser(name, password)

    yield make
    assert dovecot.alive(), f"Dovecot exited during the test:\n{dovecot.tail()}"


@pytest.fixture
def imap_user(new_imap_user: Callable[..., ImapUser]) -> ImapUser:
    return new_imap_user()
