"""The README's results table, generated from metrics/: what `dvc repro` wrote
(sentiment.json, baseline.json, charlm.json), the wall time of each stage
(stage_times.json, recorded by benchmarks/stage_times.py) and the test accuracy per seed
(seeds.json, recorded by benchmarks/seed_results.py), so the README never states a
number the committed files do not."""
from __future__ import annotations

import json
from pathlib import Path

START, END = "<!-- results:start -->", "<!-- results:end -->"

# (metrics file, key, what it is, format, the book's figure)
ROWS = [
    ("sentiment", "test_accuracy", "sentiment LSTM: test accuracy (25,000 reviews)", "{:.4f}",
     "0.8598"),
    ("sentiment", "test_roc_auc", "sentiment LSTM: test ROC AUC", "{:.4f}", ""),
    ("sentiment", "val_accuracy", "sentiment LSTM: validation accuracy (movie-grouped)",
     "{:.4f}", ""),
    ("sentiment", "best_epoch", "sentiment LSTM: best epoch (by validation)", "{}", ""),
    ("baseline", "test_accuracy", "TF-IDF + logistic regression: test accuracy", "{:.4f}", ""),
    ("baseline", "val_accuracy", "TF-IDF + logistic regression: validation accuracy", "{:.4f}",
     ""),
    ("charlm", "val_loss", "char LM: held-out loss, nats/char (last 10% of the book)", "{:.4f}",
     "none (training: ~1.10)"),
    ("charlm", "val_bpc", "char LM: held-out bits/char", "{:.4f}", ""),
    ("charlm", "val_windowed_loss", "char LM: held-out loss from a zero state, 40-char windows",
     "{:.4f}", ""),
]


def results_table(metrics_dir: Path = Path("metrics")) -> str:
    """The metrics, then the wall time of each stage (where recorded), then the test
    accuracy per seed (where recorded)."""
    metrics = {name: json.loads((metrics_dir / f"{name}.json").read_text(encoding="utf-8"))
               for name in sorted({row[0] for row in ROWS})}
    lines = ["| measured by `dvc repro` (default params) | value | the book |",
             "| --- | --- | --- |"]
    for name, key, label, fmt, book in ROWS:
        lines.append(f"| {label} | {fmt.format(metrics[name][key])} | {book} |")
    rows = lines + _time_rows(metrics_dir / "stage_times.json")
    return "\n".join(rows + _seed_rows(metrics_dir / "seeds.json"))


def _time_rows(path: Path) -> list[str]:
    if not path.exists():
        return []
    stages = json.loads(path.read_text(encoding="utf-8"))["stages"]
    machines = sorted({entry["machine"] for entry in stages.values()})
    rows = [f"| wall time, measured on: {'; '.join(machines)} | | |"]
    rows += [f"| wall time: {name} | {_duration(entry['seconds'])} | |"
             for name, entry in stages.items()]
    total = sum(entry["seconds"] for entry in stages.values())
    return rows + [f"| wall time: all stages | {_duration(total)} | |"]


def _seed_rows(path: Path) -> list[str]:
    """A second table: test (validation) accuracy of each recorded seed, and the mean per
    archive."""
    if not path.exists():
        return []
    runs = json.loads(path.read_text(encoding="utf-8"))["runs"]
    rows = ["", "| archive | seed | sentiment LSTM: test (validation) | TF-IDF + LR: test "
            "(validation) |", "| --- | --- | --- | --- |"]
    for archive in dict.fromkeys(r["archive"] for r in runs):
        mine = [r for r in runs if r["archive"] == archive]
        rows += [f"| {archive} | {r['seed']} | {r['lstm_test_accuracy']:.4f} "
                 f"({r['lstm_val_accuracy']:.4f}) | {r['tfidf_test_accuracy']:.4f} "
                 f"({r['tfidf_val_accuracy']:.4f}) |" for r in mine]
        if len(mine) > 1:
            mean = lambda key: sum(r[key] for r in mine) / len(mine)
            rows.append(f"| {archive} | mean of {len(mine)} | "
                        f"**{mean('lstm_test_accuracy'):.4f}** ({mean('lstm_val_accuracy'):.4f}) | "
                        f"{mean('tfidf_test_accuracy'):.4f} ({mean('tfidf_val_accuracy'):.4f}) |")
    return rows


def _duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"


def with_table(readme: str, table: str) -> str:
    """`readme` with the text between the results markers replaced by `table`."""
    if START not in readme or END not in readme:
        raise ValueError(f"the README has no {START} ... {END} block")
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{table}\n{END}{tail}"
