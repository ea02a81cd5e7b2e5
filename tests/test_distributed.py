"""DDP: two Gloo processes on CPU (torchrun, started by the stage itself when
train.nproc=2) train the same model as one process with the same global batch."""
from __future__ import annotations

import shutil

import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient

from tests.repo import make_repo, run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def repo(fixture_data, tmp_path_factory):
    work = tmp_path_factory.mktemp("ddp")
    overrides = dict(fixture_data)
    # Dropout masks are drawn per process, so 2 processes can equal 1 only without it.
    overrides["charlm"] = {"mode": "tbptt", "seq_len": 20, "dropout": 0.0}
    overrides["sentiment"] = {"dropout": 0.0, "word_dropout": 0.0, "pretrained": "none"}
    repo = make_repo(work / "repo", overrides)
    run(["dvc", "repro", "prepare_imdb", "prepare_gutenberg"], repo)
    return repo


def set_nproc(repo, n: int) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["train"]["nproc"] = n
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.mark.parametrize("stage,experiment,model_dir", [
    ("train-sentiment", "sentiment", "data/models/sentiment"),
    ("train-charlm", "charlm", "data/models/charlm"),
])
def test_two_processes_match_one(repo, stage, experiment, model_dir):
    set_nproc(repo, 1)
    run(["python", "-m", "pipeline", stage], repo)
    single = torch.load(repo / model_dir / "model.pt", weights_only=True)
    shutil.rmtree(repo / model_dir)

    set_nproc(repo, 2)
    proc = run(["python", "-m", "pipeline", stage], repo)
    assert "launching 2 processes" in proc.stderr
    ddp = torch.load(repo / model_dir / "model.pt", weights_only=True)
    assert single.keys() == ddp.keys()
    # Same global batch, same data: only the order of floating-point sums differs.
    for name in single:
        torch.testing.assert_close(ddp[name], single[name], rtol=1e-3, atol=1e-4,
                                   msg=f"{name} differs between 1 and 2 processes")

    c = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    runs = c.search_runs([c.get_experiment_by_name(experiment).experiment_id],
                         order_by=["attributes.start_time ASC"])
    assert len(runs) == 2, "rank 1 must not start a run of its own"
    assert runs[1].data.params["world_size"] == "2"
    assert runs[0].data.params["world_size"] == "1"
    # One metric point per evaluation, not one per process.
    assert len(c.get_metric_history(runs[1].info.run_id, "val_loss")) == \
        len(c.get_metric_history(runs[0].info.run_id, "val_loss"))
    set_nproc(repo, 1)
