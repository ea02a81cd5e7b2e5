"""A training stage killed with SIGKILL resumes from its last checkpoint, continues the
same MLflow run, and ends with exactly the weights of an uninterrupted run (CPU)."""
from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
from mlflow.tracking import MlflowClient

from tests.repo import env, make_repo, run

pytestmark = pytest.mark.slow
MODEL = "data/models/charlm/model.pt"


@pytest.fixture(scope="module")
def repo(fixture_data, tmp_path_factory):
    work = tmp_path_factory.mktemp("resume")
    overrides = dict(fixture_data)
    # Many short evaluation periods, a checkpoint after each, TBPTT state carried across them.
    overrides["charlm"] = {"mode": "tbptt", "seq_len": 20, "steps": 160, "eval_every": 20,
                           "dropout": 0.1, "num_layers": 2}
    repo = make_repo(work / "repo", overrides)
    run(["dvc", "repro", "prepare_gutenberg"], repo)
    return repo


def test_killed_training_resumes_to_identical_weights(repo, tmp_path):
    # The reference: an uninterrupted run, tracked in a store of its own.
    reference_store = f"sqlite:///{tmp_path / 'reference.db'}"
    run(["python", "-m", "pipeline", "train-charlm"], repo,
        extra_env={"MLFLOW_TRACKING_URI": reference_store})
    reference = (repo / MODEL).read_bytes()
    (repo / MODEL).unlink()

    # The same run, killed once its first checkpoints exist.
    checkpoint = repo / "data/checkpoints/charlm/checkpoint.pt"
    proc = subprocess.Popen(["python", "-m", "pipeline", "train-charlm"], cwd=repo, env=env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.monotonic() + 300
    while not checkpoint.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "training ended before it could be killed: make it longer"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert not (repo / MODEL).exists(), "a killed run must leave no model output"

    resumed = run(["python", "-m", "pipeline", "train-charlm"], repo)
    assert "resuming from" in resumed.stdout + resumed.stderr
    assert (repo / MODEL).read_bytes() == reference
    assert not checkpoint.exists(), "a finished run removes its checkpoint"

    # One MLflow run for the killed and the resumed attempt together, finished.
    c = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    runs = c.search_runs([c.get_experiment_by_name("charlm").experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    steps = {m.step for m in c.get_metric_history(runs[0].info.run_id, "val_loss")}
    assert steps == {20 * k for k in range(1, 9)}
