"""What both training stages do around the loop: MLflow run, params, checkpoints,
outputs written only after a successful run, artifacts."""
from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Callable

import pandas as pd
import torch

from ..config import Params, flatten
from ..evaluation import plot_history
from ..training import FitResult, LoopConfig, Task, fit, is_main, world
from .common import CHECKPOINTS, PLOTS, fingerprint, read_json, staged_dir, write_json


def loop_config(section, params: Params, lr_scales: dict | None = None) -> LoopConfig:
    return LoopConfig(lr=section.lr, weight_decay=section.weight_decay,
                      scheduler=section.scheduler, clip_grad_norm=section.clip_grad_norm,
                      patience=section.patience, checkpoint_every=params.train.checkpoint_every,
                      amp=params.train.amp, lr_scales=lr_scales or {})


def train_and_track(name: str, params: Params, section, model: torch.nn.Module, task: Task,
                    device: torch.device, data_dir: Path, model_dir: Path,
                    write_extra: Callable[[Path], None], log_model: Callable[[Path], object],
                    curves: list[str], experiment: str | None = None,
                    stage: str | None = None, extra_params: dict | None = None,
                    lr_scales: dict | None = None) -> FitResult:
    """Train `model` on `task` inside an MLflow run of `experiment` (default: `name`);
    write the best weights and everything needed to use them into `model_dir`.
    `name` is the params section, and names checkpoints, plots and (default) the stage;
    `extra_params`: other values the run depends on (logged, and part of the checkpoint's
    fingerprint); `lr_scales`: learning-rate multipliers by parameter-name prefix."""
    data_info = read_json(data_dir / "summary.json")
    extra_params = extra_params or {}
    fp = fingerprint(flatten(section), params.seed, flatten(params.train), data_info,
                     extra_params)
    ckpt_dir = CHECKPOINTS / name
    if not is_main():  # under torchrun, rank 0 alone tracks and writes outputs
        return fit(model, task, loop_config(section, params, lr_scales), device,
                   ckpt_dir / "checkpoint.pt", fp)
    import mlflow
    from .. import tracking
    with tracking.start_run(experiment or name, stage or f"train_{name}", str(device),
                            ckpt_dir / "run.json", fp):
        tracking.log_params({**flatten(section, f"{name}."), **flatten(params.train, "train."),
                             **extra_params,
                             "seed": params.seed, "device": params.device,
                             "world_size": world()[1],
                             "device_used": str(device),
                             "threads": torch.get_num_threads(),
                             **tracking.data_params(data_info)})
        result = fit(model, task, loop_config(section, params, lr_scales), device,
                     ckpt_dir / "checkpoint.pt", fp,
                     log_metrics=lambda metrics, step: mlflow.log_metrics(metrics, step=step))
        model.load_state_dict(result.best_state)

        # Outputs first: if the tracking store fails from here on, the model survives.
        history = pd.DataFrame(result.history)
        with staged_dir(model_dir) as out:
            torch.save(result.best_state, out / "model.pt")
            write_json(out / "model.json", {
                "params": dataclasses.asdict(section), **extra_params,
                "best_round": result.best_round,
                "best_step": result.best_step, "best_metrics": result.best_metrics,
                "stopped_early": result.stopped_early, "rounds_run": len(result.history)})
            history.to_csv(out / "history.csv", index=False)
            write_extra(out)
            tracking.write_run_file(out / "run.json")
        plot_dir = PLOTS / name
        plot_dir.mkdir(parents=True, exist_ok=True)
        history.to_csv(plot_dir / "history.csv", index=False)
        plot_history(result.history, "step", curves, plot_dir / "learning_curves.png",
                     f"{name}: learning curves")

        mlflow.set_tags({"best_round": result.best_round, "best_step": result.best_step,
                         "stopped_early": str(result.stopped_early).lower()})
        mlflow.log_metrics({f"best_{k}": v for k, v in result.best_metrics.items()})
        mlflow.log_artifacts(str(model_dir), "outputs")
        mlflow.log_artifact(str(plot_dir / "learning_curves.png"), "plots")
        log_model(model_dir)  # a pyfunc MLflow model, registered (pipeline/serving.py)
    shutil.rmtree(ckpt_dir, ignore_errors=True)
    return result



def final_metrics(metrics: dict) -> dict[str, float]:
    """Evaluation metrics for the training run. Validation figures get a `final_` prefix
    so they do not add a point to the training history of the same name (the char LM's
    final held-out loss is also computed differently from the per-round estimate)."""
    return {(f"final_{k}" if k.startswith("val_") else k): float(v) for k, v in metrics.items()}
