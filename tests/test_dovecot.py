"""The Dovecot fixture is the IMAP server later tests rely on (plugin: tests/imap.py).

Everything goes through Python's imaplib, as a client we did not write for this server would:
TLS verified with the local CA only, LOGIN, SELECT, APPEND/FETCH, IDLE, and a 50 MB message.
"""

from __future__ import annotations

import contextlib
import imaplib
import re
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from sendpy.devstack.imap import DovecotServer
from sendpy.devstack.tls import LocalCertificates
from tests.conftest import ROOT
from tests.imap import ImapUser


def message(subject: str, body: str = "Hello from the Dovecot tests.") -> bytes:
    return (f"From: Sender <sender@example.org>\r\nTo: rcpt@example.org\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject.replace(' ', '-')}@example.org>\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n").encode()


def text(data: Sequence[object], index: int = 0) -> bytes:
    """One untagged answer line of imaplib's (status, data) as bytes."""
    line = data[index]
    assert isinstance(line, bytes), data
    return line


def big_message(size: int) -> bytes:
    """A plain-text message of exactly `size` bytes, lines numbered so a misplaced byte shows."""
    head = message("big message", "")[:-2]  # without the empty body's CRLF
    lines = []
    total = len(head)
    number = 0
    while total < size:
        line = f"{number:010d} {'x' * 64}\r\n".encode()
        lines.append(line)
        total += len(line)
        number += 1
    data = head + b"".join(lines)
    return data[:size - 2] + b"\r\n"


def literal(fetched: Sequence[object]) -> bytes:
    """The one literal of a FETCH answer: imaplib gives [(b'1 (BODY[]<0> {1024}', b'…'), b')']."""
    parts = [item[1] for item in fetched if isinstance(item, tuple)]
    assert len(parts) == 1, fetched
    assert isinstance(parts[0], bytes)
    return parts[0]


def test_tls_verifies_with_the_local_ca_only(dovecot: DovecotServer, certs: LocalCertificates) -> None:
    client = imaplib.IMAP4_SSL(dovecot.host, dovecot.port, ssl_context=certs.client_context(), timeout=30)
    try:
        assert client.welcome.startswith(b"* OK"), client.welcome
        tls = client.sock
        assert isinstance(tls, ssl.SSLSocket)
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
        peer = tls.getpeercert()
        assert peer is not None
        assert ("IP Address", "127.0.0.1") in peer["subjectAltName"]
    finally:
        client.logout()

    # The system's trust store does not know the local CA: verification must fail, not be skipped.
    with pytest.raises(ssl.SSLCertVerificationError):
        imaplib.IMAP4_SSL(dovecot.host, dovecot.port, ssl_context=ssl.create_default_context(), timeout=30)


def test_login_takes_the_right_password_only(dovecot: DovecotServer, imap_user: ImapUser) -> None:
    client = dovecot.connect()
    try:
        status, _ = client.login(imap_user.name, imap_user.password)
        assert status == "OK"
        assert client.state == "AUTH"
    finally:
        client.logout()

    for name, password in [(imap_user.name, imap_user.password + "x"), (imap_user.name, "wrong"),
                           ("nobody-here@example.org", imap_user.password)]:
        client = dovecot.connect()
        try:
            with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
                client.login(name, password)
            assert client.state == "NONAUTH"
        finally:
            client.logout()


def test_login_names_are_case_insensitive(dovecot: DovecotServer, imap_user: ImapUser) -> None:
    client = dovecot.connect()
    try:
        assert client.login(imap_user.name.upper(), imap_user.password)[0] == "OK"
    finally:
        client.logout()


def test_plain_port_offers_starttls_and_the_log_tells_tls_logins(dovecot: DovecotServer,
                                                                  imap_user: ImapUser) -> None:
    assert dovecot.starttls_port is not None
    client = imaplib.IMAP4(dovecot.host, dovecot.starttls_port, timeout=30)
    try:
        with pytest.raises(ssl.SSLCertVerificationError):
            client.starttls(ssl_context=ssl.create_default_context())
    finally:
        with contextlib.suppress(OSError):  # the failed handshake closed the socket already
            client.shutdown()

    client = imaplib.IMAP4(dovecot.host, dovecot.starttls_port, timeout=30)
    try:
        assert "STARTTLS" in client.capabilities
        client.starttls(ssl_context=dovecot.client_context())
        assert "STARTTLS" not in client.capabilities
        assert client.login(imap_user.name, imap_user.password)[0] == "OK"
    finally:
        client.logout()

    # Dovecot counts loopback connections as secure (see sendpy/devstack/imap.py): a plain LOGIN
    # is accepted here, so a test proving that a client used TLS must look at the log.
    client = imaplib.IMAP4(dovecot.host, dovecot.starttls_port, timeout=30)
    try:
        assert client.login(imap_user.name, imap_user.password)[0] == "OK"
    finally:
        client.logout()
    dovecot.login(imap_user.name).logout()
    deadline = time.monotonic() + 10
    while len(logins := dovecot.logins(imap_user.name)) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [login.tls for login in logins] == [True, False, True], logins
    assert {login.method for login in logins} == {"PLAIN"}


def test_capabilities_include_idle_and_uidplus(dovecot: DovecotServer, imap_user: ImapUser) -> None:
    client = dovecot.login(imap_user.name)
    try:
        status, data = client.capability()
        assert status == "OK"
        capabilities = text(data).split()
        for wanted in (b"IMAP4rev1", b"IDLE", b"UIDPLUS", b"SPECIAL-USE", b"LITERAL+"):
            assert wanted in capabilities, capabilities
    finally:
        client.logout()


def test_select_inbox_reports_uidvalidity_and_uidnext(dovecot: DovecotServer, imap_user: ImapUser) -> None:
    client = dovecot.login(imap_user.name)
    try:
        status, data = client.select("INBOX")
        assert (status, data) == ("OK", [b"0"])
        uidvalidity = client.response("UIDVALIDITY")[1][0]
        uidnext = client.response("UIDNEXT")[1][0]
        assert uidvalidity is not None and int(uidvalidity) > 0
        assert uidnext == b"1"
        status, data = client.status("INBOX", "(MESSAGES UIDNEXT UIDVALIDITY)")
        assert status == "OK"
        assert re.search(rb"MESSAGES 0 UIDNEXT 1 UIDVALIDITY " + uidvalidity + rb"\)", text(data)), data
        # The usual special-use folders exist from the first login, as at real providers.
        status, folders = client.list()
        assert status == "OK"
        lines = [text(folders, i) for i in range(len(folders))]
        assert any(b"\\Sent" in line and line.endswith(b" Sent") for line in lines), lines
    finally:
        client.logout()


def test_append_then_fetch(dovecot: DovecotServer, imap_user: ImapUser) -> None:
    raw = message("append then fetch", "Grüße, 你好")
    client = dovecot.login(imap_user.name)
    try:
        status, data = client.append("INBOX", r"(\Seen)", None, raw)
        assert status == "OK", data
        found = re.search(rb"\[APPENDUID (\d+) (\d+)\]", text(data))
        assert found, data
        uid = found.group(2).decode()
        client.select("INBOX")
        status, fetched = client.uid("FETCH", uid, "(FLAGS RFC822.SIZE BODY.PEEK[])")
        assert status == "OK"
        assert literal(fetched) == raw
        head = fetched[0]
        assert isinstance(head, tuple)
        assert f"RFC822.SIZE {len(raw)}".encode() in head[0]
        assert b"\\Seen" in head[0]
        # The server's own helper delivers too, unread, into any folder.
        second = dovecot.append(imap_user.name, message("delivered"))
        assert second == int(uid) + 1
        assert dovecot.append(imap_user.name, message("kept"), folder="Sent") == 1
        client.noop()
        status, unseen = client.uid("SEARCH", "UNSEEN")
        assert (status, unseen) == ("OK", [str(second).encode()])
        status, data = client.status("Sent", "(MESSAGES)")
        assert text(data).endswith(b"(MESSAGES 1)"), data
    finally:
        client.logout()


def test_append_creates_non_ascii_folders(dovecot: DovecotServer, imap_user: ImapUser) -> None:
    assert dovecot.append(imap_user.name, message("archived"), folder="Архив & co") == 1
    client = dovecot.login(imap_user.name)
    try:
        status, folders = client.list()
        assert status == "OK"
        lines = [text(folders, i) for i in range(len(folders))]
        # Modified UTF-7 (RFC 3501 5.1.3), quoted for its spaces.
        assert any(line.endswith(b' "&BBAEQARFBDgEMg- &- co"') for line in lines), lines
    finally:
        client.logout()


def test_idle_hears_of_a_new_message(dovecot: DovecotServer, imap_user: ImapUser) -> None:
    client = dovecot.login(imap_user.name)
    try:
        client.select("INBOX")
        client.send(b"I1 IDLE\r\n")  # imaplib has no IDLE before Python 3.14
        assert client.readline().startswith(b"+ "), "no continuation for IDLE"
        started = time.monotonic()
        dovecot.append(imap_user.name, message("wake up"))
        lines: list[bytes] = []
        while not (lines and lines[-1] == b"* 1 EXISTS\r\n"):
            lines.append(client.readline())
            assert lines[-1], f"the connection closed while idling: {lines}"
        assert time.monotonic() - started < 10, "IDLE reported the message only after its poll interval"
        client.send(b"DONE\r\n")
        while not lines[-1].startswith(b"I1 "):
            lines.append(client.readline())
        assert lines[-1].startswith(b"I1 OK"), lines
    finally:
        client.logout()


def test_a_50_mb_message_appends_and_fetches_partially(dovecot: DovecotServer, imap_user: ImapUser) -> None:
    raw = big_message(50 * 1024 * 1024)
    client = dovecot.login(imap_user.name, timeout=120)
    try:
        status, data = client.append("INBOX", None, None, raw)
        assert status == "OK", data
        client.select("INBOX", readonly=True)
        status, fetched = client.fetch("1", "(RFC822.SIZE BODY.PEEK[]<0.1024>)")
        assert status == "OK"
        assert literal(fetched) == raw[:1024]
        head = fetched[0]
        assert isinstance(head, tuple)
        assert f"RFC822.SIZE {len(raw)}".encode() in head[0]
        status, fetched = client.fetch("1", f"(BODY.PEEK[]<{len(raw) - 4096}.4096>)")
        assert status == "OK"
        assert literal(fetched) == raw[-4096:]
    finally:
        client.logout()


ORPHAN = """
import sys, time
from pathlib import Path
from sendpy.devstack.imap import DovecotServer
from sendpy.devstack.tls import LocalCertificates
certs = LocalCertificates(*(Path(p) for p in sys.argv[2:5]))
server = DovecotServer(Path(sys.argv[1]), certs)
server.start()
server.add_user("orphan", "orphan pass")
print(server._child.proc.pid, server.port, flush=True)
time.sleep(120)
"""


def session_members(session: int) -> dict[int, str]:
    """pid → start time of every live process in a session (Dovecot's keeper leads its own)."""
    members = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[3] == str(session) and fields[0] != "Z":
            members[int(stat.parent.name)] = fields[19]
    return members


def program(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
    except OSError:
        return b"gone"


def assert_all_end(before: dict[int, str], session: int, client: imaplib.IMAP4_SSL) -> None:
    # Left alone, Dovecot's processes serve on for about 10 s after their master died.
    deadline = time.monotonic() + 4
    left = before
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        now = session_members(session)
        left = {pid: started for pid, started in before.items() if now.get(pid) == started}
    assert not left, f"Dovecot processes outlived it: {[program(pid) for pid in left]}"
    # Dovecot's own processes keep serving a client after their master died; here they must not.
    with pytest.raises((imaplib.IMAP4.abort, OSError)):
        client.noop()


def test_dovecot_dies_with_the_process_that_started_it(workdir: Path, certs: LocalCertificates) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", ORPHAN, str(workdir / "dovecot-orphan"),
         str(certs.ca_file), str(certs.cert_file), str(certs.key_file)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        session, port = map(int, parent.stdout.readline().split())
        # A client of this test's own, busy in a selected mailbox: an imap process serving it.
        client = imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=certs.client_context(), timeout=30)
        client.login("orphan", "orphan pass")
        client.select("INBOX")
        before = session_members(session)
        names = {program(pid) for pid in before}
        assert any(name.endswith(b"/imap") for name in names), names
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
    try:
        assert_all_end(before, session, client)
    finally:
        with contextlib.suppress(OSError):
            client.shutdown()


def test_stop_ends_every_process_even_with_clients(workdir: Path, certs: LocalCertificates) -> None:
    server = DovecotServer(workdir / "dovecot-stop", certs)
    server.start()
    try:
        server.add_user("stopper", "stop pass")
        client = server.login("stopper")
        client.select("INBOX")
        assert server._child is not None and server._child.proc is not None
        session = server._child.proc.pid
        before = session_members(session)
        assert len(before) >= 5, [program(pid) for pid in before]
    finally:
        server.stop()
    assert not server.alive()
    try:
        assert_all_end(before, session, client)
    finally:
        with contextlib.suppress(OSError):
            client.shutdown()
    # The same folder serves again, with the user and the mail it had.
    server.start()
    try:
        server.append("stopper", message("after restart"))
        again = server.login("stopper")
        assert again.select("INBOX") == ("OK", [b"1"])
        again.logout()
    finally:
        server.stop()


def test_user_names_and_passwords_are_checked(dovecot: DovecotServer,
                                              new_imap_user: Callable[..., ImapUser]) -> None:
    for bad in ["", "../etc", "a/b", "a:b", "a b", ".hidden", "x" * 101]:
        with pytest.raises(ValueError):
            dovecot.add_user(bad, "password")
    for bad_password in ["", "a\nb", "x" * 512]:
        with pytest.raises(ValueError):
            dovecot.add_user("fine", bad_password)
    # The longest password `doveadm pw` takes, and a password change that applies at once.
    user = new_imap_user(password="p" * 511)
    dovecot.login(user.name).logout()
    dovecot.add_user(user.name, "changed password")
    client = dovecot.connect()
    try:
        with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
            client.login(user.name, user.password)
    finally:
        client.logout()
    dovecot.login(user.name).logout()
