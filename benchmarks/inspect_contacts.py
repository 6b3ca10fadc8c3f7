"""How long inspecting a contact file takes, to decide what the API may do within 30 seconds.

    .venv/bin/python benchmarks/inspect_contacts.py [rows]

Generates a Windows-1251, `;`-separated file of `rows` contacts (default 1,000,000), then runs
the same detection and counting the API and the worker run (`shared/contacts.py`), from memory
in 1 MiB chunks (no S3 in the loop), and prints rows/s and peak RSS.
"""

from __future__ import annotations

import platform
import resource
import sys
import time

from shared.contacts import SAMPLE_BYTES, detect, inspect_rows, iter_contacts


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    body = "".join(f"user{n}@example.com;Имя {n};Город\n" for n in range(rows))
    data = ("Почта;Имя;Город\n" + body).encode("cp1251")
    del body
    started = time.perf_counter()
    found = detect(data[:SAMPLE_BYTES], complete=len(data) <= SAMPLE_BYTES)
    chunks = (data[i : i + (1 << 20)] for i in range(0, len(data), 1 << 20))
    report = inspect_rows(iter_contacts(chunks, found.dialect, found.columns), lambda email: False)
    elapsed = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"machine: {platform.machine()}, {platform.python_implementation()} {platform.python_version()}")
    print(f"file: {len(data) / 1e6:.1f} MB, {report.rows} rows, {report.valid} valid")
    print(f"inspection: {elapsed:.1f} s, {report.rows / elapsed:,.0f} rows/s, peak RSS {peak:.0f} MB")


if __name__ == "__main__":
    main()
