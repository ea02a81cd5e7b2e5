"""Shared helpers for the benchmark scripts: arguments, timing, result
records and tables (the data they run on is in benchdata.py).

Every script puts this folder on sys.path (it is its own folder when run as
`python benchmarks/bench_x.py`) and this module puts the repository root there, so
`import pipeline` works without an install.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import resource
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Callable, Iterable, Sequence

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS = BENCH_DIR / "results" / "results.jsonl"
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


# ---------------------------------------------------------------- arguments
def base_parser(description: str) -> argparse.ArgumentParser:
    """The options every benchmark script shares."""
    p = argparse.ArgumentParser(description=description,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data-root", type=Path, default=None,
                   help="folder holding prepared/, raw/, models/ (default: the repo's data/); "
                        "synthetic data is used for whatever is missing there")
    p.add_argument("--synthetic", action="store_true",
                   help="use synthetic data even where real data exists")
    p.add_argument("--quick", action="store_true",
                   help="tiny sizes and repeat counts: checks the script runs, times nothing useful")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's default, all cores, as the pipeline)")
    p.add_argument("--results", type=Path, default=RESULTS,
                   help="JSON-lines file the measurements are appended to")
    p.add_argument("--no-record", action="store_true", help="print only; append nothing")
    p.add_argument("--seed", type=int, default=1)
    return p


def data_root(args) -> Path:
    return Path(args.data_root) if args.data_root else REPO / "data"


def set_threads(args) -> int:
    import torch
    if args.threads:
        torch.set_num_threads(args.threads)
    return torch.get_num_threads()


def pipeline_optimizer(model, lr: float):
    """The optimizer the training stages build (pipeline.training.loop.make_optimizer:
    Adam, fused kernel on CPU and CUDA), without a learning-rate schedule. The book-style
    variants keep torch.optim.Adam's default, as the book does."""
    from pipeline.training.loop import LoopConfig, make_optimizer
    cfg = LoopConfig(lr=lr, weight_decay=0.0, scheduler="none", clip_grad_norm=1.0,
                     patience=None, checkpoint_every=1)
    return make_optimizer(model, cfg, total_steps=1)[0]


# ---------------------------------------------------------------- timing
def median(xs: Sequence[float]) -> float:
    return float(statistics.median(xs))


def time_calls(fn: Callable[[], object], repeats: int, warmup: int = 1,
               sync: Callable[[], None] | None = None) -> list[float]:
    """Seconds per call of `fn`, `warmup` calls discarded first. `sync` (e.g.
    torch.cuda.synchronize) runs before each timer read."""
    for _ in range(warmup):
        fn()
    if sync:
        sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        times.append(time.perf_counter() - t0)
    return times


def time_interleaved(fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 1,
                     sync: Callable[[], None] | None = None) -> dict[str, list[float]]:
    """Like time_calls for several functions, run in turns (a, b, a, b, ...) so that a
    busy machine's slow patches hit each of them alike."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    if sync:
        sync()
    out = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            if sync:
                sync()
            out[name].append(time.perf_counter() - t0)
    return out


def spread(xs: Sequence[float]) -> str:
    """'min-max' of a list of seconds, in ms, for the tables."""
    return f"{min(xs) * 1e3:.1f}-{max(xs) * 1e3:.1f}"


def in_fresh_process(fn, *fn_args):
    """fn(*fn_args) in a new process: its own thread pool and floating-point flags."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fn, *fn_args).result()


def peak_rss_mb() -> float:
    """Peak RSS of this process so far (Linux reports KiB, macOS bytes)."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / (1024 * 1024) if sys.platform == "darwin" else r / 1024


# ---------------------------------------------------------------- records
def cpu_model() -> str:
    """The CPU's model name, as pipeline.core.tracking.cpu_name tags MLflow runs (read
    here without importing MLflow, which would weigh on every benchmark's memory)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, text=True,
                             capture_output=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=REPO, text=True, capture_output=True, timeout=10)
        # What `dvc repro` itself rewrites (the lock, metrics, plots, the .gitignore files
        # of outputs) does not make the code dirty.
        changed = [line for line in dirty.stdout.splitlines()
                   if not line[3:].startswith(("dvc.lock", "metrics/", "plots/"))
                   and Path(line[3:]).name != ".gitignore"]
        return out.stdout.strip() + ("-dirty" if changed else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


class Recorder:
    """One JSON line per measurement, appended to results.jsonl as soon as it is made.

    Every line carries the run id (shared by all scripts of one run_all.py run, or
    BENCH_RUN_ID), the benchmark, the data used, the machine (CPU model, cores, torch
    threads, the GPU on CUDA, load average at the start: a load near or above the core
    count means the timings are noisy)."""

    def __init__(self, bench: str, args, data: str, device: str = "cpu"):
        import torch
        self.bench, self.data, self.device = bench, data, device
        self.path = None if args.no_record else Path(args.results)
        self.common = {
            "run_id": os.environ.get("BENCH_RUN_ID") or uuid.uuid4().hex[:12],
            "bench": bench,
            "quick": bool(args.quick),
            "host": socket.gethostname(),
            "cpu": cpu_model(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "git": _git_commit(),
            "loadavg_1m_at_start": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        }
        if "cuda" in device and torch.cuda.is_available():
            self.common["gpu"] = torch.cuda.get_device_name(0)
        self.rows: list[dict] = []

    def add(self, name: str, value: float, unit: str, *, data: str | None = None,
            device: str | None = None, **extra) -> dict:
        row = {"time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
               **self.common, "name": name,
               "value": None if value is None or (isinstance(value, float) and math.isnan(value))
               else round(float(value), 6),
               "unit": unit, "data": data or self.data, "device": device or self.device}
        if extra:
            row["extra"] = extra
        self.rows.append(row)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(row, sort_keys=False) + "\n")
        return row

    def finish(self) -> None:
        self.add("peak_rss_self", peak_rss_mb(), "MB")
        if self.path is not None:
            print(f"\n{len(self.rows)} measurements appended to {self.path}")


# ---------------------------------------------------------------- output
def header(title: str, data: str, extra: str = "") -> None:
    import torch
    load = f"{os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else "?"
    print(f"\n=== {title} ===")
    print(f"data: {data}")
    print(f"machine: {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, load average {load}"
          + (f"  ({extra})" if extra else ""))
    if hasattr(os, "getloadavg") and os.getloadavg()[0] > 0.5 * (os.cpu_count() or 1):
        print("note: the machine is busy (load average above half the cores): timings are noisy")


def table(rows: Iterable[Sequence], headers: Sequence[str]) -> str:
    rows = [[("" if c is None else str(c)) for c in r] for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]

    def line(cells):
        return "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    out = [line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows]
    return "\n".join(out)


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "NOT met")
