"""Another revision's code beside the working tree's, for benchmarks that compare the two (`--against`)."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def export_shared(rev: str, into: Path) -> None:
    """`shared/` as it is at `rev`, written under `into` (which must exist)."""
    archive = subprocess.run(["git", "archive", rev, "shared"], cwd=ROOT, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
