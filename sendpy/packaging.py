"""The Lambda deployment package: Sendpy and its dependencies, built for Lambda's platform.

pip resolves manylinux wheels for CPython 3.11 on x86_64 (the runtime Terraform declares), so
the package is the same whichever machine builds it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Only what the handlers import; the local stack and its tools stay out of the package.
PACKAGES = ("functions", "shared")
EXCLUDE_DEPENDENCIES = ("uvloop",)  # workers only; Mangum runs on Lambda's own loop


def _requirements() -> list[str]:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [dep for dep in project["dependencies"] if not dep.startswith(EXCLUDE_DEPENDENCIES)]


def build(output: Path, *, python_version: str = "3.11", platform: str = "manylinux2014_x86_64") -> Path:
    """Write the zip to `output` and return it."""
    with tempfile.TemporaryDirectory(prefix="sendpy-lambda-") as work:
        target = Path(work) / "package"
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-compile", "--target", str(target),
             "--platform", platform, "--implementation", "cp", "--python-version", python_version,
             "--only-binary=:all:", *_requirements()],
            check=True,
        )
        for package in PACKAGES:
            shutil.copytree(ROOT / package, target / package,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        output.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(output, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(target.rglob("*")):
                if path.is_file() and "__pycache__" not in path.parts:
                    archive.write(path, path.relative_to(target))
    return output
