"""CSV export: cells that a spreadsheet would run as formulas are neutralised."""

from __future__ import annotations


def test_exported_cells_cannot_run_as_formulas() -> None:
    from shared.export import csv_lines, safe_cell

    assert [safe_cell(v) for v in ("=1+1", "+7 999", "-x", "@SUM(A1)", "ok", None, 5)] == [
        "'=1+1", "'+7 999", "'-x", "'@SUM(A1)", "ok", "", "5"]
    text = "".join(csv_lines([["=HYPERLINK(\"http://evil\")", "a,b"]], header=["x", "y"]))
    assert text == "x,y\r\n\"'=HYPERLINK(\"\"http://evil\"\")\",\"a,b\"\r\n"
