"""`python benchmarks/worker_shim.py sender`: the worker, unchanged, with every Postgres call timed.

Used only by the profiling pass of sending.py (the measured runs start `python -m worker_image`).
asyncpg's Connection methods are wrapped to count each call and its time as the worker sees it
(round trip, server time and the commit's WAL flush), keyed by the code in shared/ that made it;
the totals are written to $BENCH_STATEMENTS_OUT every half second, so the benchmark can take the
difference over one campaign.
"""

from __future__ import annotations

import functools
import json
import os
import runpy
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402

STATS: dict[str, list[float]] = {}  # key -> [calls, seconds]
_LOCK = threading.Lock()
_METHODS = ("execute", "executemany", "fetch", "fetchval", "fetchrow", "copy_records_to_table")


def _caller(query: object) -> str:
    if isinstance(query, str) and query.startswith("SELECT pg_advisory_unlock_all()"):
        return "asyncpg pool: reset on release"
    frame = sys._getframe(2)
    names: list[str] = []
    while frame is not None and len(names) < 2:
        path = frame.f_code.co_filename
        if ("/shared/" in path or "/worker_image/" in path) and ("postgres_store.py" not in path or not names):
            name = f"{Path(path).stem}.{frame.f_code.co_name}"
            if not names or names[-1] != name:
                names.append(name)
        frame = frame.f_back  # type: ignore[assignment]
    return " <- ".join(names) or "(outside shared/)"


def _wrap(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    async def timed(self: Any, *args: Any, **kwargs: Any) -> Any:
        query = args[0] if args else None
        if name.startswith("copy") or not isinstance(query, str) or not query.strip():
            verb = "COPY"
        else:
            verb = query.split(None, 1)[0].rstrip(";").upper()
        key = f"{_caller(query)} [{verb}]"
        started = time.perf_counter()
        try:
            return await method(self, *args, **kwargs)
        finally:
            elapsed = time.perf_counter() - started
            with _LOCK:
                entry = STATS.setdefault(key, [0, 0.0])
                entry[0] += 1
                entry[1] += elapsed

    return timed


def _writer(path: Path) -> None:
    while True:
        with _LOCK:
            snapshot = {key: list(value) for key, value in STATS.items()}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(snapshot))
        tmp.replace(path)
        time.sleep(0.5)


def main() -> None:
    for name in _METHODS:
        setattr(asyncpg.connection.Connection, name, _wrap(name, getattr(asyncpg.connection.Connection, name)))
    out = os.environ.get("BENCH_STATEMENTS_OUT")
    if out:
        threading.Thread(target=_writer, args=(Path(out),), daemon=True).start()
    sys.argv = ["worker_image", *sys.argv[1:]]
    runpy.run_module("worker_image", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
