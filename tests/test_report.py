"""The README's results table is generated from metrics/ and agrees with it."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.report import END, START, results_table, with_table

REPO = Path(__file__).resolve().parents[1]


def test_readme_results_table_is_the_committed_metrics():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert with_table(readme, results_table(REPO / "metrics")) == readme, (
        "README's results table disagrees with metrics/: run "
        "`python -m pipeline report --readme README.md`")


def test_the_table_changes_with_the_metrics(tmp_path):
    for name in ("sentiment", "baseline", "charlm"):
        metrics = json.loads((REPO / "metrics" / f"{name}.json").read_text())
        if name == "sentiment":
            metrics["test_accuracy"] = 0.12345
        (tmp_path / f"{name}.json").write_text(json.dumps(metrics))
    assert "| 0.1235 |" in results_table(tmp_path)


def test_a_readme_without_the_markers_is_refused():
    with pytest.raises(ValueError, match="results"):
        with_table("# no table here\n", "| a |")
    assert with_table(f"a\n{START}\nold\n{END}\nb", "new") == f"a\n{START}\nnew\n{END}\nb"
