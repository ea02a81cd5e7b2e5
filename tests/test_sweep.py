"""A DVC grid sweep run by two queue workers at once, both writing to the default SQLite
MLflow store: every run lands with its params and metrics, none is lost to a locked
database, and a failing experiment is marked FAILED with its log kept."""
from __future__ import annotations

import time

import pytest
from mlflow.tracking import MlflowClient

from tests.repo import make_repo, run

pytestmark = pytest.mark.slow

LRS = ["0.001", "0.002", "0.004", "0.008"]
# The loss becomes NaN: TrainingDiverged inside the MLflow run.
DIVERGING_LR, DIVERGING_LOGGED = "1e30", "1e+30"


def wait_for_queue(repo, timeout: float = 1200) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = run(["dvc", "queue", "status"], repo).stdout
        if not any(word in status for word in ("Queued", "Running")):
            return status
        time.sleep(5)
    raise AssertionError(f"queue still busy after {timeout} s:\n{status}")


def test_two_workers_sweep_loses_nothing(fixture_data, tmp_path):
    repo = make_repo(tmp_path / "repo", fixture_data)
    # Every stage the learning rate does not change runs once first, so the workers
    # only train and evaluate the classifier: two workers running the same stage at
    # once race in DVC's run cache (a worker's acquire_gutenberg failed on the other
    # worker's temporary file there).
    run(["dvc", "repro", "train_baseline", "evaluate_charlm"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "data"], repo)
    run(["dvc", "exp", "run", "--queue", "-S", f"sentiment.lr={','.join(LRS)}"], repo)
    run(["dvc", "exp", "run", "--queue", "-n", "diverges", "-S",
         f"sentiment.lr={DIVERGING_LR}"], repo)
    started = time.monotonic()
    run(["dvc", "queue", "start", "-j", "2"], repo)
    status = wait_for_queue(repo)
    print(f"5 queued experiments, 2 workers: {time.monotonic() - started:.0f} s")
    assert status.count("Success") == len(LRS), status
    assert "Failed" in status, status
    logs = run(["dvc", "queue", "logs", "diverges"], repo)
    assert "failed to reproduce 'train_sentiment'" in logs.stdout
    # A worker's log is lines, not progress-bar frames.
    assert "\r" not in logs.stdout and "Running stage 'train_sentiment'" in logs.stdout

    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    exp = client.get_experiment_by_name("sentiment")
    runs = [r for r in client.search_runs([exp.experiment_id])
            if r.data.tags.get("dvc_stage") == "train_sentiment"
            and "dvc_experiment" in r.data.tags]
    by_lr = {r.data.params["sentiment.lr"]: r for r in runs}
    assert sorted(by_lr) == sorted([*LRS, DIVERGING_LOGGED]), sorted(by_lr)
    for lr in LRS:
        r = by_lr[lr]
        assert r.info.status == "FINISHED"
        assert r.data.tags["git_dirty"] == "false"
        assert "test_accuracy" in r.data.metrics and "best_val_accuracy" in r.data.metrics
    failed = by_lr[DIVERGING_LOGGED]
    assert failed.info.status == "FAILED"
    assert failed.data.tags["error"].startswith("TrainingDiverged: loss became")
    assert [a.path for a in client.list_artifacts(failed.info.run_id)] == ["error.txt", "logs"]
