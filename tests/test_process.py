"""Servers started by the tests and the dev stack never outlive the process that started them."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT

STARTER = """
import sys, time
from pathlib import Path
from sendpy.devstack.process import Child
child = Child("sleeper", [sys.executable, "-c", "import time; time.sleep(120)"], Path(sys.argv[1]))
child.start()
print(child.pid, flush=True)
time.sleep(120)
"""


def started_at(pid: int) -> str | None:
    """The process's start time (its identity: a pid can be reused), None once it is gone or a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] == "Z" else fields[19]


def describe(pid: int) -> str:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "gone"
    wanted = ("State", "PPid", "SigBlk", "SigIgn", "SigCgt")
    return cmdline + " | " + ", ".join(line for line in status.splitlines() if line.split(":")[0] in wanted)


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
def test_a_child_dies_with_its_parent(tmp_path: Path, how: signal.Signals) -> None:
    parent = subprocess.Popen([sys.executable, "-c", STARTER, str(tmp_path / "child.log")], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child_pid = int(parent.stdout.readline())
    # setpriv sets the parent-death signal, then runs the program: wait until it has (a parent
    # killed in those microseconds would leave the child without the signal).
    deadline = time.monotonic() + 10
    while not Path(f"/proc/{child_pid}/cmdline").read_bytes().startswith(sys.executable.encode()):
        assert time.monotonic() < deadline, "the child never started"
        time.sleep(0.02)
    identity = started_at(child_pid)
    assert identity is not None

    def alive(pid: int) -> bool:
        return started_at(pid) == identity

    parent.send_signal(how)  # the parent has no handler: SIGTERM ends it as abruptly as SIGKILL
    parent.wait(10)
    deadline = time.monotonic() + 10
    while alive(child_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child_pid), f"the child {child_pid} outlived its parent: {describe(child_pid)}"
