"""The README's results table, generated from metrics/: what `dvc repro` wrote
(sentiment.json, baseline.json, charlm.json), the wall time of each stage
(stage_times.json, recorded by benchmarks/stage_times.py) and the test accuracy per seed
(seeds.json, recorded by benchmarks/seed_results.py), so the README never states a
number the committed files do not."""
from __future__ import annotations

import textwrap
from pathlib import Path

from .core.inputs import read_json_object

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
    ("charlm", "val_loss_dynamic", "char LM: held-out loss with dynamic evaluation",
     "{:.4f}", ""),
    ("charlm", "val_windowed_loss", "char LM: held-out loss from a zero state, 40-char windows",
     "{:.4f}", ""),
]


def results_table(metrics_dir: Path = Path("metrics")) -> str:
    """The metrics, then the wall time of each stage (where recorded), then the test
    accuracy per seed (where recorded)."""
    names = sorted({row[0] for row in ROWS})
    metrics = {name: read_json_object(metrics_dir / f"{name}.json",
                                      tuple(key for n, key, *_ in ROWS if n == name),
                                      "a metrics file of `dvc repro`")
               for name in names}
    lines = ["| measured by `dvc repro` (default params) | value | the book |",
             "| --- | --- | --- |"]
    for name, key, label, fmt, book in ROWS:
        lines.append(f"| {label} | {fmt.format(metrics[name][key])} | {book} |")
    rows = lines + _time_rows(metrics_dir / "stage_times.json")
    return "\n".join(rows + _seed_rows(metrics_dir / "seeds.json"))


def _time_rows(path: Path) -> list[str]:
    if not path.exists():
        return []
    stages = read_json_object(path, ("stages",), "the stage times of a benchmark run",
                              "re-run `python benchmarks/stage_times.py`")["stages"]
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
    runs = read_json_object(path, ("runs",), "the per-seed results",
                            "re-run `python benchmarks/seed_results.py`")["runs"]
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


# The figures a comparison of experiments leads with, by their `dvc exp show` column.
HEADLINE = {"metrics/sentiment.json:test_accuracy": "test_acc",
            "metrics/sentiment.json:val_accuracy": "val_acc",
            "metrics/charlm.json:val_loss": "charlm_val_loss"}


def experiments_table(revs: list[str] | None = None, params_file: Path = Path("params.yaml"),
                      width: int = 100) -> str:
    """DVC's experiments (of HEAD, or of `revs`) in a narrow table: the name, the
    headline metrics, and the params that differ between the rows as key=value.
    `dvc exp show` prints every metric and dependency in a column of its own, which no
    terminal is wide enough for."""
    import dvc.api  # only for this command
    import pandas as pd
    import yaml

    from .core.config import flatten
    params = set(flatten(yaml.safe_load(params_file.read_text(encoding="utf-8"))))
    table = pd.DataFrame(dvc.api.exp_show(revs=revs))
    changed = [c for c in table.columns
               if c in params and table[c].astype(str).nunique(dropna=False) > 1]
    out = pd.DataFrame({"experiment": table["Experiment"].fillna(table["rev"])})
    for column, name in HEADLINE.items():
        values = table[column] if column in table else pd.Series([None] * len(table))
        out[name] = ["-" if pd.isna(v) else f"{v:.4f}" for v in values]
    out["params that differ"] = [" ".join(f"{c}={_param_value(row[c])}" for c in changed)
                                 for _, row in table.iterrows()]
    return _wrapped(out.astype(str).values.tolist(), list(out.columns), width)


def _wrapped(rows: list[list[str]], header: list[str], width: int) -> str:
    """Aligned columns; the last one wrapped so that no line passes `width`."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    indent = sum(w + 2 for w in widths)
    lines = []
    for row in [header, *rows]:
        head = "".join(cell.ljust(w + 2) for cell, w in zip(row, widths))
        tail = textwrap.wrap(row[-1], max(width - indent, 30)) or [""]
        lines.append((head + tail[0]).rstrip())
        lines += [" " * indent + more for more in tail[1:]]
    return "\n".join(lines)


def _param_value(value) -> str:
    """As params.yaml says it: DVC's table gives every number as a float."""
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
