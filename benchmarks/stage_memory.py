"""Peak memory and wall time of each pipeline stage, run one at a time.

Runs each stage in --repo, in dvc.yaml's order: its `cmd` from dvc.yaml, or with
--params FILE `python -m pipeline <stage-name> --params FILE` (the same stage function
reading another params file, e.g. one with `device: cuda`), each under GNU time
(`/usr/bin/time -v`, "Maximum resident set size"); where GNU time is missing, under a
small Python wrapper that reads the same figure with os.wait4(). Either way it is the
largest resident set of the stage's biggest single process (the stage itself, or a
tokenising worker), not the sum over processes. `python` is this interpreter.

NOT part of run_all.py: it re-runs every stage, training included, and it overwrites
the stages' outputs in --repo (data/, metrics/, plots/; and adds MLflow runs). Run it
in a repository where `dvc repro` has completed, ideally a scratch clone (the acquire
stages reuse data/downloads/, nothing is downloaded again):

    python benchmarks/stage_memory.py --repo /path/to/clone
    python benchmarks/stage_memory.py --stages prepare_imdb,prepare_gutenberg
    python benchmarks/stage_memory.py --params /tmp/params.cuda.yaml --results /tmp/r.jsonl
    python benchmarks/stage_memory.py --dry-run     # list the commands only
"""
from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchutil as bu  # noqa: E402

WRAPPER = r"""
import os, subprocess, sys
proc = subprocess.Popen(sys.argv[1], shell=True)
_, status, usage = os.wait4(proc.pid, 0)
kb = usage.ru_maxrss // (1024 if sys.platform == "darwin" else 1)
with open(sys.argv[2], "w") as f:
    f.write(f"Maximum resident set size (kbytes): {kb}\n")
sys.exit(os.waitstatus_to_exitcode(status))
"""


def stages(repo: Path, params: Path | None = None) -> dict[str, str]:
    """{stage: shell command} in dvc.yaml's order."""
    import yaml
    spec = yaml.safe_load((repo / "dvc.yaml").read_text(encoding="utf-8"))
    py = shlex.quote(sys.executable)
    out = {}
    for name, stage in spec.get("stages", {}).items():
        cmd = stage.get("cmd")
        if isinstance(cmd, list):
            cmd = " && ".join(cmd)
        if params is not None:
            cmd = (f"{py} -m pipeline {name.replace('_', '-')} "
                   f"--params {shlex.quote(str(params.resolve()))}")
        elif cmd:
            cmd = re.sub(r"^python3?(?=\s)", py, cmd)
        if cmd:
            out[name] = cmd
    return out


def stage_device(params: Path | None, repo: Path) -> str:
    """cpu or cuda: where the stages' params send them."""
    import yaml
    name = str(yaml.safe_load((params or repo / "params.yaml").read_text()).get("device", "auto"))
    if name == "auto":
        import torch
        return "cuda" if torch.cuda.is_available() else "cpu"
    return "cuda" if name.startswith("cuda") else name


def measure(cmd: str, repo: Path, env: dict, gnu_time: str | None) -> tuple[int, float, float, str]:
    """(exit code, peak RSS MB, wall s, how) of one stage command. The stage's output
    passes through live; the measurement goes to a report file."""
    import tempfile
    with tempfile.TemporaryDirectory(prefix="stage-memory-") as tmp:
        report = Path(tmp) / "report.txt"
        if gnu_time:
            full, how = [gnu_time, "-v", "-o", str(report), "sh", "-c", cmd], "GNU time -v"
        else:
            full, how = [sys.executable, "-c", WRAPPER, cmd, str(report)], "os.wait4"
        sys.stdout.flush()
        t0 = time.perf_counter()
        code = subprocess.run(full, cwd=repo, env=env).returncode
        wall = time.perf_counter() - t0
        text = report.read_text() if report.exists() else ""
    m = re.search(r"Maximum resident set size \(kbytes\):\s*(\d+)", text)
    return code, (int(m.group(1)) / 1024 if m else float("nan")), wall, how


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--repo", type=Path, default=bu.REPO,
                   help="repository with a completed `dvc repro` (its outputs are rewritten)")
    p.add_argument("--stages", default=None,
                   help="comma-separated stage names (default: all, in dvc.yaml order)")
    p.add_argument("--params", type=Path, default=None,
                   help="run `python -m pipeline <stage> --params FILE` instead of dvc.yaml's cmd")
    p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    p.add_argument("--no-gnu-time", action="store_true", help="use the os.wait4 wrapper")
    p.add_argument("--keep-going", action="store_true", help="go on after a failing stage")
    p.add_argument("--results", type=Path, default=bu.RESULTS)
    p.add_argument("--no-record", action="store_true")
    return p


def main(argv=None) -> int:
    p = parser()
    args = p.parse_args(argv)
    repo = args.repo.resolve()
    all_stages = stages(repo, args.params)
    names = list(all_stages) if not args.stages else [
        s.strip().replace("-", "_") for s in args.stages.split(",") if s.strip()]
    missing = [n for n in names if n not in all_stages]
    if missing:
        p.error(f"no stage(s) {missing} in {repo / 'dvc.yaml'}; there are {list(all_stages)}")
    print(f"stages of {repo / 'dvc.yaml'}:")
    for n in names:
        print(f"  {n}: {all_stages[n]}")
    if args.dry_run:
        return 0
    if not (repo / "dvc.lock").exists() and args.params is None:
        print(f"warning: no dvc.lock in {repo}: has `dvc repro` run there? Later stages need "
              "the earlier stages' outputs.")
    return run_stages(args, repo, {n: all_stages[n] for n in names})


def run_stages(args, repo: Path, commands: dict[str, str]) -> int:
    """Run and measure each stage; print the table; 1 if a stage failed."""
    gnu_time = None
    if not args.no_gnu_time:
        gnu_time = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else shutil.which("gtime")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    rec = None
    if not args.no_record:
        rec = bu.Recorder("stage_memory", argparse.Namespace(
            no_record=False, results=args.results, quick=False),
            data=f"repo {repo}, params {args.params or 'params.yaml'}",
            device=stage_device(args.params, repo))
    rows, failed, how = [], False, ""
    for n, cmd in commands.items():
        print(f"\n##### {n}: {cmd}", flush=True)
        code, rss, wall, how = measure(cmd, repo, env, gnu_time)
        rows.append([n, "ok" if code == 0 else f"FAILED ({code})", f"{rss:.0f}", f"{wall:.1f}"])
        if rec:
            rec.add(f"peak_rss_mb_{n}", rss, "MB", stage=n, cmd=cmd, how=how, exit_code=code)
            rec.add(f"wall_s_{n}", wall, "s", stage=n, exit_code=code)
        if code != 0:
            failed = True
            if not args.keep_going:
                break
    print(f"\npeak RSS per stage ({how}; the largest single process of each stage):")
    print(bu.table(rows, ["stage", "exit", "peak RSS MB", "wall s"]))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
