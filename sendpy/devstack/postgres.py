"""PostgreSQL 16 from the `pgserver` wheel's binaries, on a loopback TCP port.

We drive initdb/postgres ourselves (rather than pgserver's own lifecycle) so tests can stop,
kill and restart the server. Postgres refuses to run as root; then a system user runs it.
"""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
import warnings
from pathlib import Path

from sendpy.devstack.ports import free_port, wait_for_port
from sendpy.devstack.process import Child

RUN_AS = "sendpy-pg"


def _bin_dir() -> Path:
    # Importing pgserver computes a runtime directory for its own server lifecycle, which we do not
    # use; where XDG_RUNTIME_DIR is unset that printed a RuntimeDirWarning on every start.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
        from pgserver import _commands

    return Path(_commands.POSTGRES_BIN_PATH)


def _system_user() -> str | None:
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(RUN_AS)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", RUN_AS],
                       check=True, capture_output=True)
    return RUN_AS


class PostgresServer:
    def __init__(self, data_dir: Path, port: int | None = None, *, durable: bool = True,
                 settings: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.durable = durable
        self.settings = settings or {}
        self._child: Child | None = None
        self._user = _system_user()

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _chown(self, path: Path) -> None:
        if self._user:
            entry = pwd.getpwnam(self._user)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def start(self, timeout: float = 30.0) -> None:
        pgdata = self.data_dir / "pgdata"
        if not (pgdata / "PG_VERSION").exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            pgdata.mkdir(mode=0o700, exist_ok=True)
            self._chown(pgdata)
            result = subprocess.run(
                [str(_bin_dir() / "initdb"), "-D", str(pgdata), "-U", "postgres", "--auth=trust",
                 "-E", "UTF8", "--locale=C"],
                capture_output=True, text=True, user=self._user, check=False,
            )
            if result.returncode != 0:
                hint = f" (user {self._user} must be able to enter every folder above it)" if self._user else ""
                raise RuntimeError(f"initdb in {pgdata} failed{hint}:\n{result.stderr}")
        socket_dir = self.data_dir / "socket"
        socket_dir.mkdir(exist_ok=True)
        self._chown(socket_dir)
        options = ["-c", "max_connections=200", "-c", "shared_buffers=128MB"]
        for name, value in self.settings.items():
            options += ["-c", f"{name}={value}"]
        if not self.durable:
            # Only for tests: an OS crash could lose data, a killed postgres cannot.
            options += ["-c", "fsync=off", "-c", "full_page_writes=off"]
        self._child = Child(
            "postgres",
            [str(_bin_dir() / "postgres"), "-D", str(pgdata), "-p", str(self.port), "-h", "127.0.0.1",
             "-k", str(socket_dir), *options],
            self.data_dir / "postgres.log",
            user=self._user,
            stop_signal=signal.SIGINT,  # "fast" shutdown; SIGTERM would wait for every client
        )
        self._child.start()
        try:
            wait_for_port(self.port, timeout, alive=self._child.alive)
        except (TimeoutError, RuntimeError) as exc:
            raise RuntimeError(f"Postgres did not start: {exc}\n{self._child.tail()}") from None

    def alive(self) -> bool:
        return self._child is not None and self._child.alive()

    def stop(self) -> None:
        if self._child is not None:
            self._child.stop()

    def kill(self) -> None:
        if self._child is not None:
            self._child.kill()
