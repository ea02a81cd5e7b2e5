"""Command-line start-up: `python -m pipeline --help` and a `dvc repro` with nothing to do.

  --help:    wall time of `python -m pipeline --help` as a subprocess (median of 5 after
             one warm-up run); `python -c pass` alongside, the interpreter's own share.
             Target <= 1.5 s.
  dvc repro: wall time of `dvc repro` in --repo (default: this repository) when the
             pipeline there is up to date (median of 3). Measured only when `dvc status`
             says "Data and pipelines are up to date."; otherwise skipped with the reason
             (a fresh clone has no outputs; a running `dvc repro` holds the lock).
             Target <= 3 s.

Both run with this interpreter's folder first on PATH, as `make bench` does.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchutil as bu  # noqa: E402

TARGET_HELP_S = 1.5
TARGET_REPRO_S = 3.0
UP_TO_DATE = "Data and pipelines are up to date"


def env() -> dict:
    e = dict(os.environ)
    e["PATH"] = str(Path(sys.executable).parent) + os.pathsep + e.get("PATH", "")
    e.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    return e


def run_timed(cmd: list[str], cwd: Path, timeout: float = 600) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    out = subprocess.run(cmd, cwd=cwd, env=env(), capture_output=True, text=True, timeout=timeout)
    return time.perf_counter() - t0, out


def dvc_executable() -> str | None:
    here = Path(sys.executable).parent / "dvc"
    return str(here) if here.exists() else shutil.which("dvc")


def main(argv=None) -> int:
    p = bu.base_parser(__doc__.split("\n")[0])
    p.add_argument("--repo", type=Path, default=bu.REPO,
                   help="repository to run `dvc repro` in (must have a completed `dvc repro`)")
    p.add_argument("--help-repeats", type=int, default=None, help="[5; quick 2]")
    p.add_argument("--repro-repeats", type=int, default=None, help="[3; quick 1]")
    p.add_argument("--skip-dvc", action="store_true")
    args = p.parse_args(argv)
    help_n = args.help_repeats or (2 if args.quick else 5)
    repro_n = args.repro_repeats or (1 if args.quick else 3)
    repo = args.repo.resolve()

    desc = f"none (start-up only); dvc repro in {repo}"
    rec = bu.Recorder("cli", args, desc)
    bu.header("command-line start-up", desc)

    ok = bench_help(help_n, rec)
    print()
    ok = ok and bench_noop_repro(args, repo, repro_n, rec)
    rec.finish()
    return 0 if ok else 1


def bench_help(help_n: int, rec) -> bool:
    """`python -m pipeline --help` against a bare interpreter's start-up."""
    py = sys.executable
    samples = {}
    for name, cmd in (("python -c pass", [py, "-c", "pass"]),
                      ("python -m pipeline --help", [py, "-m", "pipeline", "--help"])):
        times = []
        for i in range(help_n + 1):
            t, out = run_timed(cmd, bu.REPO, timeout=120)
            if out.returncode != 0:
                print(f"{name} failed (exit {out.returncode}):\n{out.stderr[-2000:]}")
                return False
            if i:  # the first run is the warm-up
                times.append(t)
        samples[name] = times
    help_s = bu.median(samples["python -m pipeline --help"])
    base_s = bu.median(samples["python -c pass"])
    print(bu.table([[name, f"{bu.median(t):.3f}", f"{min(t):.3f}-{max(t):.3f}"]
                    for name, t in samples.items()],
                   ["command", f"median s ({help_n})", "min-max s"]))
    print(f"target: `python -m pipeline --help` <= {TARGET_HELP_S:g} s: {help_s:.3f} s -> "
          f"{bu.verdict(help_s <= TARGET_HELP_S)}")
    rec.add("python_startup_s", base_s, "s", samples=[round(x, 4) for x in samples["python -c pass"]])
    rec.add("pipeline_help_s", help_s, "s", target=f"<={TARGET_HELP_S}", met=help_s <= TARGET_HELP_S,
            samples=[round(x, 4) for x in samples["python -m pipeline --help"]])
    return True


def bench_noop_repro(args, repo: Path, repro_n: int, rec) -> bool:
    """`dvc repro` in a repository where every stage is up to date (skipped if it is not)."""
    dvc = dvc_executable()
    reason = None
    if args.skip_dvc:
        reason = "--skip-dvc"
    elif dvc is None:
        reason = "no dvc executable beside this interpreter or on PATH"
    elif not (repo / "dvc.yaml").exists():
        reason = f"no dvc.yaml in {repo}"
    else:
        status_s, out = run_timed([dvc, "status"], repo, timeout=600)
        text = (out.stdout + out.stderr).strip()
        rec.add("dvc_status_s", status_s, "s", repo=str(repo), clean=UP_TO_DATE in text)
        print(f"dvc status in {repo}: {status_s:.2f} s")
        if out.returncode != 0 or UP_TO_DATE not in text:
            lines = text.splitlines()
            shown = "\n    ".join(lines[:12]) + ("\n    ..." if len(lines) > 12 else "")
            reason = (f"`dvc status` is not clean (exit {out.returncode}); run `dvc repro` "
                      f"first (or pass --repo to a repository where it ran):\n    {shown}")
    if reason:
        print(f"dvc repro (nothing to do): SKIPPED: {reason}")
        rec.add("dvc_repro_noop_s", None, "s", repo=str(repo), skipped=reason.splitlines()[0])
    else:
        times = []
        for _ in range(repro_n):
            t, out = run_timed([dvc, "repro"], repo, timeout=600)
            if out.returncode != 0:
                print(f"dvc repro failed (exit {out.returncode}):\n{(out.stdout + out.stderr)[-2000:]}")
                rec.add("dvc_repro_noop_s", None, "s", repo=str(repo), skipped="dvc repro failed")
                return False
            times.append(t)
        last = (out.stdout + out.stderr).strip().splitlines()
        repro_s = bu.median(times)
        print(bu.table([["dvc repro (up to date)", f"{repro_s:.3f}", f"{min(times):.3f}-{max(times):.3f}"]],
                       ["command", f"median s ({repro_n})", "min-max s"]))
        print(f"  its last line: {last[-1] if last else ''}")
        print(f"target: `dvc repro` with nothing to do <= {TARGET_REPRO_S:g} s: {repro_s:.3f} s -> "
              f"{bu.verdict(repro_s <= TARGET_REPRO_S)}")
        rec.add("dvc_repro_noop_s", repro_s, "s", repo=str(repo), target=f"<={TARGET_REPRO_S}",
                met=repro_s <= TARGET_REPRO_S, samples=[round(x, 4) for x in times])
    return True


if __name__ == "__main__":
    sys.exit(main())
