"""The README's sweep with one queue worker and with two: wall time of each, and whether
every queued experiment ended as one FINISHED MLflow run.

Run it after `make repro`, on a quiet machine (it queues DVC experiments and trains):

    python benchmarks/sweep_workers.py                         # the README's sweep
    python benchmarks/sweep_workers.py --set sentiment.epochs=1   # shorter, same shape

Each batch queues one experiment per value (named sweep-j<N>-<i>-<time>), starts N
workers, waits for the queue to empty and stops the workers. A batch of N workers moves
each value by a relative N x 1e-9, far below anything training can see, so that DVC's run
cache cannot answer a batch from an earlier one and every batch trains.
"""
from __future__ import annotations

import argparse
import datetime as dt
import subprocess
import sys
import time
from pathlib import Path

from mlflow.tracking import MlflowClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchutil as bu  # noqa: E402


def dvc(*args: str) -> str:
    return subprocess.run(["dvc", *args], cwd=bu.REPO, check=True, text=True,
                          capture_output=True).stdout


def run_batch(jobs: int, key: str, values: list[str], extra: list[str]) -> tuple[float, list]:
    stamp = dt.datetime.now().strftime("%H%M%S")
    names = [f"sweep-j{jobs}-{i}-{stamp}" for i in range(len(values))]
    for name, value in zip(names, values):
        value = repr(float(value) * (1 + jobs * 1e-9))
        dvc("exp", "run", "--queue", "-n", name, "-S", f"{key}={value}",
            *[arg for kv in extra for arg in ("-S", kv)])
    started = time.monotonic()
    dvc("queue", "start", "-j", str(jobs))
    while True:
        time.sleep(10)
        status = dvc("queue", "status")
        if not any(word in status for word in ("Queued", "Running")):
            break
        if "Queued" in status and "Running" not in status and "0 active, 0 idle" in status:
            # DVC's workers can stop with tasks still queued (treeverse/dvc#10562):
            # start them again, as the README says.
            print("workers stopped with tasks queued: `dvc queue start` again", flush=True)
            dvc("queue", "start", "-j", str(jobs))
    seconds = time.monotonic() - started
    dvc("queue", "stop")  # idle workers would take the next batch's jobs
    return seconds, names


def finished_runs(names: list[str]) -> dict[str, list[str]]:
    """Each experiment's train_sentiment runs in the store, by status."""
    client = MlflowClient(f"sqlite:///{bu.REPO / 'mlflow.db'}")
    exp = client.get_experiment_by_name("sentiment")
    runs = client.search_runs([exp.experiment_id], "tags.dvc_stage = 'train_sentiment'")
    return {name: [r.info.status for r in runs if r.data.tags.get("dvc_experiment") == name]
            for name in names}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--key", default="sentiment.lr")
    parser.add_argument("--values", default="0.001,0.002,0.004")
    parser.add_argument("--jobs", default="1,2", help="worker counts, one batch each")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="another override for every experiment")
    args = parser.parse_args()
    values = args.values.split(",")
    print(f"sweep {args.key} over {values} {args.set or ''} on {bu.cpu_model()}")
    rows = []
    for jobs in [int(j) for j in args.jobs.split(",")]:
        seconds, names = run_batch(jobs, args.key, values, args.set)
        statuses = finished_runs(names)
        ok = all(s == ["FINISHED"] for s in statuses.values())
        rows.append((jobs, f"{seconds:.0f}", "yes" if ok else f"no: {statuses}"))
        print(f"-j {jobs}: {seconds:.0f} s; every experiment one FINISHED run: {ok}", flush=True)
    print(bu.table(rows, ["workers", "wall s", "all FINISHED"]))


if __name__ == "__main__":
    main()
