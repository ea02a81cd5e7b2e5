"""Wall time of every pipeline stage: runs `dvc repro` (arguments passed on), times each
stage from DVC's "Running stage" line to the next one (or to the end; DVC's lock update
for the stage is included), prints a table and records the times in
metrics/stage_times.json, which the README's results table shows
(`python -m pipeline report --readme README.md`), and benchmarks/README.md's
(`python benchmarks/tables.py readme`).

Stages DVC skips keep the time of the run that last ran them (each entry says when, on
which commit and machine), so timing one stage again does not lose the others.

    python benchmarks/stage_times.py                      # dvc repro
    python benchmarks/stage_times.py --force              # cold: every stage runs
    python benchmarks/stage_times.py --force -s prepare_imdb   # one stage again
"""
from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterable

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchutil as bu  # noqa: E402

TIMES = bu.REPO / "metrics" / "stage_times.json"
RUNNING = re.compile(r"Running stage '([^']+)'")


def stage_seconds(events: Iterable[tuple[float, str]], end: float) -> dict[str, float]:
    """{stage: seconds} from (time, output line) pairs of one `dvc repro`: a stage lasts
    from its "Running stage" line to the next stage's, the last one to `end`."""
    starts = [(t, m.group(1)) for t, line in events if (m := RUNNING.search(line))]
    ends = [t for t, _ in starts[1:]] + [end]
    return {name: round(stop - start, 1) for (start, name), stop in zip(starts, ends)}


def machine() -> str:
    import torch
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{bu.cpu_model()}, {os.cpu_count()} cores, {gpu}"


def record(measured: dict[str, float], path: Path = TIMES) -> dict:
    """Merge this run's stage times into the record file and return it."""
    data = json.loads(path.read_text()) if path.exists() else {"stages": {}}
    stamp = {"commit": bu._git_commit(), "machine": machine(),
             "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    for name, seconds in measured.items():
        data["stages"][name] = {"seconds": seconds, **stamp}
    order = list(yaml.safe_load((bu.REPO / "dvc.yaml").read_text())["stages"])
    data["stages"] = dict(sorted(data["stages"].items(),
                                 key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order)))
    path.write_text(json.dumps(data, indent=2) + "\n")
    return data


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    cmd = [str(Path(sys.executable).with_name("dvc")), "repro", *args]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    events = []
    with subprocess.Popen(cmd, cwd=bu.REPO, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, bufsize=1) as proc:
        for line in proc.stdout:
            events.append((time.monotonic(), line))
            print(line, end="", flush=True)
    if proc.returncode != 0:
        print(f"\ndvc repro failed (exit {proc.returncode}): no times recorded")
        return proc.returncode
    measured = stage_seconds(events, time.monotonic())
    if not measured:
        print("\nno stage ran: nothing to record")
        return 0
    rows = [[name, f"{s:.0f}"] for name, s in measured.items()]
    print("\n" + bu.table(rows + [["all of the above", f"{sum(measured.values()):.0f}"]],
                          ["stage", "seconds"]))
    record(measured)
    print(f"recorded in {TIMES}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
