"""Servers started by the tests and the dev stack never outlive the process that started them."""

from __future__ import annotations

import os
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


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead too: it only waits for its (new) parent to reap it.
    stat = Path(f"/proc/{pid}/stat")
    return not stat.exists() or stat.read_text().split(")")[-1].split()[0] != "Z"


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
def test_a_child_dies_with_its_parent(tmp_path: Path, how: signal.Signals) -> None:
    parent = subprocess.Popen([sys.executable, "-c", STARTER, str(tmp_path / "child.log")], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child_pid = int(parent.stdout.readline())
    # setpriv sets the parent-death signal, then runs the program: wait until it has (a parent
    # killed in those microseconds would leave the child without the signal).
    deadline = time.monotonic() + 10
    while b"time.sleep(120)" not in Path(f"/proc/{child_pid}/cmdline").read_bytes():
        assert time.monotonic() < deadline, "the child never started"
        time.sleep(0.02)
    assert alive(child_pid)
    parent.send_signal(how)  # the parent has no handler: SIGTERM ends it as abruptly as SIGKILL
    parent.wait(10)
    deadline = time.monotonic() + 10
    while alive(child_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child_pid), f"the child {child_pid} outlived its parent"
