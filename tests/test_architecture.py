"""The house rules, checked on the source: data flows HTTP → domain → storage/broker.

- SQL lives only in `shared/`: handlers and worker entry points call named domain functions.
- Settings are read from the environment only in `shared/settings.py` (and the dev stack / CLI).
- The domain knows nothing about Starlette, Mangum or Lambda; Kafka and AWS clients stay in the
  modules named for them; the sender scheduler talks to its store interface, not to asyncpg.
- A module that grows past the size limit becomes a package instead.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Statements as this codebase writes them (keywords in capitals); English prose does not match.
SQL = re.compile(r"\b(?:SELECT\s+[\w*(]|INSERT\s+INTO\b|UPDATE\s+\w+\s+SET\b|DELETE\s+FROM\b|WITH\s+\w+\s+AS\s*\()")
MAX_MODULE_LINES = 450


def sources(*folders: str) -> Iterator[Path]:
    for folder in folders:
        yield from sorted((ROOT / folder).rglob("*.py"))


def tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), str(path))


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree(path)):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def sql_strings(path: Path) -> list[str]:
    module = tree(path)
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(module)
        if isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)
    }
    found = []
    for node in ast.walk(module):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            if SQL.search(node.value):
                found.append(node.value.strip()[:60])
    return found


@pytest.mark.parametrize("path", list(sources("functions", "worker_image")), ids=rel)
def test_no_sql_outside_the_domain(path: Path) -> None:
    assert sql_strings(path) == [], f"{rel(path)} holds SQL; move it into a function in shared/"


def test_the_sql_check_finds_sql(tmp_path: Path) -> None:
    sample = tmp_path / "handler.py"
    sample.write_text('async def f(conn):\n    """Select the rows."""\n'
                      '    await conn.execute("UPDATE campaigns SET status = $1", "x")\n')
    assert sql_strings(sample) == ["UPDATE campaigns SET status = $1"]
    assert sql_strings(ROOT / "shared" / "recipients.py"), "the domain's own SQL must be found too"


def reads_environment(path: Path) -> bool:
    for node in ast.walk(tree(path)):
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "environb"):
            if isinstance(node.value, ast.Name) and node.value.id == "os":
                return True
        if isinstance(node, ast.ImportFrom) and node.module == "os":
            if any(alias.name in ("environ", "getenv") for alias in node.names):
                return True
    return False


@pytest.mark.parametrize("path", list(sources("shared", "functions", "worker_image")), ids=rel)
def test_settings_are_read_in_one_place(path: Path) -> None:
    if rel(path) == "shared/settings.py":
        assert reads_environment(path)
        return
    assert not reads_environment(path), f"{rel(path)} reads os.environ; add a field to shared/settings.py"


@pytest.mark.parametrize("path", list(sources("shared")), ids=rel)
def test_the_domain_does_not_import_upwards_or_web_frameworks(path: Path) -> None:
    forbidden = ("functions", "worker_image", "sendpy", "starlette", "mangum", "uvicorn")
    bad = {m for m in imported_modules(path) if m.split(".")[0] in forbidden}
    assert not bad, f"{rel(path)} imports {sorted(bad)}"


CLIENTS = {
    # library: the modules allowed to import it
    "aiokafka": {"shared/broker.py", "functions/resources.py", "worker_image/__main__.py", "worker_image/consume.py"},
    "boto3": {"shared/storage.py", "shared/crypto.py", "shared/db.py", "shared/unsubscribe.py",
              "functions/lag_publisher.py"},
}


@pytest.mark.parametrize("library", ["aiokafka", "boto3"])
def test_clients_stay_in_their_modules(library: str) -> None:
    allowed = CLIENTS[library]
    users = {rel(p) for p in sources("shared", "functions", "worker_image")
             if any(m.split(".")[0] == library for m in imported_modules(p))}
    assert users <= allowed, f"{library} imported by {sorted(users - allowed)}"


def test_the_scheduler_talks_to_its_store_not_to_postgres() -> None:
    for name in ("scheduler.py", "store.py"):
        modules = imported_modules(ROOT / "shared" / "delivery" / name)
        assert not {m for m in modules if m.split(".")[0] == "asyncpg" or m.startswith("shared.db")}, name


@pytest.mark.parametrize("path", list(sources("shared", "functions", "worker_image")), ids=rel)
def test_modules_stay_small(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_MODULE_LINES, f"{rel(path)} has {lines} lines: split it into a package"


def test_handlers_do_not_import_each_other() -> None:
    handler_modules = {p.stem for p in sources("functions") if p.stem.endswith("_api")}
    for path in sources("functions"):
        if path.stem == "app" or path.stem == "openapi":
            continue  # the router and the spec list every handler module
        bad = {m for m in imported_modules(path) if m.startswith("functions.") and m.split(".")[1] in handler_modules}
        assert not bad, f"{rel(path)} imports handlers {sorted(bad)}"
