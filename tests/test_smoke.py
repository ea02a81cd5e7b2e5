"""`make smoke` (= `python -m pipeline smoke`): every stage at small sizes as a DVC
experiment in a temporary copy, tracked in MLflow, leaving the workspace as it was."""
from __future__ import annotations

import json

import pytest
from mlflow.tracking import MlflowClient

from tests.repo import make_repo, run

pytestmark = pytest.mark.slow


def test_smoke_run_is_a_tracked_experiment_that_leaves_the_workspace_alone(fixture_data,
                                                                            tmp_path):
    repo = make_repo(tmp_path / "repo", fixture_data)
    params_before = (repo / "params.yaml").read_text()
    proc = run(["python", "-m", "pipeline", "smoke", "--name", "smoke-test"], repo,
               timeout=900)
    assert "smoke-test done" in proc.stdout
    # Every stage ran, with the recipe's params, in the experiment.
    shown = json.loads(run(["dvc", "exp", "show", "--json"], repo).stdout)
    experiments = [exp for rev in shown for exp in (rev.get("experiments") or [])]
    [smoke] = [e for e in experiments if e.get("name") == "smoke-test"]
    data = smoke["revs"][0]["data"]
    assert data["params"]["params.yaml"]["data"]["charlm"]["steps"] == 200
    metrics = data["metrics"]
    assert "test_accuracy" in metrics["metrics/sentiment.json"]["data"]
    assert "val_loss" in metrics["metrics/charlm.json"]["data"]
    # Tracked in the repository's own MLflow store, named after the experiment.
    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    exp = client.get_experiment_by_name("sentiment")
    runs = [r for r in client.search_runs([exp.experiment_id])
            if r.data.tags.get("dvc_experiment") == "smoke-test"
            and r.data.tags.get("dvc_stage") == "train_sentiment"]
    assert len(runs) == 1 and runs[0].data.params["sentiment.epochs"] == "2"
    assert runs[0].info.run_name.startswith("train_sentiment-smoke-test")
    assert "test_accuracy" in runs[0].data.metrics
    # A smoke run is no candidate for serving: its models are logged on the runs, but no
    # version is registered, so it can never take `champion` from a full run.
    for name in ("sentiment-lstm", "sentiment-tfidf", "charlm-lstm"):
        assert client.search_model_versions(f"name = '{name}'") == [], name
    assert client.search_logged_models([exp.experiment_id])
    # The workspace is as it was: no outputs, params untouched.
    assert (repo / "params.yaml").read_text() == params_before
    assert not (repo / "data/models/sentiment").exists()
