"""Mailpit (github.com/axllent/mailpit, MIT), a real third-party SMTP server with an HTTP API.

Beside the project's own sink it checks that what Sendpy sends is accepted by an SMTP server we
did not write. scripts/bootstrap builds it from its Go module into .tools/bin. It listens on
free loopback ports, requires STARTTLS (the local CA's certificate, which Sendpy trusts through
SENDPY_SMTP_CA_FILE) and AUTH for the one user of its password file, and keeps messages in a
database of its own. Mailpit offers SMTPUTF8 and 8BITMIME but not PIPELINING, so Sendpy talks
to it through aiosmtplib's one-command-at-a-time path.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import os
import re
import shutil
import time
from pathlib import Path

from sendpy.devstack.ports import free_port, wait_for_port
from sendpy.devstack.process import Child
from sendpy.devstack.tls import LocalCertificates

ROOT = Path(__file__).resolve().parent.parent.parent


def find_binary() -> Path:
    """$SENDPY_MAILPIT, else the one scripts/bootstrap built, else `mailpit` on PATH."""
    configured = os.environ.get("SENDPY_MAILPIT")
    candidates = [Path(configured)] if configured else [ROOT / ".tools" / "bin" / "mailpit"]
    on_path = shutil.which("mailpit")
    if on_path and not configured:
        candidates.append(Path(on_path))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise RuntimeError("Mailpit is not installed: run `scripts/bootstrap test` (it builds .tools/bin/mailpit)")


def htpasswd_line(username: str, password: str) -> str:
    """One line of Mailpit's password file, the password as a {SHA} hash, never in clear text."""
    # Mailpit splits its password file on any whitespace and the htpasswd format on ':'.
    if not username or re.search(r"[\s:]", username):
        raise ValueError("a Mailpit user name must be non-empty, without spaces or ':'")
    digest = base64.b64encode(hashlib.sha1(password.encode(), usedforsecurity=False).digest()).decode()
    return f"{username}:{{SHA}}{digest}\n"


class MailpitServer:
    """Mailpit on 127.0.0.1: `smtp_port` (STARTTLS and AUTH required) and `http_port` (its API)."""

    def __init__(self, data_dir: Path, certs: LocalCertificates, username: str, password: str, *,
                 smtp_port: int | None = None, http_port: int | None = None, binary: Path | None = None,
                 max_messages: int = 5000) -> None:
        self.data_dir = data_dir
        self.certs = certs
        self.username = username
        self.password = password
        self.smtp_port = smtp_port or free_port()
        self.http_port = http_port or free_port()
        self.binary = binary
        self.max_messages = max_messages
        self._child: Child | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def argv(self, binary: Path) -> list[str]:
        auth_file = self.data_dir / "smtp-users"
        return [
            str(binary),
            "--smtp", f"127.0.0.1:{self.smtp_port}",
            "--listen", f"127.0.0.1:{self.http_port}",
            "--database", str(self.data_dir / "mailpit.db"),
            "--max", str(self.max_messages),
            "--smtp-tls-cert", str(self.certs.cert_file),
            "--smtp-tls-key", str(self.certs.key_file),
            "--smtp-require-starttls",
            "--smtp-auth-file", str(auth_file),
            # This machine reaches no network: no reverse DNS, no release checks, no remote CSS.
            "--smtp-disable-rdns",
            "--disable-version-check",
            "--block-remote-css-and-fonts",
        ]

    def start(self, timeout: float = 30.0) -> None:
        binary = self.binary or find_binary()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        auth_file = self.data_dir / "smtp-users"
        auth_file.write_text(htpasswd_line(self.username, self.password))
        auth_file.chmod(0o600)
        self._child = Child("mailpit", self.argv(binary), self.data_dir / "mailpit.log")
        self._child.start()
        try:
            wait_for_port(self.smtp_port, timeout, alive=self._child.alive)
            wait_for_port(self.http_port, timeout, alive=self._child.alive)
            self._wait_ready(timeout)
        except (TimeoutError, RuntimeError) as exc:
            self._child.kill()
            raise RuntimeError(f"Mailpit did not start: {exc}\n{self._child.tail()}") from None

    def _wait_ready(self, timeout: float) -> None:
        """Mailpit answers /readyz with 200 once its database is open."""
        deadline = time.monotonic() + timeout
        while True:
            connection = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=2)
            try:
                connection.request("GET", "/readyz")
                if connection.getresponse().status == 200:
                    return
            except (OSError, http.client.HTTPException):
                pass
            finally:
                connection.close()
            if time.monotonic() > deadline:
                raise TimeoutError(f"Mailpit's /readyz did not answer 200 within {timeout:.0f}s")
            time.sleep(0.1)

    def alive(self) -> bool:
        return self._child is not None and self._child.alive()

    def tail(self, lines: int = 30) -> str:
        return self._child.tail(lines) if self._child is not None else ""

    def stop(self) -> None:
        if self._child is not None:
            self._child.stop(timeout=10)
