"""The README's results table is generated from metrics/ and agrees with it."""
from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

from pipeline.report import END, START, results_table, with_table

REPO = Path(__file__).resolve().parents[1]


def _benchmark_script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _metrics_dir(tmp_path: Path) -> Path:
    """The committed metrics of the three models, without recorded times or seeds."""
    out = tmp_path / "metrics"
    out.mkdir()
    for name in ("sentiment", "baseline", "charlm"):
        shutil.copy(REPO / "metrics" / f"{name}.json", out)
    return out


def test_readme_results_table_is_the_committed_metrics():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    table = results_table(REPO / "metrics")
    assert with_table(readme, table) == readme, (
        "README's results table disagrees with metrics/: run "
        "`python -m pipeline report --readme README.md`")


def test_the_table_changes_with_the_metrics(tmp_path):
    for name in ("sentiment", "baseline", "charlm"):
        metrics = json.loads((REPO / "metrics" / f"{name}.json").read_text())
        if name == "sentiment":
            metrics["test_accuracy"] = 0.12345
        (tmp_path / f"{name}.json").write_text(json.dumps(metrics))
    assert "| 0.1235 |" in results_table(tmp_path)


def test_stage_times_become_rows_with_their_total(tmp_path):
    metrics = _metrics_dir(tmp_path)
    assert "wall time" not in results_table(metrics)
    times = metrics / "stage_times.json"
    stamp = {"commit": "abc", "machine": "Some CPU, 2 cores, no GPU", "date": "2026-11-30"}
    times.write_text(json.dumps({"stages": {"acquire_imdb": {"seconds": 47.4, **stamp},
                                            "train_charlm": {"seconds": 1941.0, **stamp}}}))
    table = results_table(metrics)
    assert "| wall time, measured on: Some CPU, 2 cores, no GPU | | |" in table
    assert "| wall time: acquire_imdb | 47 s | |" in table
    assert "| wall time: train_charlm | 32 min 21 s | |" in table
    assert "| wall time: all stages | 33 min 8 s | |" in table


def test_stage_times_are_read_from_dvc_repro_output():
    stage_times = _benchmark_script("stage_times")
    events = [(0.0, "Stage 'acquire_imdb' didn't change, skipping\n"),
              (1.0, "Running stage 'pretrain':\n"), (2.0, "> python -m pipeline.stages.pretrain\n"),
              (91.5, "Updating lock file 'dvc.lock'\n"),
              (92.0, "Running stage 'train_sentiment':\n"), (95.0, "epoch 1\n")]
    assert stage_times.stage_seconds(events, end=1320.0) == {"pretrain": 91.0,
                                                              "train_sentiment": 1228.0}
    assert stage_times.stage_seconds(events[:1], end=5.0) == {}


def test_a_readme_without_the_markers_is_refused():
    with pytest.raises(ValueError, match="results"):
        with_table("# no table here\n", "| a |")
    assert with_table(f"a\n{START}\nold\n{END}\nb", "new") == f"a\n{START}\nnew\n{END}\nb"


def _seed_run(archive: str, seed: int, lstm: float, tfidf: float) -> dict:
    return {"archive": archive, "seed": seed, "run": f"exp-{seed}", "commit": "abc1234",
            "lstm_test_accuracy": lstm, "lstm_val_accuracy": lstm - 0.01,
            "tfidf_test_accuracy": tfidf, "tfidf_val_accuracy": tfidf - 0.01}


def test_seed_results_become_a_table_with_the_mean_per_archive(tmp_path):
    metrics = _metrics_dir(tmp_path)
    assert "| archive |" not in results_table(metrics)
    seeds = metrics / "seeds.json"
    seeds.write_text(json.dumps({"runs": [_seed_run("full", 1, 0.91, 0.90),
                                          _seed_run("full", 2, 0.92, 0.91),
                                          _seed_run("labelled-only", 1, 0.905, 0.90)]}))
    table = results_table(metrics)
    assert "| full | 2 | 0.9200 (0.9100) | 0.9100 (0.9000) |" in table
    assert "| full | mean of 2 | **0.9150** (0.9050) | 0.9050 (0.8950) |" in table
    assert "| labelled-only | 1 | 0.9050 (0.8950) |" in table
    assert "labelled-only | mean" not in table  # one seed has no mean row


def test_only_default_recipes_count_as_seeds(tmp_path):
    seed_results = _benchmark_script("seed_results")
    base = {"seed": 1, "imdb": {"sha256": "a" * 64, "val_size": 1000}, "sentiment": {"lr": 0.002}}
    other_seed = {"seed": 2, "imdb": {"sha256": "b" * 64, "val_size": 1000},
                  "sentiment": {"lr": 0.002}}
    assert seed_results.differing_params(base, other_seed) == []
    changed = {**other_seed, "sentiment": {"lr": 0.001}, "charlm": {"steps": 10}}
    assert seed_results.differing_params(base, changed) == ["charlm.steps", "sentiment.lr"]
    # Recording a seed again replaces that entry only.
    path = tmp_path / "seeds.json"
    seed_results.record([_seed_run("full", 1, 0.91, 0.90), _seed_run("full", 2, 0.92, 0.91)], path)
    runs = seed_results.record([_seed_run("full", 2, 0.93, 0.91)], path)
    assert [(r["seed"], r["lstm_test_accuracy"]) for r in runs] == [(1, 0.91), (2, 0.93)]
