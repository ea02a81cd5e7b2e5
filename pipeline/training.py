"""The one training loop both models share.

A model plugs in through a `Task`: which batches make up round r, the loss of a batch,
and how to evaluate. A round is an epoch (sentiment) or `eval_every` steps (char LM);
after each round the model is evaluated, the best weights are kept, and every
`checkpoint_every` rounds a checkpoint is written from which a killed run resumes.

Batches of round r are a function of (seed, r) alone, and the checkpoint holds the
model, optimizer, scheduler and RNG states, so a resumed run on CPU ends bit-identical
to an uninterrupted one.
"""
from __future__ import annotations

import copy
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol

import numpy as np
import torch
from tqdm.auto import tqdm

from .errors import ConfigError, TrainingDiverged


# ---------------------------------------------------------------- runtime set-up
def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device: {name!r} asked for, but CUDA is not available here "
                          "(use device: auto or cpu)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device: 'mps' asked for, but MPS is not available here "
                          "(use device: auto or cpu)")
    return device


def world() -> tuple[int, int]:
    """(rank, world size): (0, 1) unless started by torchrun."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def is_main() -> bool:
    return world()[0] == 0


def setup_runtime(seed: int, device_name: str, deterministic: bool = False,
                  num_threads: int | None = None) -> torch.device:
    """Seeds, threads, (on CUDA, if asked) deterministic kernels, and the process group
    when torchrun started this process (NCCL on CUDA, Gloo on CPU)."""
    # Denormal floats flush to zero (x86; a no-op where unsupported). The embedding's tiny
    # gradients and Adam moments of rarely seen words fall into the denormal range, where
    # each CPU operation on them is many times slower (benchmarks/README.md). First, so
    # the thread pool inherits it.
    torch.set_flush_denormal(True)
    if deterministic:
        # cuBLAS reads this when CUDA initialises, so it is set before anything else.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    device = resolve_device(device_name)
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed and not torch.distributed.is_initialized():
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if num_threads is None and distributed and device.type == "cpu":
        # Processes sharing the cores: oversubscribed OpenMP threads spin and crawl.
        num_threads = max(1, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    torch.set_num_threads(num_threads or os.cpu_count() or 1)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    return device


def setup_for(params) -> torch.device:
    """setup_runtime with a stage's params."""
    return setup_runtime(params.seed, params.device, params.train.deterministic,
                         params.train.num_threads)


def shard(global_size: int) -> tuple[slice, float]:
    """This rank's rows of a global batch, and the loss weight that makes DDP's gradient
    average equal the single-process gradient of the whole batch: each rank returns
    sum(its losses) * world / global_size, DDP divides the sum over ranks by world."""
    rank, size = world()
    return slice(rank, None, size), size / global_size


# ---------------------------------------------------------------- the task interface
class Task(Protocol):
    metric: str      # the validation metric that picks the best round, e.g. "val_accuracy"
    mode: str        # "max" or "min"
    item_name: str   # what throughput counts: "reviews" or "chars"

    def rounds(self) -> int: ...
    def steps_in_round(self, r: int) -> int: ...
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
    patience: int | None
    checkpoint_every: int
    amp: bool = False
    log_every: int = 50
    # Learning-rate multipliers by parameter-name prefix, e.g. {"lstm.": 0.3}: a pretrained
    # encoder is fine-tuned slower than the new layers on top of it.
    lr_scales: dict = field(default_factory=dict)


@dataclass
class FitResult:
    best_state: dict
    best_round: int
    best_step: int
    best_metrics: dict
    history: list[dict] = field(default_factory=list)
    stopped_early: bool = False


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


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
             "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_atomic(obj: Any, path: Path) -> None:
    """torch.save to a temporary name, then rename: a kill never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _better(value: float, best: float | None, mode: str) -> bool:
    return best is None or (value > best if mode == "max" else value < best)


# ---------------------------------------------------------------- the loop
def fit(model: torch.nn.Module, task: Task, cfg: LoopConfig, device: torch.device,
        checkpoint: Path | None = None, fingerprint: str = "",
        log_metrics: Callable[[dict, int], None] = lambda metrics, step: None) -> FitResult:
    """Train `model` on `task`; return the best weights by the task's validation metric.

    `checkpoint`: where to save and resume from. A checkpoint whose `fingerprint`
    (params + data digests) differs from this run's is ignored, never resumed.
    `log_metrics(metrics, step)`: where metrics go (MLflow, in the stages).
    """
    model.to(device)
    rank, size = world()
    # DDP averages gradients across processes after backward; the unwrapped `model` is
    # what gets evaluated and saved.
    trainable = model if size == 1 else torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None)
    total_steps = sum(task.steps_in_round(r) for r in range(task.rounds()))
    optimizer, scheduler = make_optimizer(model, cfg, total_steps)
    use_amp = cfg.amp and device.type == "cuda"

    start_round, step = 0, 0
    best_metric, best_round, best_step, best_metrics, best_state = None, -1, 0, {}, None
    bad_rounds, history = 0, []
    if checkpoint is not None and checkpoint.exists():
        # Every rank resumes from the one checkpoint rank 0 wrote.
        ckpt = torch.load(checkpoint, map_location="cpu", weights_only=False)
        if ckpt.get("fingerprint") == fingerprint:
            model.load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
            scheduler.load_state_dict(ckpt["scheduler"])
            task.load_state_dict(ckpt["task"])
            _set_rng_state(ckpt["rng"])
            start_round, step = ckpt["next_round"], ckpt["step"]
            best_metric, best_round, best_step = ckpt["best_metric"], ckpt["best_round"], ckpt["best_step"]
            best_metrics, best_state = ckpt["best_metrics"], ckpt["best_state"]
            bad_rounds, history = ckpt["bad_rounds"], ckpt["history"]
            tqdm.write(f"resuming from {checkpoint} at round {start_round} (step {step})")
        else:
            tqdm.write(f"ignoring {checkpoint}: it belongs to other params or data")

    stopped_early = False
    for r in range(start_round, task.rounds()):
        trainable.train()
        window_losses, window_norms, window_items = [], [], 0
        window_start = time.perf_counter()
        round_loss_sum, round_batches = torch.zeros((), device=device), 0
        steps_in_round = task.steps_in_round(r)
        bar = tqdm(task.batches(r), total=steps_in_round, desc=f"round {r + 1}/{task.rounds()}",
                   unit="batch", leave=False, mininterval=1.0, disable=rank != 0)
        for batch in bar:
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp):
                loss, n_items = task.loss(trainable, batch)
            loss.backward()
            # The norm *before* clipping is what shows explosions being clipped.
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad_norm)
            optimizer.step()
            scheduler.step()
            step += 1
            # Losses stay on the device; one host sync per log window, not per step.
            window_losses.append(loss.detach())
            window_norms.append(norm.detach())
            window_items += n_items
            round_loss_sum += loss.detach()
            round_batches += 1
            if len(window_losses) == cfg.log_every or round_batches == steps_in_round:
                losses = torch.stack(window_losses).float()
                if size > 1:  # the logged loss is the mean over all ranks
                    torch.distributed.all_reduce(losses)
                    losses /= size
                losses = losses.cpu()
                bad = (~torch.isfinite(losses)).nonzero()
                if len(bad):
                    first = step - len(losses) + int(bad[0]) + 1
                    raise TrainingDiverged(
                        f"loss became {losses[int(bad[0])].item()} at step {first} (round {r + 1});"
                        " no model output was written. Lower the learning rate or the clip norm.")
                norms = torch.stack(window_norms).float().cpu()
                elapsed = time.perf_counter() - window_start
                log_metrics({"train_loss_step": losses.mean().item(),
                             "grad_norm": norms.mean().item(),
                             "grad_norm_max": norms.max().item(),
                             "clipped_fraction": (norms > cfg.clip_grad_norm).float().mean().item(),
                             "lr": scheduler.get_last_lr()[0],
                             f"{task.item_name}_per_s": window_items * size / max(elapsed, 1e-9)}, step)
                bar.set_postfix(loss=f"{losses.mean().item():.4f}")
                window_losses, window_norms, window_items = [], [], 0
                window_start = time.perf_counter()

        if size > 1:
            torch.distributed.all_reduce(round_loss_sum)
            round_loss_sum /= size
        train_loss = (round_loss_sum / max(round_batches, 1)).item()
        model.eval()
        with torch.no_grad(), torch.autocast(device_type=device.type, dtype=torch.bfloat16,
                                             enabled=use_amp):
            metrics = task.evaluate(model)
        row = {"round": r + 1, "step": step, "train_loss": train_loss, **metrics}
        history.append(row)
        log_metrics({"train_loss": train_loss, **metrics, "round": r + 1}, step)
        if rank == 0:
            tqdm.write("  ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                                 for k, v in row.items()))

        if _better(metrics[task.metric], best_metric, task.mode):
            best_metric, best_round, best_step, best_metrics = metrics[task.metric], r + 1, step, metrics
            best_state = copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
            bad_rounds = 0
        else:
            bad_rounds += 1
        done = r + 1 == task.rounds()
        if cfg.patience is not None and bad_rounds >= cfg.patience and not done:
            tqdm.write(f"early stop: no better {task.metric} for {bad_rounds} rounds")
            stopped_early = True
        # No checkpoint at an early stop: a re-run resumes from the one before and
        # reaches the same stop, rather than training on past it.
        if (checkpoint is not None and rank == 0 and (r + 1) % cfg.checkpoint_every == 0
                and not done and not stopped_early):
            save_atomic({"fingerprint": fingerprint, "model": model.state_dict(),
                         "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                         "task": task.state_dict(), "rng": _rng_state(),
                         "next_round": r + 1, "step": step, "best_metric": best_metric,
                         "best_round": best_round, "best_step": best_step,
                         "best_metrics": best_metrics, "best_state": best_state,
                         "bad_rounds": bad_rounds, "history": history}, checkpoint)
        if stopped_early:
            break

    return FitResult(best_state, best_round, best_step, best_metrics, history, stopped_early)

