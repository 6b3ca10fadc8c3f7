"""Where a sender worker's time goes: py-spy samples sorted into categories, Postgres's statement log
summed per statement, and the statement counts and times the workers saw (worker_shim.py).

py-spy (`pip install py-spy` into the venv; scripts/bench does it) records each sender worker by
pid with native frames, so time spent inside uvloop, asyncpg's protocol and the C library is seen
under the Python code that caused it.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

# Leaf functions of a thread that is waiting, not working: such samples are not CPU time.
_WAITING = {"epoll_wait", "epoll_pwait", "epoll_pwait2", "__futex_abstimed_wait_common", "futex_wait",
            "__futex_abstimed_wait_common64", "do_futex_wait", "pthread_cond_wait", "pthread_cond_timedwait",
            "sem_timedwait", "sem_wait", "clock_nanosleep", "__clock_nanosleep", "select", "poll", "__poll",
            "nanosleep", "__GI___clock_nanosleep"}
# Python functions whose thread, when its leaf is an unnamed libc address, is blocked waiting.
_WAITING_PYTHON = {"_worker", "Condition.wait", "Event.wait", "Thread._wait_for_tstate_lock", "SimpleQueue.get",
                   "Queue.get", "_writer"}
SHIM = "benchmark's own shim thread (not counted)"
# Leaves that are system calls. py-spy samples wall-clock time of threads that are not idle, and on
# a busy machine a thread that wakes another process (a write to a loopback socket wakes smtp-sink
# or Postgres) is often preempted inside the call: such leaves collect time spent waiting for a
# CPU too. `summary` therefore also spreads the measured user and system CPU time of the workers
# over the user-space and system-call samples separately ("percent_of_cpu").
_SYSCALLS = {"write", "__libc_write", "writev", "send", "__libc_send", "sendto", "sendmsg", "read", "__libc_read",
             "readv", "recv", "__libc_recv", "recvfrom", "recvmsg", "getpid", "epoll_ctl", "close", "__close",
             "fstat", "openat", "__open64", "open64", "utimensat", "rename", "clock_gettime", "__clock_gettime"}
_SOCKET_READS = {"read", "recv", "__libc_read", "__libc_recv", "recvfrom", "readv"}

CATEGORIES = (
    "rendering",
    "SMTP I/O",
    "Postgres: claim (status check, UPDATE … RETURNING, suppression read)",
    "Postgres: outcome writes (UPDATE … FROM unnest)",
    "Postgres: window (send_window.finished: lock, min(position), UPDATE)",
    "Postgres: other (due positions, campaign status, heartbeat, finish check, next_due)",
    "Postgres: driver in the loop (asyncpg decoding replies, not tied to a statement)",
    "socket reads in the loop (SMTP replies, Postgres and Kafka: not told apart)",
    "Kafka (aiokafka)",
    "asyncio/uvloop overhead (the loop, tasks, futures, queues)",
    "scheduler and worker logic (Python, shared/delivery, limits, worker_image)",
    "garbage collection",
    "other",
)


def _frame(text: str) -> tuple[str, str]:
    """(function, file) of one frame of py-spy's raw output, e.g. 'send (shared/mail/pipelining.py:190)'."""
    match = re.match(r"(.*) \(([^()]*)\)$", text)
    if not match:
        return text, ""
    return match.group(1), match.group(2).rsplit(":", 1)[0]


def _domain(function: str, file: str) -> str | None:
    if file.endswith(".py"):
        if any(part in file for part in ("mail/compose.py", "mail/text_part.py", "unsubscribe.py", "template_limits.py",
                                         "jinja2/",
                                         "markupsafe/", "cryptography/", "inscriptis/")):
            return "rendering"
        if any(part in file for part in ("mail/messenger.py", "mail/pipelining.py", "mail/smtp_replies.py",
                                         "aiosmtplib/", "delivery/connections.py")):
            return "smtp"
        if "asyncpg/" in file or "postgres_store.py" in file:
            return "postgres"
        if "aiokafka/" in file or "/kafka/" in file:
            return "kafka"
        return None
    if file in {"protocol.c", "pgproto.c", "recordobj.c"} or "asyncpg" in function:
        return "postgres"
    if "aiokafka" in function:
        return "kafka"
    return None


def _postgres_kind(stack: list[tuple[str, str]]) -> str:
    names = {(function.rsplit(".", 1)[-1], Path(file).name) for function, file in stack if file.endswith(".py")}
    if ("record", "recipients.py") in names or ("_flush", "scheduler.py") in names:
        return CATEGORIES[3]
    if any(name in ("claim", "claimer") for name, _ in names):  # the suppression read is inside claim
        return CATEGORIES[2]
    if any(file == "send_window.py" for _, file in names):
        return CATEGORIES[4]
    loop_at = max((i for i, (_, file) in enumerate(stack)
                    if "asyncio/runners.py" in file or "asyncio/base_events.py" in file), default=-1)
    if any(file.endswith(".py") for _, file in stack[loop_at + 1 :]):
        return CATEGORIES[5]
    return CATEGORIES[6]  # only the loop and asyncpg's protocol: a reply being decoded


def categorise(stack: list[tuple[str, str]]) -> str | None:
    """The category of one sample (root first); None for a waiting thread."""
    if not stack:
        return "other"
    leaf = stack[-1][0]
    if leaf in _WAITING or leaf.startswith("epoll_"):
        return None
    python = [(function, file) for function, file in stack if file.endswith(".py")]
    if any(file.endswith("worker_shim.py") and function == "_writer" for function, file in python):
        return SHIM
    if leaf.startswith("0x") and python and python[-1][0] in _WAITING_PYTHON:
        return None  # an idle pool thread blocked in libc (no symbol): waiting for work
    for function, file in reversed(stack):  # the innermost frame that belongs to a domain decides
        domain = _domain(function, file)
        if domain == "rendering":
            return CATEGORIES[0]
        if domain == "smtp":
            return CATEGORIES[1]
        if domain == "postgres":
            return _postgres_kind(stack)
        if domain == "kafka":
            return CATEGORIES[8]
    if any(function.startswith("gc_collect") for function, _ in stack):
        return CATEGORIES[11]
    innermost = python[-1][1] if python else ""
    if any(part in innermost for part in ("/shared/", "/worker_image/", "shared/", "worker_image/")):
        return CATEGORIES[10]
    if leaf in _SOCKET_READS:
        return CATEGORIES[7]
    if not python or any(part in innermost for part in ("asyncio/", "uvloop/", "concurrent/", "threading.py")):
        return CATEGORIES[9]
    return CATEGORIES[12]


class Profiler:
    """py-spy record on each pid, stopped with SIGINT once the measured work is done."""

    def __init__(self, out_dir: Path, pids: list[int], rate: int = 100) -> None:
        self.out_dir = out_dir
        self.pids = pids
        self.rate = rate
        self.procs: list[subprocess.Popen[bytes]] = []
        self.files: list[Path] = []

    @staticmethod
    def available() -> str | None:
        found = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        return found if Path(found).exists() else None

    def start(self) -> None:
        tool = self.available()
        assert tool is not None
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for pid in self.pids:
            out = self.out_dir / f"sender-{pid}.txt"
            log = (self.out_dir / f"py-spy-{pid}.log").open("wb")
            self.procs.append(subprocess.Popen(
                [tool, "record", "--pid", str(pid), "--rate", str(self.rate), "--native", "--format", "raw",
                 "--output", str(out)], stdout=log, stderr=subprocess.STDOUT))
            self.files.append(out)

    def stop(self) -> None:
        for proc in self.procs:
            proc.send_signal(signal.SIGINT)
        for proc in self.procs:
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def summary(self, user_seconds: float = 0.0, system_seconds: float = 0.0) -> dict[str, object]:
        counts: Counter[str] = Counter()
        in_kernel: Counter[str] = Counter()
        leaves: dict[str, Counter[str]] = {}
        waiting = shim = 0
        for path in self.files:
            if not path.exists():
                continue
            for line in path.read_text(errors="replace").splitlines():
                frames, _, count_text = line.rpartition(" ")
                if not count_text.isdigit():
                    continue
                count = int(count_text)
                stack = [_frame(text) for text in frames.split(";")]
                # the first entry is the thread's start (a libc address or the thread name)
                category = categorise(stack[1:] if stack and stack[0][1] == "libc.so.6" else stack)
                if category is None:
                    waiting += count
                    continue
                if category == SHIM:
                    shim += count
                    continue
                counts[category] += count
                if stack[-1][0] in _SYSCALLS:
                    in_kernel[category] += count
                leaf_py = next((f"{fn} ({file})" for fn, file in reversed(stack) if file.endswith(".py")), "-")
                leaves.setdefault(category, Counter())[f"{stack[-1][0]} in {leaf_py}"] += count
        busy = sum(counts.values())
        kernel = sum(in_kernel.values())
        user = busy - kernel
        cpu: dict[str, float] = {}
        if user_seconds + system_seconds and user and kernel:
            share_user = user_seconds / (user_seconds + system_seconds)
            for name in CATEGORIES:
                cpu[name] = round(100 * (share_user * (counts[name] - in_kernel[name]) / user
                                         + (1 - share_user) * in_kernel[name] / kernel), 1)
        return {
            "percent_of_cpu": cpu,
            "system_call_samples_percent": round(100 * kernel / busy, 1) if busy else 0.0,
            "workers_user_system_seconds": [user_seconds, system_seconds],
            "samples_busy": busy,
            "samples_waiting": waiting,
            "samples_shim": shim,
            "rate_hz": self.rate,
            "percent_of_busy": {name: round(100 * counts[name] / busy, 1) for name in CATEGORIES if busy},
            "top_leaves": {name: leaves[name].most_common(12) for name in CATEGORIES if name in leaves},
            "raw_files": [str(path) for path in self.files],
        }


_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")
_DURATION = re.compile(r"LOG:  duration: ([0-9.]+) ms  (parse|bind|execute|statement)( [^:]*)?: (.*)")


def _normalise(sql: str) -> str:
    sql = re.sub(r"\s+", " ", sql).strip()
    return sql[:110]


def statement_log(log_path: Path, start_offset: int, end_offset: int) -> dict[str, object]:
    """Server-side time per statement from Postgres's log (log_min_duration_statement = 0) between
    two byte offsets: calls and milliseconds of bind + execute (asyncpg's parse happens once per
    connection). The commit's WAL flush is outside these durations (see pg_stat_wal)."""
    with log_path.open("rb") as handle:
        handle.seek(start_offset)
        text = handle.read(end_offset - start_offset).decode(errors="replace")
    entries: list[tuple[float, str, list[str]]] = []
    for line in text.splitlines():
        if _LOG_LINE.match(line):
            match = _DURATION.search(line)
            entries.append((float(match.group(1)), match.group(2), [match.group(4)]) if match else (0, "", []))
        elif entries and entries[-1][2] and not line.lstrip().startswith(("DETAIL:", "HINT:", "STATEMENT:")):
            entries[-1][2].append(line)
    per: dict[str, dict[str, float]] = {}
    for ms, phase, lines in entries:
        if not phase:
            continue
        key = _normalise(" ".join(lines))
        entry = per.setdefault(key, {"executions": 0, "ms": 0.0})
        entry["ms"] += ms
        if phase in ("execute", "statement"):
            entry["executions"] += 1
    total = sum(entry["ms"] for entry in per.values())
    ranked = sorted(per.items(), key=lambda item: -item[1]["ms"])
    return {
        "total_ms": round(total, 1),
        "statements": [{"sql": sql, "executions": int(v["executions"]), "ms": round(v["ms"], 1),
                        "percent": round(100 * v["ms"] / total, 1) if total else 0.0} for sql, v in ranked[:20]],
    }


def statement_deltas(before: dict[str, list[float]], after: dict[str, list[float]]) -> list[dict[str, object]]:
    """What the sender workers' Postgres calls cost over one campaign (worker_shim.py's totals)."""
    rows = []
    for key, (calls, seconds) in after.items():
        calls0, seconds0 = before.get(key, [0, 0.0])
        if calls - calls0:
            rows.append({"call": key, "calls": int(calls - calls0), "seconds": round(seconds - seconds0, 3),
                         "ms_each": round((seconds - seconds0) / (calls - calls0) * 1000, 3)})
    return sorted(rows, key=lambda row: -float(row["seconds"]))  # type: ignore[arg-type]


def read_statements(paths: list[Path]) -> dict[str, list[float]]:
    """Totals of several shimmed workers added up."""
    merged: dict[str, list[float]] = {}
    for path in paths:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        for key, (calls, seconds) in data.items():
            entry = merged.setdefault(key, [0, 0.0])
            entry[0] += calls
            entry[1] += seconds
    return merged
