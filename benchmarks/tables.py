"""The result tables of benchmarks/README.md, generated from JSON (as the README's results
table is from metrics/ by pipeline/report.py), so the README never states a number the
committed files do not:

  benchmarks/results.json   the headline measurements of each benchmark, per machine:
                            `record` takes them from results.jsonl (what the scripts
                            append as they run; git-ignored) and keeps the latest per
                            (benchmark, measurement, machine)
  metrics/stage_times.json  wall time per stage of `dvc repro` (stage_times.py)
  metrics/seeds.json        test accuracy per seed and archive (seed_results.py)

A machine is the CPU model, its cores (and torch threads when fewer), or for CUDA
measurements the GPU model. Each README block sits between `<!-- table:NAME -->` and
`<!-- /table:NAME -->`.

    python benchmarks/tables.py record                    # the last full run of results.jsonl
    python benchmarks/tables.py record --results OUT/results.jsonl --run RUN_ID
    python benchmarks/tables.py readme                    # rewrite the README's tables
    python benchmarks/tables.py readme --check            # exit 1 if they are out of date
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS_JSONL = BENCH_DIR / "results" / "results.jsonl"
RECORDED = BENCH_DIR / "results.json"
README = BENCH_DIR / "README.md"
STAGE_TIMES = REPO / "metrics" / "stage_times.json"
SEEDS = REPO / "metrics" / "seeds.json"

# benchmark -> (measurement, label) rows in table order; "prefix_*" expands to every
# recorded measurement of that prefix, the rest of the name filling the label's {}.
TABLES = {
    "charlm_step": [
        ("loop_step_ms", "(a) the book's loop, nn.LSTM per character"),
        ("window_step_ms", "(b) pipeline CharLSTM, one call per window"),
        ("speedup_window_vs_loop", "(b) faster than (a)"),
        ("matmul_gflops", "fp32 matmul rate, 2048 x 2048"),
        ("floor_ms", "floor: step FLOPs / matmul rate"),
        ("window_vs_floor", "(b) / floor"),
        ("shape_floor_ms", "floor at the step's own GEMM shapes"),
        ("window_vs_shape_floor", "(b) / shape floor")],
    "sentiment_epoch": [
        ("epoch_s_a", "(a) book: re-tokenise in collate, random, packed"),
        ("epoch_s_b", "(b) pre-encoded, bucketed, packed"),
        ("epoch_s_c", "(c) pre-encoded, random, padded + gather"),
        ("epoch_s_d", "(d) project: pre-encoded, bucketed, padded + gather"),
        ("epoch_s_e", "(e) (d) keeping denormal floats"),
        ("epoch_s_f", "(f) (a) flushing denormal floats"),
        ("epoch_s_g", "(g) (d) with torch's default Adam"),
        ("speedup_d_vs_a", "(d) faster than (a)"),
        ("speedup_d_vs_e", "flushing denormals, (e) -> (d)"),
        ("speedup_d_vs_g", "Adam's fused kernel, (g) -> (d)"),
        ("speedup_f_vs_a", "flushing denormals in the book's pipeline, (a) -> (f)"),
        ("val_accuracy_a", "(a) validation accuracy after --accuracy-epochs"),
        ("val_accuracy_d", "(d) validation accuracy after --accuracy-epochs")],
    "prepare": [
        ("prepare_total_s_single", "tokenise + vocabulary + encode, one process"),
        ("prepare_total_s_parallel", "tokenise + vocabulary + encode, all cores"),
        ("prepare_50k_s", "tokenise + vocabulary + encode, 50,000 reviews, all cores"),
        ("load_fresh_process_s", "load_reviews in a fresh interpreter"),
        ("import_reviews_s", "import pipeline.sentiment.reviews there")],
    "cli": [("python_startup_s", "python -c pass"),
            ("pipeline_help_s", "python -m pipeline --help"),
            ("dvc_repro_noop_s", "dvc repro with nothing to do")],
    "predict": [
        ("predict_reviews_per_s", "predict_texts, 1,000 reviews in one call"),
        ("load_model_s", "of which loading the model"),
        ("predict_one_cli_s", "python -m pipeline predict \"...\", load to first answer"),
        ("import_predict_s", "import pipeline.sentiment.predict")],
    "serving": [("requests_per_s", "throughput"), ("latency_p50_s", "latency p50"),
                ("latency_p99_s", "latency p99")],
    "floor": [
        ("train_sentiment_tflop", "train_sentiment: matmul FLOPs"),
        ("train_sentiment_floor_min", "train_sentiment: minimum at the matmul rate"),
        ("train_sentiment_lstm_rate_min", "train_sentiment: minimum at nn.LSTM's rate"),
        ("train_charlm_tflop", "train_charlm: matmul FLOPs"),
        ("train_charlm_floor_min", "train_charlm: minimum at the matmul rate"),
        ("train_charlm_lstm_rate_min", "train_charlm: minimum at nn.LSTM's rate")],
    "stage_memory": [("peak_rss_mb_*", "peak RSS: {}"), ("wall_s_*", "wall time: {}")],
    "run_all": [("peak_rss_mb_*", "peak RSS: {}")],
}
FORMATS = {"ms": "{:.1f} ms", "x": "{:.3g}x", "GFLOP/s": "{:,.0f} GFLOP/s",
           "GFLOP": "{:.2f} GFLOP", "TFLOP": "{:.1f} TFLOP", "min": "{:.1f} min",
           "MB": "{:,.0f} MB", "GB": "{:.2f} GB", "reviews/s": "{:,.0f} reviews/s",
           "requests/s": "{:.1f} requests/s", "fraction": "{:.4f}"}


# ---------------------------------------------------------------- record
def wanted(bench: str, name: str) -> bool:
    return any(name == m or (m.endswith("*") and name.startswith(m[:-1]))
               for m, _ in TABLES.get(bench, []))


def machine(row: dict) -> str:
    """What a results.jsonl line was measured on."""
    if str(row.get("device", "")).startswith("cuda"):
        return row.get("gpu") or "CUDA GPU (model not recorded)"
    label = f"{row.get('cpu') or row.get('host', 'unknown CPU')}, {row['cpu_count']} cores"
    if row.get("torch_threads") and row["torch_threads"] < row["cpu_count"]:
        label += f", {row['torch_threads']} threads"
    return label


def entry(row: dict) -> dict:
    extra = row.get("extra", {})
    return {"bench": row["bench"], "name": row["name"], "machine": machine(row),
            "value": row["value"], "unit": row["unit"], "date": row["time"][:10],
            "commit": row.get("git"), "run_id": row["run_id"], "data": row.get("data"),
            "target": extra.get("target"), "met": extra.get("met")}


def runs_to_record(rows: list[dict], run_ids: list[str] | None) -> list[str]:
    if run_ids:
        return run_ids
    full = [r["run_id"] for r in rows if not r.get("quick")]
    if not full:
        sys.exit("no full run (without --quick) in the results file")
    return [full[-1]]


def record(results: Path = RESULTS_JSONL, run_ids: list[str] | None = None,
           path: Path = RECORDED) -> list[dict]:
    """Merge the headline measurements of these runs (default: the last full run) into
    `path`, keyed by (benchmark, measurement, machine); return what was taken."""
    rows = [json.loads(line) for line in results.read_text(encoding="utf-8").splitlines()
            if line.strip()]
    run_ids = runs_to_record(rows, run_ids)
    if any(r.get("quick") for r in rows if r["run_id"] in run_ids):
        sys.exit("refusing a --quick run: its sizes are too small for the numbers to mean anything")
    picked = [entry(r) for r in rows if r["run_id"] in run_ids and wanted(r["bench"], r["name"])
              and r["value"] is not None and r.get("extra", {}).get("exit_code", 0) == 0]
    kept = json.loads(path.read_text(encoding="utf-8"))["results"] if path.exists() else []
    new = {(e["bench"], e["name"], e["machine"]): e for e in picked}
    merged = [new.pop((e["bench"], e["name"], e["machine"]), e) for e in kept]
    merged += list(new.values())
    path.write_text('{"results": [\n' + ",\n".join(json.dumps(e) for e in merged) + "\n]}\n",
                    encoding="utf-8")
    return picked


# ---------------------------------------------------------------- tables
def fmt(value, unit: str) -> str:
    if isinstance(value, str):  # a range of runs, e.g. "12.1-13.5"
        return f"{value} {unit}"
    if unit == "s":
        return f"{value:,.0f} s" if value >= 100 else f"{value:.3g} s"
    return FORMATS.get(unit, "{:.4g} " + unit).format(value)


def cell(e: dict) -> str:
    text = fmt(e["value"], e["unit"])
    if e.get("target"):
        op, bound = re.fullmatch(r"\s*([<>]=?)\s*(.+)", e["target"]).groups()
        text += (f" (target {op} {fmt(float(bound), e['unit'])}: "
                 f"{'met' if e['met'] else 'not met'})")
    return text


def row_names(bench: str, entries: list[dict]) -> list[tuple[str, str]]:
    """(measurement, label) in table order, prefixes expanded in recorded order."""
    out = []
    for name, label in TABLES[bench]:
        if name.endswith("*"):
            found = dict.fromkeys(e["name"] for e in entries if e["name"].startswith(name[:-1]))
            out += [(n, label.format(n[len(name) - 1:])) for n in found]
        else:
            out.append((name, label))
    return out


def bench_table(bench: str, entries: list[dict]) -> str:
    """Rows: the measurements; columns: the machines, oldest first; then when each
    machine's figures were measured. A table of prefixes only (per-stage figures) has a
    row per stage and a column per (figure, machine) instead."""
    mine = [e for e in entries if e["bench"] == bench]
    if not mine:
        return ("No result recorded yet: run it, then `python benchmarks/tables.py record`\n"
                "and `python benchmarks/tables.py readme`.")
    machines = list(dict.fromkeys(e["machine"] for e in sorted(mine, key=lambda e: e["date"])))
    at = {(e["name"], e["machine"]): e for e in mine}
    if all(name.endswith("*") for name, _ in TABLES[bench]):
        lines = pivoted(bench, mine, machines, at)
    else:
        lines = ["| measurement | " + " | ".join(machines) + " |",
                 "| --- |" + " --- |" * len(machines)]
        for name, label in row_names(bench, mine):
            cells = [cell(at[name, m]) if (name, m) in at else "" for m in machines]
            if any(cells):
                lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("")
    for m in machines:
        when = dict.fromkeys(f"{e['date']} ({e['commit'] or 'commit not recorded'})"
                             for e in mine if e["machine"] == m)
        lines.append(f"- {m}: {', '.join(when)}")
    return "\n".join(lines)


def duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes else f"{seconds:.3g} s"


def pivoted(bench: str, mine: list[dict], machines: list[str], at: dict) -> list[str]:
    """Rows: what the prefixes are followed by (the stages); columns: figure x machine."""
    prefixes = [(name[:-1], label.format("").rstrip(": ")) for name, label in TABLES[bench]]
    columns = [(p, label, m) for p, label in prefixes for m in machines
               if any(name.startswith(p) and where == m for name, where in at)]
    rows = dict.fromkeys(e["name"][len(p):] for p, _ in prefixes for e in mine
                         if e["name"].startswith(p))
    lines = ["| | " + " | ".join(f"{label}, {m}" for _, label, m in columns) + " |",
             "| --- |" + " --- |" * len(columns)]
    for row in rows:
        lines.append(f"| {row} | " + " | ".join(
            cell(at[p + row, m]) if (p + row, m) in at else "" for p, _, m in columns) + " |")
    return lines


def stage_times_table(path: Path = STAGE_TIMES) -> str:
    stages = json.loads(path.read_text(encoding="utf-8"))["stages"]
    lines = ["| stage | wall time | date | commit | machine |", "| --- | --- | --- | --- | --- |"]
    for name, e in stages.items():
        lines.append(f"| {name} | {duration(e['seconds'])} | {e['date'][:10]} | {e['commit']} "
                     f"| {e['machine']} |")
    total = sum(e["seconds"] for e in stages.values())
    return "\n".join(lines + [f"| all stages | {duration(total)} | | | |"])


def seeds_table(path: Path = SEEDS) -> str:
    runs = json.loads(path.read_text(encoding="utf-8"))["runs"]
    lines = ["| archive | seed | LSTM test (validation) | TF-IDF + LR test (validation) | run "
             "| commit |", "| --- | --- | --- | --- | --- | --- |"]
    acc = lambda rs, k: sum(r[k] for r in rs) / len(rs)  # noqa: E731
    for archive in dict.fromkeys(r["archive"] for r in runs):
        mine = [r for r in runs if r["archive"] == archive]
        for r in mine + ([{"seed": f"mean of {len(mine)}", "run": "", "commit": "",
                           **{k: acc(mine, k) for k in mine[0] if k.endswith("accuracy")}}]
                         if len(mine) > 1 else []):
            lines.append(f"| {archive} | {r['seed']} | {r['lstm_test_accuracy']:.4f} "
                         f"({r['lstm_val_accuracy']:.4f}) | {r['tfidf_test_accuracy']:.4f} "
                         f"({r['tfidf_val_accuracy']:.4f}) | {r['run']} | {r['commit']} |")
    return "\n".join(lines)


def blocks(recorded: Path = RECORDED) -> dict[str, str]:
    entries = json.loads(recorded.read_text(encoding="utf-8"))["results"] if recorded.exists() else []
    out = {bench: bench_table(bench, entries) for bench in TABLES}
    out["stage_times"] = stage_times_table() if STAGE_TIMES.exists() else "No stage times recorded."
    out["seeds"] = seeds_table() if SEEDS.exists() else "No seeds recorded."
    return out


def with_blocks(text: str, tables: dict[str, str]) -> str:
    """`text` with each `<!-- table:NAME -->` ... `<!-- /table:NAME -->` block refilled."""
    for name, table in tables.items():
        pattern = re.compile(rf"(<!-- table:{name} -->\n).*?(<!-- /table:{name} -->)", re.S)
        text = pattern.sub(lambda m: f"{m.group(1)}{table}\n{m.group(2)}", text)
    return text


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record", help="take a run's headline numbers into results.json")
    rec.add_argument("--results", type=Path, default=RESULTS_JSONL)
    rec.add_argument("--run", action="append", help="run id (repeatable; default: the last)")
    readme = sub.add_parser("readme", help="rewrite the tables of benchmarks/README.md")
    readme.add_argument("--check", action="store_true", help="only say whether they are current")
    args = p.parse_args(argv)
    if args.command == "record":
        picked = record(args.results, args.run)
        print(f"{len(picked)} measurements recorded in {RECORDED} "
              f"({', '.join(sorted({e['machine'] for e in picked})) or 'none'})")
        return 0
    text = README.read_text(encoding="utf-8")
    new = with_blocks(text, blocks())
    if args.check:
        print("up to date" if new == text else "out of date: run `python benchmarks/tables.py readme`")
        return 0 if new == text else 1
    README.write_text(new, encoding="utf-8")
    print(f"tables rewritten in {README}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
