"""Dovecot (Debian's dovecot-imapd), a real IMAP server for the tests and the local stack.

scripts/bootstrap installs the package; nothing of it is used but its binaries. Each instance
writes its own dovecot.conf into its data folder and runs it in the foreground (`dovecot -F -c`),
so /etc/dovecot, /run/dovecot and /var/lib/dovecot are never read or written, and a system
Dovecot (if one runs) does not matter. Everything lives in the data folder:

    dovecot.conf      the configuration written by `write_config()`
    dovecot.log       Dovecot's own log (and its stdout/stderr)
    .lock             held (flock) by the DovecotServer running on this folder
    users/<name>      one passwd-file per user: `name:{SHA512-CRYPT}$6$…` (from `doveadm pw`)
    mail/<name>/      the user's Maildir
    home/<name>/      the user's home (Dovecot keeps small state files there)
    mail-tmp/         mail_temp_dir
    run/              base_dir: the master's pid file and every UNIX socket (login/, token-login/, empty/)
    state/            state_dir

It listens on 127.0.0.1 only: `port` is implicit TLS (imaps) with the local CA's certificate, and
with `starttls=True` `starttls_port` is plain IMAP offering STARTTLS (see below: on loopback
Dovecot does not insist on it). IDLE and UIDPLUS are Dovecot's defaults; Dovecot 2.3 sets no
limit on APPEND without its quota plugin, and the imap processes may grow to 1 GB, so messages
of 60 MB and more are fine.

Users and processes:

* As root, Dovecot needs its package's system users: the master stays root, the login processes
  run as `dovenull` chrooted into run/login, auth and the other helpers as `dovecot`, and the mail
  processes as `dovecot` too: Dovecot refuses uid 0 for mail ("userdb returned 0 as uid") and the
  package creates no other user, so first_valid_uid is lowered to it. The mail folders are
  therefore chowned to `dovecot`, and the password files are group-readable by it.
* As a normal user, Dovecot's "rootless" mode: every process runs as that user, no service is
  chrooted (chroot needs root), and the mail belongs to that user.
* Dovecot runs in the foreground (`-F`) under a small `sh` keeper (KEEPER below) started through
  process.Child: Dovecot's own processes serve their clients on for about 10 s after the master
  died, so the parent-death signal on the master alone would not end them. The keeper's death
  signal is SIGTERM: it stops the master, then kills the whole process group.

Loopback and STARTTLS: Dovecot counts a connection whose remote address equals its local one as
"secured" (login-common/client-common.c: `secured = ssl || trusted || remote_ip == local_ip`),
and no setting turns that off in 2.3. On 127.0.0.1 every client is such a connection, so the plain
port offers STARTTLS but does not advertise LOGINDISABLED and accepts LOGIN without it. To check
that a client did use TLS, look at `logins()`: Dovecot logs "TLS" there, or "secured" without it.

Users are one passwd-file each (`users/%u`), not one shared file: Dovecot 2.3 re-reads a
passwd-file at most once per second (db-passwd-file.c: `last_sync_time == ioloop_time`), so a
user added to a shared file within the same second as another login would be "unknown" for up to a
second. A new file is read at its first lookup. Changing an existing user's password therefore
waits out that second.
"""

from __future__ import annotations

import base64
import fcntl
import grp
import imaplib
import os
import pwd
import re
import secrets
import shutil
import signal
import ssl
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from sendpy.devstack.ports import free_port, wait_for_port
from sendpy.devstack.process import Child
from sendpy.devstack.tls import LocalCertificates

# Dovecot's processes serve a connected client on for about 10 s after their master died (seen
# with 2.3.19), so a killed master would leave IMAP sessions running for a while. Hence this
# keeper, the leader of the process group every Dovecot process stays in: when the master ends,
# or the keeper gets SIGTERM (from stop(), or as its parent-death signal), it stops the master and
# then SIGKILLs the whole group, itself included.
KEEPER = """\
trap '[ -n "${master:-}" ] && kill -TERM "$master" 2>/dev/null && wait "$master"; kill -KILL 0' TERM INT HUP
"$@" &
master=$!
wait "$master"
kill -KILL 0
"""
# Dovecot's UNIX sockets live in base_dir (run/); sun_path holds 107 bytes and the longest path
# below it is "token-login/imap-urlauth" (24).
MAX_BASE_DIR = 75
USER_NAME = re.compile(r"[a-z0-9_][a-z0-9._@+-]{0,99}")
APPENDUID = re.compile(rb"\[APPENDUID (\d+) (\d+)\]")
# "imap-login: Info: Login: user=<bob>, method=PLAIN, rip=127.0.0.1, lip=127.0.0.1, mpid=42, TLS, session=<…>"
LOGIN_LINE = re.compile(r"imap-login: Info: Login: user=<([^>]*)>, method=([^,]+), (.*)$")


@dataclass(frozen=True)
class Login:
    user: str
    method: str  # the SASL mechanism: PLAIN for LOGIN, PLAIN or LOGIN for AUTHENTICATE
    tls: bool  # False: a plain-port login without STARTTLS, which Dovecot allows on loopback only


def find_binary(name: str = "dovecot") -> Path:
    """$SENDPY_DOVECOT (for `dovecot`), else PATH, else /usr/sbin or /usr/bin (not on a user's PATH)."""
    configured = os.environ.get("SENDPY_DOVECOT") if name == "dovecot" else None
    if configured:
        candidates = [Path(configured)]
    else:
        on_path = shutil.which(name)
        candidates = [Path(on_path)] if on_path else []
        candidates += [Path("/usr/sbin") / name, Path("/usr/bin") / name]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise RuntimeError(f"Dovecot's `{name}` is not installed: run `scripts/bootstrap test` "
                       "(it installs Debian's dovecot-imapd)")


def _check_user_name(name: str) -> str:
    """Dovecot lower-cases user names at login (auth_username_format = %Lu); so do we."""
    lowered = name.lower()
    if not USER_NAME.fullmatch(lowered):
        raise ValueError(f"not a usable IMAP user name: {name!r} (letters, digits and ._@+- only, up to 100)")
    return lowered


def _check_password(password: str) -> None:
    encoded = password.encode()
    if not encoded or len(encoded) > 511 or any(c in password for c in "\r\n\0"):
        # `doveadm pw` reads it as one line of at most 511 bytes.
        raise ValueError("an IMAP password must be 1-511 bytes of UTF-8 without CR, LF or NUL")


class DovecotServer:
    """Dovecot on 127.0.0.1: `port` (imaps) and, with `starttls=True`, `starttls_port` (imap + STARTTLS)."""

    def __init__(self, data_dir: Path, certs: LocalCertificates, *, port: int | None = None,
                 starttls: bool = False, starttls_port: int | None = None,
                 auth_failure_delay: float = 0.0) -> None:
        self.data_dir = data_dir.resolve()
        self.certs = certs
        self._port = port or free_port()
        self._starttls_port = (starttls_port or free_port()) if starttls or starttls_port else None
        self.auth_failure_delay = auth_failure_delay  # Dovecot's default is 2 s; tests want 0
        self.passwords: dict[str, str] = {}  # the users added through this object, for append()
        self._child: Child | None = None
        self._lock: IO[str] | None = None
        self._greeting = f"Sendpy local Dovecot {secrets.token_hex(4)} ready."
        if os.geteuid() == 0:
            # Dovecot's package users (see the module's docstring).
            try:
                internal = pwd.getpwnam("dovecot")
                pwd.getpwnam("dovenull")
            except KeyError:
                raise RuntimeError("Dovecot's system users dovecot/dovenull are missing: run "
                                   "`scripts/bootstrap test` (it installs Debian's dovecot-imapd)") from None
            self._internal_user, self._login_user = "dovecot", "dovenull"
            self._internal_group = grp.getgrgid(internal.pw_gid).gr_name
            self._mail_uid, self._mail_gid = internal.pw_uid, internal.pw_gid
        else:
            me = pwd.getpwuid(os.geteuid())
            self._internal_user = self._login_user = me.pw_name
            self._internal_group = grp.getgrgid(os.getegid()).gr_name
            self._mail_uid, self._mail_gid = os.geteuid(), os.getegid()

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def port(self) -> int:
        """Implicit TLS (imaps)."""
        return self._port

    @property
    def starttls_port(self) -> int | None:
        """Plain IMAP offering STARTTLS, if enabled (see the module's docstring on loopback)."""
        return self._starttls_port

    @property
    def config_path(self) -> Path:
        return self.data_dir / "dovecot.conf"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "dovecot.log"

    @property
    def rootless(self) -> bool:
        return os.geteuid() != 0

    def _dir(self, name: str, mode: int, *, mail_owned: bool = False, group: int | None = None) -> Path:
        path = self.data_dir / name
        path.mkdir(mode=mode, exist_ok=True)
        path.chmod(mode)
        if not self.rootless and (mail_owned or group is not None):
            os.chown(path, self._mail_uid if mail_owned else 0, group if group is not None else self._mail_gid)
        return path

    def config(self) -> str:
        """The whole dovecot.conf (Dovecot 2.3 syntax)."""
        d = self.data_dir
        # chroot() needs root: rootless, no service may ask for it (these do by default).
        no_chroot = "  chroot =\n" if self.rootless else ""
        quiet_chroot = "".join(
            f"service {name} {{\n{no_chroot}}}\n"
            for name in ("imap-urlauth-login", "ipc", "aggregator", "director", "old-stats")
        ) if self.rootless else ""
        starttls_listener = (
            f"  inet_listener imap {{\n    address = 127.0.0.1\n    port = {self._starttls_port}\n  }}\n"
            if self._starttls_port else "  inet_listener imap {\n    port = 0\n  }\n"
        )
        return f"""\
# Written by sendpy/devstack/imap.py for this data folder only; rewritten at every start.
protocols = imap
listen = 127.0.0.1
base_dir = {d}/run
state_dir = {d}/state
instance_name = sendpy-dovecot
log_path = {d}/dovecot.log
auth_verbose = yes
login_greeting = {self._greeting}

default_internal_user = {self._internal_user}
default_internal_group = {self._internal_group}
default_login_user = {self._login_user}
first_valid_uid = {self._mail_uid}
last_valid_uid = 0
first_valid_gid = {self._mail_gid}

ssl = required
ssl_cert = <{self.certs.cert_file}
ssl_key = <{self.certs.key_file}
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = yes
auth_mechanisms = plain login
auth_failure_delay = {self.auth_failure_delay:g} secs

passdb {{
  driver = passwd-file
  args = {d}/users/%u
}}
userdb {{
  driver = static
  args = uid={self._mail_uid} gid={self._mail_gid} home={d}/home/%u
}}
mail_location = maildir:{d}/mail/%u
mail_temp_dir = {d}/mail-tmp
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Drafts {{
    special_use = \\Drafts
    auto = subscribe
  }}
  mailbox Sent {{
    special_use = \\Sent
    auto = subscribe
  }}
  mailbox Junk {{
    special_use = \\Junk
    auto = subscribe
  }}
  mailbox Trash {{
    special_use = \\Trash
    auto = subscribe
  }}
}}

# Every client comes from 127.0.0.1: with the auth penalty, a few wrong passwords in one test
# would delay every later login, of any user, by up to 15 s. Auth turns the penalty off when it
# cannot reach this socket (Dovecot's documented way; in 2.3.19 login_trusted_networks does not
# skip it, contrary to its documentation).
service anvil {{
{no_chroot}  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}

protocol imap {{
  mail_max_userip_connections = 100
}}
service imap {{
  vsz_limit = 1G
}}
service imap-login {{
{no_chroot}  inet_listener imaps {{
    address = 127.0.0.1
    port = {self._port}
    ssl = yes
  }}
{starttls_listener}}}
{quiet_chroot}"""

    def write_config(self) -> None:
        """Create the folders (owned as Dovecot needs them) and write dovecot.conf."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        run_dir = self.data_dir / "run"
        if len(str(run_dir)) > MAX_BASE_DIR:
            raise RuntimeError(f"Dovecot's socket folder {run_dir} is too long for UNIX sockets; "
                               "use a shorter data folder")
        if not self.rootless:
            # The mail processes (user dovecot) reach run/ and their folders through it.
            self.data_dir.chmod(0o711)
            closed = [p for p in self.data_dir.parents if not p.stat().st_mode & stat.S_IXOTH]
            if closed:
                raise RuntimeError(f"Dovecot's mail processes (user dovecot) cannot enter {closed[0]}: "
                                   "keep its data folder where every folder above it is searchable (o+x)")
        self._dir("users", 0o750, group=self._mail_gid)
        self._dir("mail", 0o700, mail_owned=True)
        self._dir("home", 0o700, mail_owned=True)
        self._dir("mail-tmp", 0o700, mail_owned=True)
        self._dir("state", 0o700)
        self.config_path.write_text(self.config())

    def start(self, timeout: float = 30.0) -> None:
        binary = find_binary()
        self.write_config()
        # One server per data folder: its sockets and pid file are there. The lock goes with us.
        self._lock = (self.data_dir / ".lock").open("w")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            self._lock = None
            raise RuntimeError(f"another DovecotServer runs on {self.data_dir}") from None
        # So a pid file left by a killed master (its pid maybe reused since) cannot stop this start.
        (self.data_dir / "run" / "master.pid").unlink(missing_ok=True)
        setpriv = shutil.which("setpriv")
        keeper = [setpriv, "--pdeathsig", "TERM", "--"] if setpriv else []
        argv = [*keeper, "/bin/sh", "-c", KEEPER, "dovecot-keeper", str(binary), "-F", "-c", str(self.config_path)]
        self._child = Child("dovecot", argv, self.log_path, stop_signal=signal.SIGTERM)
        try:
            self._child.start()
            self._wait_ready(time.monotonic() + timeout)
        except (OSError, RuntimeError) as exc:  # TimeoutError is an OSError
            self.kill()
            raise RuntimeError(f"Dovecot did not start: {exc}\n{self._child.tail()}") from None

    def _wait_ready(self, deadline: float) -> None:
        """Until each port greets with this instance's greeting (not merely accepts: a port taken
        by another program accepts too), over TLS verified with the local CA on `port`."""
        assert self._child is not None
        for port, tls in ((self._port, True), (self._starttls_port, False)):
            if port is None:
                continue
            wait_for_port(port, max(deadline - time.monotonic(), 0.1), alive=self._child.alive)
            while True:
                try:
                    client = (imaplib.IMAP4_SSL(self.host, port, ssl_context=self.client_context(), timeout=5)
                              if tls else imaplib.IMAP4(self.host, port, timeout=5))
                    welcome = client.welcome
                    client.shutdown()
                    if self._greeting.encode() in welcome:
                        break
                    raise RuntimeError(f"127.0.0.1:{port} answers {welcome[:200]!r}, not this Dovecot")
                except (OSError, imaplib.IMAP4.error, EOFError):
                    if not self._child.alive():
                        raise RuntimeError("dovecot exited") from None
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)

    def alive(self) -> bool:
        return self._child is not None and self._child.alive()

    def tail(self, lines: int = 30) -> str:
        return self._child.tail(lines) if self._child is not None else ""

    def stop(self) -> None:
        """Stop the master, then every Dovecot process left (also those still serving a client)."""
        if self._child is not None:
            self._child.stop(timeout=10)
        self._unlock()

    def kill(self) -> None:
        if self._child is not None:
            self._child.kill()
        self._unlock()

    def _unlock(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def logins(self, user: str | None = None) -> list[Login]:
        """Successful logins so far from Dovecot's log (all users, or one), oldest first."""
        wanted = _check_user_name(user) if user is not None else None
        found = []
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return []
        for line in text.splitlines():
            match = LOGIN_LINE.search(line)
            if match and (wanted is None or match.group(1) == wanted):
                fields = match.group(3).split(", ")
                found.append(Login(match.group(1), match.group(2), tls="TLS" in fields))
        return found

    def password_hash(self, password: str) -> str:
        """`{SHA512-CRYPT}$6$…` from `doveadm pw`, the password given on stdin (never in argv)."""
        _check_password(password)
        result = subprocess.run(
            [str(find_binary("doveadm")), "-c", "/dev/null", "pw", "-s", "SHA512-CRYPT"],
            input=f"{password}\n{password}\n".encode(), capture_output=True, check=False,
            # No controlling terminal: doveadm then reads the password from stdin, not /dev/tty.
            start_new_session=True,
        )
        hashed = result.stdout.decode().strip()
        if result.returncode != 0 or not hashed.startswith("{SHA512-CRYPT}$6$"):
            raise RuntimeError(f"doveadm pw failed: {result.stderr.decode(errors='replace').strip()}")
        return hashed

    def add_user(self, name: str, password: str) -> str:
        """Create (or change) a user; returns the name Dovecot knows it by (lower-cased)."""
        name = _check_user_name(name)
        hashed = self.password_hash(password)
        if not (self.data_dir / "users").is_dir():
            self.write_config()
        path = self.data_dir / "users" / name
        previous = path.stat().st_mtime_ns // 1_000_000_000 if path.exists() else None
        temporary = path.with_name(f".{name}.tmp")
        temporary.write_text(f"{name}:{hashed}\n")
        temporary.chmod(0o640)
        if not self.rootless:
            os.chown(temporary, 0, self._mail_gid)
        if previous is not None and temporary.stat().st_mtime_ns // 1_000_000_000 <= previous:
            # Dovecot notices a changed file by its mtime in seconds and its size (the same here).
            os.utime(temporary, (previous + 1, previous + 1))
        temporary.replace(path)
        self.passwords[name] = password
        if previous is not None:
            # It may also have looked at the old file within this second: it will not look again
            # before the next one.
            time.sleep(1.05 - time.time() % 1)
        return name

    def client_context(self) -> ssl.SSLContext:
        """TLS that trusts the local CA only."""
        return self.certs.client_context()

    def connect(self, timeout: float = 30.0) -> imaplib.IMAP4_SSL:
        """An unauthenticated imaps connection that verifies the server with the local CA."""
        return imaplib.IMAP4_SSL(self.host, self._port, ssl_context=self.client_context(), timeout=timeout)

    def login(self, user: str, timeout: float = 30.0) -> imaplib.IMAP4_SSL:
        """A connection logged in as a user added through `add_user`."""
        name = _check_user_name(user)
        if name not in self.passwords:
            raise KeyError(f"{user!r} was not added through add_user() on this server object")
        client = self.connect(timeout)
        try:
            client.login(name, self.passwords[name])
        except BaseException:
            client.shutdown()
            raise
        return client

    def append(self, user: str, raw_message: bytes, folder: str = "INBOX", flags: str = "") -> int:
        """Put a message into a user's folder (created if missing) by IMAP APPEND as that user.

        Returns the message's UID (from UIDPLUS' APPENDUID). `flags` is e.g. "(\\Seen)".
        """
        client = self.login(user, timeout=120)
        try:
            mailbox = _quote(folder)
            if folder.upper() != "INBOX":
                status, _ = client.status(mailbox, "(MESSAGES)")
                if status != "OK":
                    status, data = client.create(mailbox)
                    if status != "OK":
                        raise RuntimeError(f"CREATE {folder!r} failed: {data!r}")
            status, data = client.append(mailbox, flags or None, None, raw_message)
            found = APPENDUID.search(data[0] or b"") if status == "OK" and data else None
            if found is None:
                raise RuntimeError(f"APPEND to {folder!r} failed: {status} {data!r}")
            return int(found.group(2))
        finally:
            try:
                client.logout()
            except (OSError, imaplib.IMAP4.error):
                client.shutdown()


def encode_mailbox(name: str) -> str:
    """A mailbox name in IMAP's modified UTF-7 (RFC 3501 5.1.3), e.g. "Отправленные" → "&BB4EQgQ…-"."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            encoded = base64.b64encode("".join(pending).encode("utf-16-be")).rstrip(b"=").replace(b"/", b",")
            out.append(f"&{encoded.decode()}-")
            pending.clear()

    for char in name:
        if 0x20 <= ord(char) <= 0x7E:
            flush()
            out.append("&-" if char == "&" else char)
        else:
            pending.append(char)
    flush()
    return "".join(out)


def _quote(mailbox: str) -> str:
    """A mailbox name as an IMAP quoted string (imaplib sends arguments as given, in ASCII)."""
    if any(c in mailbox for c in "\r\n\0"):
        raise ValueError(f"not a usable mailbox name: {mailbox!r}")
    escaped = encode_mailbox(mailbox).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
