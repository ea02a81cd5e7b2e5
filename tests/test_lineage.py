"""What a run says made it (pipeline/mlops/lineage.py), an experiment created by two
stages at once, GPU system metrics through NVML, and the cores shared between torch
processes (pipeline/training/cores.py)."""
from __future__ import annotations

import subprocess
import sys
import time
import types

import mlflow
import pytest
import yaml
from mlflow.tracking import MlflowClient

from pipeline.mlops import lineage, tracking
from pipeline.training import cores

DVC_YAML = {"stages": {"train": {"cmd": "python -m x", "deps": ["code", "data.txt"],
                                 "params": ["model.size", {"other.yaml": ["lr"]}]}}}


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump(DVC_YAML))
    (tmp_path / "params.yaml").write_text("model:\n  size: 8\n  unused: 1\n")
    (tmp_path / "other.yaml").write_text("lr: 0.1\n")
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "a.py").write_text("x = 1\n")
    (tmp_path / "data.txt").write_text("data\n")
    for args in (["init", "-q"], ["add", "-A"], ["-c", "user.name=t", "-c", "user.email=t@t",
                                                 "commit", "-qm", "start"]):
        subprocess.run(["git", *args], cwd=tmp_path, check=True)
    return tmp_path


def test_params_digest_follows_the_stage_params_only(workdir):
    before = lineage.params_digest("train")
    (workdir / "params.yaml").write_text("model:\n  size: 8\n  unused: 2\n")
    assert lineage.params_digest("train") == before
    (workdir / "other.yaml").write_text("lr: 0.2\n")
    assert lineage.params_digest("train") != before


def test_deps_digest_follows_every_file_of_a_folder_dep_but_not_bytecode(workdir):
    before = lineage.deps_digest("train")
    (workdir / "code" / "__pycache__").mkdir()
    (workdir / "code" / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"\0")
    assert lineage.deps_digest("train") == before
    (workdir / "code" / "b.py").write_text("y = 2\n")
    assert lineage.deps_digest("train") != before


def test_changed_params_are_not_dirt_but_changed_code_is(workdir):
    (workdir / "params.yaml").write_text("model:\n  size: 16\n")  # as `dvc exp run -S` does
    assert not lineage.changed_code()
    (workdir / "code" / "a.py").write_text("x = 2\n")
    assert lineage.changed_code()


def test_tags_name_the_dvc_experiment_and_its_baseline(workdir, monkeypatch):
    monkeypatch.setenv("DVC_EXP_NAME", "brisk-lark")
    monkeypatch.setenv("DVC_EXP_BASELINE_REV", "f" * 40)
    tags = lineage.lineage_tags("train")
    assert tags["dvc_experiment"] == "brisk-lark" and tags["dvc_baseline_rev"] == "f" * 40
    assert tags["git_dirty"] == "false" and len(tags["git_commit"]) == 40
    assert len(tags["params_digest"]) == 64 and len(tags["deps_digest"]) == 64


def test_creating_an_experiment_another_process_just_created_reads_it_back(tmp_path,
                                                                          monkeypatch):
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        client = MlflowClient()
        real_get = client.get_experiment_by_name
        calls = []

        def racing_get(name):
            calls.append(name)
            if len(calls) == 1:  # the other worker creates it between our lookup and create
                client.create_experiment(name)
                return None
            return real_get(name)
        monkeypatch.setattr(client, "get_experiment_by_name", racing_get)
        exp_id = tracking.experiment_id(client, "sentiment")
        assert exp_id == real_get("sentiment").experiment_id
    finally:
        mlflow.set_tracking_uri(None)


class FakeNVML(types.ModuleType):
    """Just enough of pynvml for MLflow's GPU monitor: one GPU, half busy."""
    class NVMLError(Exception):
        pass

    def __init__(self):
        super().__init__("pynvml")
        memory = types.SimpleNamespace(used=2 * 2**30, total=8 * 2**30, free=6 * 2**30)
        usage = types.SimpleNamespace(gpu=50, memory=25)
        self.nvmlInit = lambda: None
        self.nvmlDeviceGetCount = lambda: 1
        self.nvmlDeviceGetHandleByIndex = lambda i: i
        self.nvmlDeviceGetMemoryInfo = lambda h: memory
        self.nvmlDeviceGetUtilizationRates = lambda h: usage
        self.nvmlDeviceGetPowerUsage = lambda h: 100_000
        self.nvmlDeviceGetEnforcedPowerLimit = lambda h: 200_000


def test_gpu_metrics_reach_the_run_when_nvml_answers(tmp_path, monkeypatch):
    import pynvml  # a dependency: GPU metrics must not need a manual install
    assert callable(pynvml.nvmlInit)
    from mlflow.system_metrics.metrics import gpu_monitor
    fake = FakeNVML()
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    monkeypatch.setattr(gpu_monitor, "pynvml", fake, raising=False)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_system_metrics_sampling_interval(0.2)
    mlflow.set_system_metrics_samples_before_logging(1)
    try:
        with mlflow.start_run(log_system_metrics=True) as run:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and "system/gpu_0_utilization_percentage" \
                    not in mlflow.get_run(run.info.run_id).data.metrics:
                time.sleep(0.2)
        metrics = mlflow.get_run(run.info.run_id).data.metrics
    finally:
        mlflow.set_system_metrics_sampling_interval(None)
        mlflow.set_system_metrics_samples_before_logging(None)
        mlflow.set_tracking_uri(None)
    assert metrics["system/gpu_0_utilization_percentage"] == 50
    assert metrics["system/gpu_0_memory_usage_megabytes"] == pytest.approx(2 * 2**30 / 1e6, abs=1)


HOLD_A_SLOT = """
import sys, time
from pipeline.training import cores
cores.SLOTS = type(cores.SLOTS)(sys.argv[1])
cores.fair_share()
print("holding", flush=True)
time.sleep(60)
"""


def test_two_torch_processes_share_the_cores(tmp_path, monkeypatch):
    monkeypatch.setattr(cores, "SLOTS", tmp_path / "slots")
    monkeypatch.setattr(cores, "_held", None)
    monkeypatch.setattr(cores.os, "cpu_count", lambda: 4)
    assert cores.fair_share() == 4
    other = subprocess.Popen([sys.executable, "-c", HOLD_A_SLOT, str(tmp_path / "slots")],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline().strip() == "holding"
        assert cores.fair_share() == 2
    finally:
        other.kill()
        other.wait()
    # The other process is gone: its slot is cleared and the cores come back.
    assert cores.fair_share() == 4
    assert len(list((tmp_path / "slots").glob("*.lock"))) == 1


def test_pinned_threads_are_left_alone(monkeypatch):
    monkeypatch.setattr(cores, "_last_check", 0.0)
    assert cores.start(3) == 3
    monkeypatch.setattr(cores, "fair_share", lambda: pytest.fail("share recomputed"))
    cores.rebalance()


def test_a_process_that_ends_gives_its_slot_back_cleanly(tmp_path):
    code = ("import sys\nfrom pipeline.training import cores\n"
            "cores.SLOTS = type(cores.SLOTS)(sys.argv[1])\ncores.fair_share()\n")
    done = subprocess.run([sys.executable, "-X", "dev", "-c", code, str(tmp_path / "slots")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "ResourceWarning" not in done.stderr, done.stderr
    assert list((tmp_path / "slots").glob("*.lock")) == []
