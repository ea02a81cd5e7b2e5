"""A toy task for the shared training loop (pipeline.training.loop.fit).

It is deliberately shaped like the real ones: a recurrent model read as
truncated-BPTT streams whose LSTM state the task carries from batch to batch (task
state that a checkpoint must hold), per-epoch batches that are a function of
(seed, epoch), and dropout plus input noise drawn from the global RNG (RNG state that
a checkpoint must hold).
"""
from __future__ import annotations

import io

import torch
from torch import nn

from pipeline.training.runtime import setup_runtime
from pipeline.training.loop import LoopConfig, fit

CPU = torch.device("cpu")


class Killed(Exception):
    """Stands in for the process being killed."""


class ToyRNN(nn.Module):
    def __init__(self, hidden: int = 8, dropout: float = 0.2):
        super().__init__()
        self.lstm = nn.LSTM(1, hidden, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x, state=None):
        out, state = self.lstm(x.unsqueeze(-1), state)
        return self.head(self.drop(out)).squeeze(-1), state


class ToyTask:
    """Predict the next value of a noisy sine wave, read as `streams` contiguous streams."""
    metric, mode, item_name, period_name = "val_loss", "min", "values", "epoch"

    def __init__(self, seed: int, n_periods: int = 4, steps: int = 5, streams: int = 4,
                 seq_len: int = 10, kill_at_step: int | None = None,
                 nan_at_step: int | None = None, loss_scale: float = 1.0,
                 scripted: list | None = None, on_loss=None):
        g = torch.Generator().manual_seed(1234)  # the data set is fixed; `seed` is the run's
        series = torch.sin(torch.arange(1201, dtype=torch.float32) * 0.15)
        series = series + 0.1 * torch.randn(1201, generator=g)
        per = (1000 - 1) // streams
        self.x = series[:per * streams].view(streams, per)
        self.y = series[1:per * streams + 1].view(streams, per)
        self.val = series[1000:]
        self.seed, self.n_periods, self.steps, self.seq_len = seed, n_periods, steps, seq_len
        self.windows = per // seq_len
        self.kill_at_step, self.nan_at_step = kill_at_step, nan_at_step
        self.loss_scale, self.on_loss = loss_scale, on_loss
        self.scripted = scripted
        if scripted is not None:
            self.metric, self.mode = "val_accuracy", "max"
        self.state = None
        self.calls = 0            # loss() calls in this process
        self.periods_seen: list[int] = []
        self.captured: dict[int, dict] = {}  # epoch (1-based) -> weights at evaluate()
        self.current_period = None

    # --- Task protocol
    def periods(self) -> int:
        return self.n_periods

    def steps_in_period(self, r: int) -> int:
        return self.steps

    def period_label(self, r: int) -> str:
        return f"epoch {r + 1}/{self.n_periods}"

    def batches(self, r: int):
        self.periods_seen.append(r)
        self.current_period = r
        g = torch.Generator().manual_seed(self.seed * 100_003 + r)
        for k in range(r * self.steps, (r + 1) * self.steps):
            start = (k % self.windows) * self.seq_len
            scale = 0.5 + torch.rand((), generator=g)  # per-(seed, epoch) randomness
            yield (scale * self.x[:, start:start + self.seq_len],
                   scale * self.y[:, start:start + self.seq_len],
                   k % self.windows == 0)

    def loss(self, model, batch):
        self.calls += 1
        if self.on_loss is not None:
            self.on_loss(model, self.calls)
        if self.kill_at_step is not None and self.calls == self.kill_at_step:
            raise Killed(f"killed at loss call {self.calls}")
        x, y, new_pass = batch
        x = x + 0.01 * torch.randn(x.shape)  # global RNG
        pred, state = model(x, None if new_pass else self.state)
        self.state = tuple(s.detach() for s in state)
        loss = ((pred - y) ** 2).mean() * self.loss_scale
        if self.nan_at_step is not None and self.calls == self.nan_at_step:
            loss = loss * float("nan")
        return loss, y.numel()

    def evaluate(self, model):
        assert not model.training
        r = self.current_period + 1
        self.captured[r] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if self.scripted is not None:  # each epoch: accuracy, or (accuracy, loss)
            scripted = self.scripted[r - 1]
            if isinstance(scripted, tuple):
                return {"val_accuracy": scripted[0], "val_loss": scripted[1]}
            return {"val_accuracy": scripted}
        pred, _ = model(self.val[None, :-1])
        return {"val_loss": ((pred[0] - self.val[1:]) ** 2).mean().item()}

    def state_dict(self) -> dict:
        return {"state": self.state}

    def load_state_dict(self, state: dict) -> None:
        self.state = state["state"]


def config(**kw) -> LoopConfig:
    args = dict(lr=0.01, weight_decay=0.0, scheduler="none", clip_grad_norm=1.0, patience=None,
                checkpoint_every=1, log_every=2)
    args.update(kw)
    return LoopConfig(**args)


def train(seed: int, cfg: LoopConfig | None = None, checkpoint=None, fingerprint: str = "fp",
          init_seed: int | None = None, log=None, **task_kw):
    """A fresh 'process': seed the runtime, build model and task, train. `init_seed`
    seeds the runtime differently from the run's seed (another process state)."""
    setup_runtime(seed if init_seed is None else init_seed, "cpu", num_threads=1)
    model = ToyRNN()
    task = ToyTask(seed, **task_kw)
    result = fit(model, task, cfg or config(), CPU, checkpoint=checkpoint,
                 fingerprint=fingerprint,
                 log_metrics=log if log is not None else (lambda m, s: None))
    return model, task, result


def to_bytes(state: dict) -> bytes:
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def assert_same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def differs(a: dict, b: dict) -> bool:
    return any(not torch.equal(a[k], b[k]) for k in a)
