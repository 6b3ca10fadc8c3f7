"""The README's fault table is the committed report of a real run, not numbers typed by hand."""

from __future__ import annotations

import re

from tests.fault_report import ROOT, ROWS, USER_ROWS, load, markdown, user_markdown

COMMITTED = ROOT / "docs" / "fault-report.json"


def readme_table(name: str = "fault-table") -> str:
    readme = (ROOT / "README.md").read_text()
    found = re.search(rf"<!-- {name}:start -->\n(.*?)<!-- {name}:end -->", readme, re.S)
    assert found, f"README.md lost its {name} markers"
    return found.group(1)


def test_the_committed_report_is_a_whole_run_with_nothing_lost() -> None:
    report = load(COMMITTED)
    assert {"id", "commit", "date", "machine", "seed"} <= set(report["run"])
    assert set(report["faults"]) == set(ROWS), "every fault row comes from the same run"
    assert all(row["lost"] == 0 for row in report["faults"].values())


def test_the_readme_table_is_generated_from_the_committed_report() -> None:
    # Regenerate after a full run: cp test-artifacts/fault-report.json docs/ and
    # `python -m tests.fault_report docs/fault-report.json` between the README's markers.
    assert readme_table() == markdown(load(COMMITTED))


def test_the_committed_user_fault_rows_are_all_there_with_nothing_lost() -> None:
    report = load(COMMITTED)
    assert set(report["user_faults"]) == set(USER_ROWS), "every user-fault row comes from the same run"
    assert all(row["lost"] == 0 and row["shows"] for row in report["user_faults"].values())


def test_the_readme_user_fault_table_is_generated_from_the_committed_report() -> None:
    # `python -m tests.fault_report docs/fault-report.json --user` between the README's markers.
    assert readme_table("user-fault-table") == user_markdown(load(COMMITTED))
