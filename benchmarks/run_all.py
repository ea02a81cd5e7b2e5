"""Run every benchmark in sequence, each in its own subprocess (a clean interpreter, and
its own peak memory), then print a summary. `make bench` runs this.

Peak RSS per benchmark comes from os.wait4() on that subprocess: Linux reports the
largest resident set of the process and of every descendant it waited for (its
tokenising pool workers, the CLI runs it timed), i.e. the biggest single process of
the benchmark's tree, not their sum.

    python benchmarks/run_all.py                 # everything, a few minutes
    python benchmarks/run_all.py --quick         # tiny sizes: checks the scripts run
    python benchmarks/run_all.py --only charlm_step,prepare
    python benchmarks/run_all.py --accuracy      # + validation accuracy of book vs project (~+4 min)
    python benchmarks/run_all.py --readme        # then record the run in benchmarks/README.md
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchutil as bu  # noqa: E402
import tables  # noqa: E402

# name -> script, run in this order (the long sentiment epochs last).
BENCHES = {
    "cli": "bench_cli.py",
    "prepare": "bench_prepare.py",
    "predict": "bench_predict.py",
    "charlm_step": "bench_charlm_step.py",
    "floor": "bench_floor.py",
    "sentiment_epoch": "bench_sentiment_epoch.py",
}
# What the summary shows from results.jsonl (benchmark, measurement): the rows of the
# README's tables (tables.py).
HEADLINES = [(bench, name) for bench, rows in tables.TABLES.items() if bench in BENCHES
             for name, _ in rows if not name.endswith("*")]


def run(cmd: list[str], env: dict) -> tuple[int, float, float]:
    """(exit code, wall seconds, peak RSS in MB) of one benchmark subprocess."""
    import subprocess
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=bu.REPO, env=env)
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    except KeyboardInterrupt:
        proc.terminate()
        proc.wait()
        raise
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    rss = usage.ru_maxrss / (1024 * 1024 if sys.platform == "darwin" else 1024)
    return proc.returncode, wall, rss


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny sizes (passed to every benchmark)")
    p.add_argument("--data-root", type=Path, default=None,
                   help="folder with prepared/, raw/, models/ (default: the repo's data/)")
    p.add_argument("--synthetic", action="store_true", help="synthetic data even where real data exists")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads for every benchmark")
    p.add_argument("--only", default=None, help=f"comma-separated subset of: {', '.join(BENCHES)}")
    p.add_argument("--skip", default="", help="comma-separated benchmarks to leave out")
    p.add_argument("--accuracy", action="store_true",
                   help="sentiment_epoch: also compare validation accuracy (several minutes more)")
    p.add_argument("--device", default=None,
                   help="charlm_step: cpu, cuda or auto (default auto: CPU, and CUDA if available)")
    p.add_argument("--repo", type=Path, default=None,
                   help="cli: repository to time a no-op `dvc repro` in (default: this one)")
    p.add_argument("--results", type=Path, default=bu.RESULTS)
    p.add_argument("--no-record", action="store_true")
    p.add_argument("--readme", action="store_true",
                   help="record this run's headline numbers (results.json) and rewrite the "
                        "tables of benchmarks/README.md (tables.py)")
    return p


def main(argv=None) -> int:
    p = parser()
    args = p.parse_args(argv)

    names = list(BENCHES) if not args.only else [n.strip() for n in args.only.split(",") if n.strip()]
    skip = {n.strip() for n in args.skip.split(",") if n.strip()}
    unknown = [n for n in names + sorted(skip) if n not in BENCHES]
    if unknown:
        p.error(f"unknown benchmark(s) {unknown}; choose from {list(BENCHES)}")
    names = [n for n in names if n not in skip]

    run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    os.environ["BENCH_RUN_ID"] = run_id  # this script's own lines too
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    common, extra = passed_on(args)

    print(f"run {run_id}: {', '.join(names)}" + (" (quick)" if args.quick else ""))
    started = time.perf_counter()
    summary = []
    for name in names:
        cmd = [sys.executable, str(bu.BENCH_DIR / BENCHES[name]), *common, *extra.get(name, [])]
        print(f"\n##### {name}: {' '.join(Path(c).name if c.endswith('.py') else c for c in cmd[1:])}",
              flush=True)
        code, wall, rss = run(cmd, env)
        summary.append((name, code, wall, rss))
        if not args.no_record:
            rec_args = argparse.Namespace(no_record=False, results=args.results, quick=args.quick)
            rec = bu.Recorder("run_all", rec_args, data="see the benchmark's own lines")
            rec.add(f"peak_rss_mb_{name}", rss, "MB", benchmark=name, exit_code=code)
            rec.add(f"wall_s_{name}", wall, "s", benchmark=name, exit_code=code)
    total = time.perf_counter() - started

    print("\n##### summary")
    print(bu.table([[n, "ok" if c == 0 else f"FAILED ({c})", f"{w:.1f}", f"{r:.0f}"]
                    for n, c, w, r in summary],
                   ["benchmark", "exit", "wall s", "peak RSS MB"]))
    print(f"total {total:.1f} s ({total / 60:.1f} min)")
    if not args.no_record and args.results.exists():
        print_headlines(args, run_id)
        if args.readme and not args.quick:
            tables.record(args.results, [run_id])
            tables.main(["readme"])
    return 0 if all(c == 0 for _, c, _, _ in summary) else 1


def passed_on(args) -> tuple[list[str], dict[str, list[str]]]:
    """The options every benchmark gets, and those only one of them takes."""
    common = ["--results", str(args.results)]
    for flag in ("quick", "synthetic", "no_record"):
        if getattr(args, flag):
            common.append("--" + flag.replace("_", "-"))
    if args.data_root:
        common += ["--data-root", str(args.data_root)]
    if args.threads:
        common += ["--threads", str(args.threads)]
    extra = {"sentiment_epoch": ["--accuracy"] if args.accuracy else [],
             "charlm_step": ["--device", args.device] if args.device else [],
             "cli": ["--repo", str(args.repo)] if args.repo else []}
    return common, extra


def print_headlines(args, run_id: str) -> None:
    """The headline numbers of this run, from the results file."""
    rows = [json.loads(line) for line in args.results.read_text(encoding="utf-8").splitlines()
            if run_id in line]
    shown = []
    for bench, measurement in HEADLINES:
        for r in (r for r in rows if (r["bench"], r["name"]) == (bench, measurement)):
            x = r.get("extra", {})
            value = "skipped" if r["value"] is None else f"{r['value']:.4g}"
            met = "" if x.get("met") is None else ("met" if x["met"] else "NOT met")
            shown.append([r["bench"], r["name"], value, r["unit"], r["device"],
                          x.get("target") or "", met])
    if shown:
        print("\nheadline numbers (all lines: " + str(args.results) + f", run_id {run_id}):")
        print(bu.table(shown, ["benchmark", "measurement", "value", "unit", "device", "target", ""]))
    if args.quick:
        print("(--quick: tiny sizes, the numbers are not meaningful)")


if __name__ == "__main__":
    sys.exit(main())
