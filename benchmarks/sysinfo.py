"""The machine a benchmark ran on, how busy it was, and CPU time by process tree (from /proc).

Linux only, no dependencies: the numbers come from /proc/cpuinfo, /proc/meminfo, /proc/loadavg,
/proc/stat and /proc/<pid>/stat.
"""

from __future__ import annotations

import os
import platform
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def machine(data_dir: Path | None = None) -> dict[str, object]:
    """CPU model, cores, RAM, kernel, Python, and the filesystem Postgres writes to."""
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
    info: dict[str, object] = {
        "cpu": model,
        "cores": os.cpu_count(),
        "ram_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "arch": platform.machine(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
    }
    try:
        virt = subprocess.run(["systemd-detect-virt"], capture_output=True, text=True, check=False).stdout.strip()
        if virt:
            info["virtualisation"] = virt
    except OSError:
        pass
    if data_dir is not None:
        out = subprocess.run(["df", "--output=source,fstype", str(data_dir)], capture_output=True, text=True,
                             check=False).stdout.split("\n")[1:2]
        info["postgres_disk"] = " ".join(out[0].split()) if out else "unknown"
    return info


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


class QuietWaiter:
    """Waits before a measured step while the 1-minute load is above `limit`, within a total budget
    for the whole benchmark (so a machine that never quietens still gets measured, noisily)."""

    def __init__(self, limit: float, budget_seconds: float, check_seconds: float = 60.0) -> None:
        self.limit = limit
        self.budget = budget_seconds
        self.check = check_seconds
        self.waited = 0.0

    def wait(self, what: str) -> dict[str, float]:
        load = loadavg()
        waited_here = 0.0
        while load > self.limit and self.waited < self.budget:
            step = min(self.check, self.budget - self.waited)
            print(f"   load {load:.2f} > {self.limit}: waiting {step:.0f} s before {what} "
                  f"({self.waited / 60:.0f} of {self.budget / 60:.0f} min spent)", flush=True)
            time.sleep(step)
            self.waited += step
            waited_here += step
            load = loadavg()
        return {"load_1min_before": load, "waited_s": waited_here}


def _all_stats() -> dict[int, tuple[int, int, int]]:
    """pid -> (ppid, own ticks, ticks of reaped children) for every live process."""
    found: dict[int, tuple[int, int, int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            raw = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rfind(")") + 2 :].split()
        # fields[0] is state (field 3); utime=14, stime=15, cutime=16, cstime=17, ppid=4
        found[int(entry.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]),
                                  int(fields[13]) + int(fields[14]))
    return found


def _machine_ticks() -> tuple[int, int]:
    """(busy, total) ticks of the whole machine since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    total = sum(values[:8])  # guest time is already inside user
    idle = values[3] + values[4]
    return total - idle, total


def _user_system(pid: int) -> tuple[int, int]:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0, 0
    fields = raw[raw.rfind(")") + 2 :].split()
    return int(fields[11]), int(fields[12])


@dataclass
class CpuSnapshot:
    at: float
    trees: dict[str, int]
    user_system: dict[int, tuple[int, int]]
    machine_busy: int
    machine_total: int
    split: dict[int, int]  # pid -> own ticks, for the children of `split_root`
    split_root: tuple[int, int]  # the root's own ticks, ticks of its reaped children


def _title(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


class CpuMeter:
    """CPU seconds used by named process trees between two snapshots, and by everything else."""

    def __init__(self, groups: dict[str, list[int]], own_root: int, detail_pids: list[int] | None = None,
                 split_root: int | None = None) -> None:
        self.groups = groups  # name -> root pids (each root counted with its descendants)
        self.own_root = own_root  # this benchmark and all it started
        self.detail_pids = detail_pids or []  # user/system split for these
        self.split_root = split_root  # the postmaster: its children's CPU by role (see split())

    def snapshot(self) -> CpuSnapshot:
        stats = _all_stats()
        children: dict[int, list[int]] = {}
        for pid, (ppid, _, _) in stats.items():
            children.setdefault(ppid, []).append(pid)

        def tree(root: int) -> int:
            total, stack = 0, [root]
            while stack:
                pid = stack.pop()
                if pid in stats:
                    total += stats[pid][1] + stats[pid][2]
                stack.extend(children.get(pid, []))
            return total

        trees = {name: sum(tree(root) for root in roots) for name, roots in self.groups.items()}
        trees["_ours"] = tree(self.own_root)
        busy, total = _machine_ticks()
        split: dict[int, int] = {}
        split_root = (0, 0)
        if self.split_root is not None and self.split_root in stats:
            split = {pid: stats[pid][1] + stats[pid][2] for pid in children.get(self.split_root, [])}
            split_root = (stats[self.split_root][1], stats[self.split_root][2])
        return CpuSnapshot(time.perf_counter(), trees, {p: _user_system(p) for p in self.detail_pids}, busy, total,
                           split, split_root)

    def split(self, before: CpuSnapshot, after: CpuSnapshot, client_of: dict[int, str]) -> dict[str, float]:
        """The postmaster's children's CPU seconds by role: client backends by their application_name
        (`client_of`, from pg_stat_activity), background processes by their title; processes that
        exited meanwhile (autovacuum workers, mostly) are counted in the postmaster's reaped time."""
        roles: dict[str, float] = {}
        for pid, ticks in after.split.items():
            used = (ticks - before.split.get(pid, 0)) / TICKS
            if pid in client_of:
                role = f"backends of {client_of[pid] or 'unnamed clients'}"
            else:
                title = _title(pid).removeprefix("postgres: ")
                role = title if not title.startswith("postgres ") else "backends of unnamed clients"
            roles[role] = roles.get(role, 0.0) + used
        roles["postmaster"] = (after.split_root[0] - before.split_root[0]) / TICKS
        roles["exited meanwhile (autovacuum workers, closed connections)"] = (
            (after.split_root[1] - before.split_root[1]) / TICKS)
        return {role: round(value, 2) for role, value in sorted(roles.items(), key=lambda item: -item[1]) if value}

    def between(self, before: CpuSnapshot, after: CpuSnapshot) -> dict[str, object]:
        seconds = {name: (after.trees[name] - before.trees[name]) / TICKS for name in after.trees}
        ours = seconds.pop("_ours")
        machine_busy = (after.machine_busy - before.machine_busy) / TICKS
        wall = after.at - before.at
        out: dict[str, object] = {name: round(value, 2) for name, value in seconds.items()}
        out["rest_of_this_benchmark"] = round(ours - sum(seconds.values()), 2)
        out["other_processes_on_machine"] = round(max(machine_busy - ours, 0.0), 2)
        out["machine_busy"] = round(machine_busy, 2)
        out["wall"] = round(wall, 2)
        out["machine_capacity"] = round(wall * (os.cpu_count() or 1), 2)
        split = {}
        for pid in self.detail_pids:
            u0, s0 = before.user_system.get(pid, (0, 0))
            u1, s1 = after.user_system.get(pid, (0, 0))
            split[str(pid)] = {"user": round((u1 - u0) / TICKS, 2), "system": round((s1 - s0) / TICKS, 2)}
        if split:
            out["user_system_by_pid"] = split
        return out


def fsync_probe(directory: Path, seconds: float = 1.0) -> dict[str, float]:
    """How many 8 KiB write + fdatasync rounds the disk under `directory` takes per second, one at a time:
    the ceiling on commits a second for one backend waiting for its own WAL flush."""
    path = directory / "fsync-probe.bin"
    block = os.urandom(8192)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    count = 0
    try:
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            os.pwrite(fd, block, (count % 64) * 8192)
            os.fdatasync(fd)
            count += 1
        elapsed = time.perf_counter() - started
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)
    return {"fdatasync_per_s": round(count / elapsed), "ms_each": round(elapsed / count * 1000, 3)}
