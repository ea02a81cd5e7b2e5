"""What every training stage does around the loop: the MLflow run, params, checkpoints,
outputs written only after a successful run, artifacts."""
from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import mlflow
import pandas as pd
import torch

from ..core.config import Params, TrainingParams, flatten
from ..core.inputs import read_json, read_provenance
from ..core.outputs import CHECKPOINTS, PLOTS, fingerprint, sha256_file, staged_dir, write_json
from ..mlops import tracking
from ..mlops.plots import plot_history, plot_time_to_quality
from .loop import FitResult, LoopConfig, Task, fit
from .runtime import is_main, world

# The train.* keys that change what a training produces; the others (checkpoint_every,
# num_threads) only change how it gets there.
RESULT_TRAIN_KEYS = ("deterministic", "amp", "nproc")


@dataclass
class TrainingRun:
    """Everything that tells one training stage from another."""
    name: str                       # params section; names checkpoints and plots
    section: TrainingParams         # that section of the params
    stage: str                      # the DVC stage, tagged on the MLflow run
    experiment: str                 # the MLflow experiment
    data_dir: Path                  # the prepared data (its summary.json is logged)
    dataset: str                    # the raw data set (its provenance is logged)
    model_dir: Path                 # the stage's output
    curves: list[str]               # history columns to plot
    write_extra: Callable[[Path], None] = lambda out: None
    # Logs the model on the run; registers a version when asked (full data only).
    log_model: Callable[[Path, bool], object] = lambda model_dir, register: None
    inputs: Callable[[], dict] = dict  # the splits read, logged as MLflow datasets
    extra_params: dict = field(default_factory=dict)  # also part of the fingerprint
    lr_scales: dict = field(default_factory=dict)     # lr multipliers by parameter prefix


def loop_config(section: TrainingParams, params: Params, lr_scales: dict) -> LoopConfig:
    return LoopConfig(lr=section.lr, weight_decay=section.weight_decay,
                      scheduler=section.scheduler, clip_grad_norm=section.clip_grad_norm,
                      patience=section.patience, checkpoint_every=params.train.checkpoint_every,
                      amp=params.train.amp, lr_scales=lr_scales,
                      average_last_periods=section.average_last_periods)


def _fingerprint(spec: TrainingRun, params: Params, data_info: dict) -> str:
    train = {k: getattr(params.train, k) for k in RESULT_TRAIN_KEYS}
    return fingerprint(flatten(spec.section), params.seed, train, data_info, spec.extra_params)


def train_and_track(spec: TrainingRun, params: Params, model: torch.nn.Module, task: Task,
                    device: torch.device) -> FitResult:
    """Train `model` on `task` inside an MLflow run; write the best weights and what is
    needed to use them into `spec.model_dir`."""
    data_info = read_json(spec.data_dir / "summary.json")
    fp = _fingerprint(spec, params, data_info)
    ckpt_dir = CHECKPOINTS / spec.name
    cfg = loop_config(spec.section, params, spec.lr_scales)
    if not is_main():  # under torchrun, rank 0 alone tracks and writes outputs
        return fit(model, task, cfg, device, ckpt_dir / "checkpoint.pt", fp)
    with tracking.start_run(spec.experiment, spec.stage, str(device), ckpt_dir / "run.json", fp,
                            tracking.run_name(spec.stage, params.seed), torch_tags(device)):
        tracking.log_params({**flatten(spec.section, f"{spec.name}."),
                             **flatten(params.train, "train."), **spec.extra_params,
                             "seed": params.seed, "device": params.device,
                             "world_size": world()[1], "device_used": str(device),
                             "threads": torch.get_num_threads(),
                             **tracking.data_params(data_info, read_provenance(spec.dataset))})
        tracking.log_datasets(spec.dataset, spec.inputs(), spec.data_dir, spec.dataset)
        try:
            result = fit(model, task, cfg, device, ckpt_dir / "checkpoint.pt", fp,
                         log_metrics=lambda metrics, step: mlflow.log_metrics(metrics, step=step))
        except Exception as exc:
            tracking.record_failure(exc)  # the run ends FAILED, saying why
            raise
        model.load_state_dict(result.best_state)
        # Outputs first: if the tracking store fails from here on, the model survives.
        _write_outputs(spec, task, result)
        _log_results(spec, task, result, register=full_data(params, spec.dataset))
    shutil.rmtree(ckpt_dir, ignore_errors=True)
    return result


def _summary(task: Task, result: FitResult) -> dict:
    """Where the best weights came from, in the task's words: the best epoch, or for a
    language model the best step (its evaluation periods are only where it was measured)."""
    best = {"best_epoch": result.best_period} if task.period_name == "epoch" else {}
    return {**best, "best_step": result.best_step, f"{task.period_name}s_run": len(result.history),
            "stopped_early": result.stopped_early}


def _write_outputs(spec: TrainingRun, task: Task, result: FitResult) -> None:
    history = pd.DataFrame(result.history)
    with staged_dir(spec.model_dir) as out:
        torch.save(result.best_state, out / "model.pt")
        write_json(out / "model.json", {
            "params": spec.section.model_dump(), **spec.extra_params,
            "weights_sha256": sha256_file(out / "model.pt"),
            **_summary(task, result), "best_metrics": result.best_metrics})
        history.to_csv(out / "history.csv", index=False)
        spec.write_extra(out)
    plot_dir = PLOTS / spec.name
    plot_dir.mkdir(parents=True, exist_ok=True)
    history.to_csv(plot_dir / "history.csv", index=False)
    plot_history(result.history, "step", spec.curves, plot_dir / "learning_curves.png",
                 f"{spec.name}: learning curves")
    # Its own file: the seconds differ from run to run, the history must not.
    pd.DataFrame(result.timeline).to_csv(plot_dir / "time_to_quality.csv", index=False)
    plot_time_to_quality(result.timeline, task.metric, plot_dir / "time_to_quality.png",
                         f"{spec.name}: {task.metric} against wall-clock time")


def full_data(params: Params, dataset: str) -> bool:
    """Whether the run saw its whole data set: runs on a `limit`ed one (the smoke recipe)
    are not candidates for serving, so they register no model version."""
    return getattr(params, dataset).limit is None


def torch_tags(device: torch.device) -> dict[str, str]:
    """The versions and hardware that numeric results depend on."""
    tags = {"torch_version": torch.__version__,
            "cuda_version": torch.version.cuda or "none",
            "cudnn_version": str(torch.backends.cudnn.version() or "none")}
    if device.type == "cuda":
        tags["gpu"] = torch.cuda.get_device_name(device)
    return tags


def _log_results(spec: TrainingRun, task: Task, result: FitResult, register: bool) -> None:
    # The evaluate stage finds this run again by the model's digest.
    mlflow.set_tag("model_sha256", sha256_file(spec.model_dir / "model.pt"))
    # Early stopping as metrics, so the UI can chart and compare it across runs.
    mlflow.log_metrics({**{k: float(v) for k, v in _summary(task, result).items()},
                        **{f"best_{k}": v for k, v in result.best_metrics.items()}})
    mlflow.log_artifacts(str(spec.model_dir), "outputs")
    for plot in ("learning_curves.png", "time_to_quality.png"):
        mlflow.log_artifact(str(PLOTS / spec.name / plot), "plots")
    spec.log_model(spec.model_dir, register)  # a pyfunc MLflow model (<family>/serving.py)
