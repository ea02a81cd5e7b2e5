"""The one training loop every neural model shares.

A model plugs in through a `Task`, which splits training into evaluation periods: an
epoch for the classifier, `eval_every` steps for the language model. After each period
the model is evaluated, the best weights are kept, and every `checkpoint_every` periods a
checkpoint is written from which a killed run resumes. With `average_last_periods: n`
the weights after every step of the last n periods are averaged (stochastic weight
averaging), and in those periods the average is what is evaluated and kept.

Batches of period r are a function of (seed, r) alone, and the checkpoint holds the
model, optimizer, scheduler and RNG states, so a resumed run on CPU ends bit-identical
to an uninterrupted one.
"""
from __future__ import annotations

import copy
import dataclasses
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol

import torch
from torch.optim.swa_utils import AveragedModel

from ..core import logs
from ..core.errors import TrainingDiverged
from . import cores
from .checkpoint import load_checkpoint, save_checkpoint, set_rng_state
from .runtime import is_main, world

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- the task interface
class Task(Protocol):
    metric: str       # the validation metric that picks the best period, e.g. "val_accuracy"
    mode: str         # "max" or "min"
    item_name: str    # what throughput counts: "reviews", "chars", "words"
    period_name: str  # what a period is called in metrics and outputs: "epoch", "evaluation"

    def periods(self) -> int: ...
    def period_label(self, r: int) -> str: ...   # for the progress bar: "epoch 2/3"
    def steps_in_period(self, r: int) -> int: ...
    def batches(self, r: int) -> Iterable[Any]: ...
    def loss(self, model: torch.nn.Module, batch: Any) -> tuple[torch.Tensor, int]: ...
    def evaluate(self, model: torch.nn.Module) -> dict[str, float]: ...
    def state_dict(self) -> dict: ...
    def load_state_dict(self, state: dict) -> None: ...


@dataclass
class LoopConfig:
    lr: float
    weight_decay: float
    scheduler: str            # "none" | "cosine"
    clip_grad_norm: float
    patience: int | None      # periods without a better metric before stopping
    checkpoint_every: int     # periods
    amp: bool = False
    log_every: int = 50       # steps
    # Learning-rate multipliers by parameter-name prefix, e.g. {"lstm.": 0.3}: a pretrained
    # encoder is fine-tuned slower than the new layers on top of it.
    lr_scales: dict = field(default_factory=dict)
    # Average the weights of every step in this many last periods; None: no average.
    average_last_periods: int | None = None


@dataclass
class FitResult:
    best_state: dict
    best_period: int          # 1-based: the best epoch, or the best evaluation
    best_step: int
    best_metrics: dict
    history: list[dict] = field(default_factory=list)
    stopped_early: bool = False
    timeline: list[dict] = field(default_factory=list)  # step, seconds, metric


@dataclass
class LoopState:
    """Where training stands: saved and restored whole with every checkpoint."""
    next_period: int = 0
    step: int = 0
    best_metric: float | None = None
    best_period: int = -1
    best_step: int = 0
    best_metrics: dict = field(default_factory=dict)
    best_state: dict | None = None
    bad_periods: int = 0
    history: list = field(default_factory=list)
    # Wall-clock seconds of training and evaluation so far (over resumes), and the
    # validation metric at each evaluation against them: kept apart from the history,
    # which must come out the same on every run.
    seconds: float = 0.0
    timeline: list = field(default_factory=list)


def make_optimizer(model: torch.nn.Module, cfg: LoopConfig, total_steps: int):
    # The fused kernel updates each weight in one pass instead of one pass per
    # operation (the large embedding's update is several times cheaper on CPU); on a GPU
    # the whole update is one launch (small steps are launch-bound there).
    fused = next(model.parameters()).device.type in ("cpu", "cuda")
    params = _param_groups(model, cfg.lr, cfg.lr_scales) if cfg.lr_scales else model.parameters()
    optimizer = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay,
                                 fused=fused or None)
    if cfg.scheduler == "cosine":
        schedule = lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps))
    else:
        schedule = lambda step: 1.0
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)


def _param_groups(model: torch.nn.Module, lr: float, scales: dict) -> list[dict]:
    """One optimizer group per learning rate; the unscaled group first (its rate is the
    one logged)."""
    groups: dict[float, list] = {1.0: []}
    for name, param in model.named_parameters():
        scale = next((s for prefix, s in scales.items() if name.startswith(prefix)), 1.0)
        groups.setdefault(scale, []).append(param)
    return [{"params": params, "lr": lr * scale} for scale, params in groups.items() if params]


def _better(metrics: dict, state: LoopState, task: Task) -> bool:
    """Is this period better than the best so far by the task's metric? On a tie, the
    lower validation loss wins: accuracy on a small validation set ties often, and the
    earlier period is not the better one for having come first."""
    value, best = metrics[task.metric], state.best_metric
    if best is None:
        return True
    if value != best:
        return value > best if task.mode == "max" else value < best
    return metrics.get("val_loss", math.inf) < state.best_metrics.get("val_loss", math.inf)


# ---------------------------------------------------------------- the loop
@dataclass
class _Training:
    """What one fit() call trains with, so the helpers below take one argument."""
    model: torch.nn.Module
    trainable: torch.nn.Module   # `model`, or its DDP wrapper
    task: Task
    cfg: LoopConfig
    device: torch.device
    optimizer: torch.optim.Optimizer
    scheduler: Any
    log_metrics: Callable[[dict, int], None]
    averaged: AveragedModel | None = None   # with average_last_periods

    def averaging(self, r: int) -> bool:
        return (self.averaged is not None
                and r >= self.task.periods() - self.cfg.average_last_periods)

    def scored(self, r: int) -> torch.nn.Module:
        """What period r evaluates and may keep: the average, once there is one."""
        return self.averaged.module if self.averaging(r) else self.model


def _resume(t: _Training, checkpoint: Path | None, fingerprint: str) -> LoopState:
    ckpt = load_checkpoint(checkpoint, fingerprint)
    if ckpt is None:
        return LoopState()
    t.model.load_state_dict(ckpt["model"])
    t.optimizer.load_state_dict(ckpt["optimizer"])
    t.scheduler.load_state_dict(ckpt["scheduler"])
    t.task.load_state_dict(ckpt["task"])
    if t.averaged is not None:
        t.averaged.load_state_dict(ckpt["averaged"])
    set_rng_state(ckpt["rng"])
    state = LoopState(**ckpt["loop"])
    log.info("resuming from %s at %s (step %d)", checkpoint,
             t.task.period_label(state.next_period), state.step)
    return state


def _save(t: _Training, state: LoopState, checkpoint: Path, fingerprint: str) -> None:
    save_checkpoint(checkpoint, fingerprint, model=t.model.state_dict(),
                    optimizer=t.optimizer.state_dict(), scheduler=t.scheduler.state_dict(),
                    task=t.task.state_dict(),
                    averaged=None if t.averaged is None else t.averaged.state_dict(),
                    loop=dataclasses.asdict(state))


def _log_window(t: _Training, losses: list, norms: list, items: int, seconds: float,
                step: int, r: int) -> float:
    """Metrics of the last `log_every` steps (one host sync); raise on a NaN/inf loss."""
    size = world()[1]
    losses = torch.stack(losses).float()
    if size > 1:  # the logged loss is the mean over all ranks
        torch.distributed.all_reduce(losses)
        losses /= size
    losses = losses.cpu()
    bad = (~torch.isfinite(losses)).nonzero()
    if len(bad):
        first = step - len(losses) + int(bad[0]) + 1
        raise TrainingDiverged(
            f"loss became {losses[int(bad[0])].item()} at step {first} "
            f"({t.task.period_label(r)}); no model output was written. Lower the learning "
            "rate or the clip norm.")
    norms = torch.stack(norms).float().cpu()
    t.log_metrics({"train_loss_step": losses.mean().item(),
                   "grad_norm": norms.mean().item(), "grad_norm_max": norms.max().item(),
                   "clipped_fraction": (norms > t.cfg.clip_grad_norm).float().mean().item(),
                   "lr": t.scheduler.get_last_lr()[0],
                   f"{t.task.item_name}_per_s": items * size / max(seconds, 1e-9)}, step)
    return losses.mean().item()


def _train_period(t: _Training, state: LoopState, r: int) -> float:
    """One period of optimisation steps; the mean training loss over its batches."""
    t.trainable.train()
    use_amp = t.cfg.amp and t.device.type == "cuda"
    steps = t.task.steps_in_period(r)
    window_losses, window_norms, window_items = [], [], 0
    window_start = time.perf_counter()
    period_loss_sum, period_batches = torch.zeros((), device=t.device), 0
    average = t.averaging(r)
    bar = logs.progress(t.task.batches(r), total=steps, desc=t.task.period_label(r),
                        unit="batch", leave=False, disable=None if is_main() else True)
    for batch in bar:
        cores.rebalance()  # another torch process started or ended: take a fair share
        t.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device_type=t.device.type, dtype=torch.bfloat16, enabled=use_amp):
            loss, n_items = t.task.loss(t.trainable, batch)
        loss.backward()
        # The norm *before* clipping is what shows explosions being clipped.
        norm = torch.nn.utils.clip_grad_norm_(t.model.parameters(), t.cfg.clip_grad_norm)
        t.optimizer.step()
        t.scheduler.step()
        if average:
            t.averaged.update_parameters(t.model)
        state.step += 1
        # Losses stay on the device; one host sync per log window, not per step.
        window_losses.append(loss.detach())
        window_norms.append(norm.detach())
        window_items += n_items
        period_loss_sum += loss.detach()
        period_batches += 1
        if len(window_losses) == t.cfg.log_every or period_batches == steps:
            mean = _log_window(t, window_losses, window_norms, window_items,
                               time.perf_counter() - window_start, state.step, r)
            bar.set_postfix(loss=f"{mean:.4f}")
            window_losses, window_norms, window_items = [], [], 0
            window_start = time.perf_counter()
    if world()[1] > 1:
        torch.distributed.all_reduce(period_loss_sum)
        period_loss_sum /= world()[1]
    return (period_loss_sum / max(period_batches, 1)).item()


def _evaluate_period(t: _Training, state: LoopState, r: int, train_loss: float,
                     started: float) -> None:
    """Evaluate, log, and keep the weights if they are the best so far. `started`: when
    period r began (perf_counter), for the time-to-quality curve."""
    scored = t.scored(r)
    scored.eval()
    with torch.no_grad(), torch.autocast(device_type=t.device.type, dtype=torch.bfloat16,
                                         enabled=t.cfg.amp and t.device.type == "cuda"):
        metrics = t.task.evaluate(scored)
    state.seconds += time.perf_counter() - started
    row = {t.task.period_name: r + 1, "step": state.step, "train_loss": train_loss, **metrics}
    state.history.append(row)
    state.timeline.append({"step": state.step, "seconds": round(state.seconds, 1),
                           t.task.metric: metrics[t.task.metric]})
    # The step is the x-axis of every metric; an epoch number is worth a chart of its own.
    # The seconds let the UI chart quality against time, what one more minute buys.
    period = {"epoch": r + 1} if t.task.period_name == "epoch" else {}
    t.log_metrics({"train_loss": train_loss, **metrics, **period,
                   "wall_seconds": state.seconds}, state.step)
    if is_main():
        log.info("  ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                           for k, v in row.items()))
    if _better(metrics, state, t.task):
        state.best_metric, state.best_period, state.best_step = (metrics[t.task.metric], r + 1,
                                                                 state.step)
        state.best_metrics = metrics
        state.best_state = copy.deepcopy({k: v.detach().cpu()
                                          for k, v in scored.state_dict().items()})
        state.bad_periods = 0
    else:
        state.bad_periods += 1
    state.next_period = r + 1


def fit(model: torch.nn.Module, task: Task, cfg: LoopConfig, device: torch.device,
        checkpoint: Path | None = None, fingerprint: str = "",
        log_metrics: Callable[[dict, int], None] = lambda metrics, step: None) -> FitResult:
    """Train `model` on `task`; return the best weights by the task's validation metric.

    `checkpoint`: where to save and resume from. A checkpoint whose `fingerprint`
    (params + data digests) differs from this run's is ignored, never resumed.
    `log_metrics(metrics, step)`: where metrics go (MLflow, in the stages).
    """
    model.to(device)
    # DDP averages gradients across processes after backward; the unwrapped `model` is
    # what gets evaluated and saved.
    trainable = model if world()[1] == 1 else torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None)
    total_steps = sum(task.steps_in_period(r) for r in range(task.periods()))
    optimizer, scheduler = make_optimizer(model, cfg, total_steps)
    averaged = None if cfg.average_last_periods is None else AveragedModel(model, use_buffers=True)
    t = _Training(model, trainable, task, cfg, device, optimizer, scheduler, log_metrics,
                  averaged)
    state = _resume(t, checkpoint, fingerprint)

    stopped_early = False
    for r in range(state.next_period, task.periods()):
        started = time.perf_counter()
        _evaluate_period(t, state, r, _train_period(t, state, r), started)
        done = r + 1 == task.periods()
        if cfg.patience is not None and state.bad_periods >= cfg.patience and not done:
            log.info("early stop: no better %s for %d %ss", task.metric, state.bad_periods,
                     task.period_name)
            stopped_early = True
        # No checkpoint at an early stop: a re-run resumes from the one before and
        # reaches the same stop, rather than training on past it.
        if (checkpoint is not None and is_main() and (r + 1) % cfg.checkpoint_every == 0
                and not done and not stopped_early):
            _save(t, state, checkpoint, fingerprint)
        if stopped_early:
            break
    return FitResult(state.best_state, state.best_period, state.best_step, state.best_metrics,
                     state.history, stopped_early, state.timeline)
