"""What the training loop trains the char LSTM on.

Without TBPTT (`charlm.mode: windows`, the book): random windows, each from a zero
state. With it (`tbptt`), truncated backpropagation through time: the text is cut into
`batch_size` contiguous streams read in windows of `seq_len`. Row b of consecutive
batches continues the same stream, so the LSTM state at the end of one window is the
right initial state for the next; it is detached there, so gradients stop at the window
edge.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F

from ..core.config import CharLMParams
from ..training.runtime import shard
from .data import random_windows
from .evaluation import streams_loss


class StreamBatches:
    """The text as `batch_size` contiguous streams, read in windows of `seq_len`."""

    def __init__(self, text: torch.Tensor, seq_len: int, batch_size: int):
        per_stream = (len(text) - 1) // batch_size
        if per_stream < seq_len:
            raise ValueError(f"text of {len(text)} characters is too short for "
                             f"{batch_size} streams of at least {seq_len + 1}")
        self.inputs = text[:per_stream * batch_size].view(batch_size, per_stream).long()
        self.targets = text[1:per_stream * batch_size + 1].view(batch_size, per_stream).long()
        self.seq_len = seq_len
        self.windows_per_pass = per_stream // seq_len

    def window(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Window k (wrapping around the text); k % windows_per_pass == 0 starts a pass."""
        start = (k % self.windows_per_pass) * self.seq_len
        return (self.inputs[:, start:start + self.seq_len],
                self.targets[:, start:start + self.seq_len])


class WindowBatch(NamedTuple):
    inputs: torch.Tensor
    targets: torch.Tensor
    weight: float        # makes the summed loss a per-item mean of the global batch
    new_pass: bool       # first window of a pass over the streams: start from a zero state


class CharTask:
    """`steps` optimisation steps, evaluated every `eval_every` steps; the validation loss
    picks the best evaluation."""
    metric, mode, period_name = "val_loss", "min", "evaluation"
    item_name = "chars"

    def __init__(self, train: torch.Tensor, val: torch.Tensor, p: CharLMParams, seed: int,
                 device: torch.device):
        self.train, self.val, self.p, self.seed, self.device = train, val, p, seed, device
        self.streams = (StreamBatches(train, p.seq_len, p.batch_size)
                        if p.mode == "tbptt" else None)
        self.state = None

    def periods(self) -> int:
        return self.p.evaluations

    def steps_in_period(self, r: int) -> int:
        return min(self.p.eval_every, self.p.steps - r * self.p.eval_every)

    def period_label(self, r: int) -> str:
        first = r * self.p.eval_every
        return f"steps {first + 1}-{first + self.steps_in_period(r)}/{self.p.steps}"

    def batches(self, r: int):
        # Under DDP each process takes its own rows (its own streams).
        rows, weight = shard(self.p.batch_size)
        weight /= self.p.seq_len
        first = r * self.p.eval_every
        if self.streams is not None:
            for k in range(first, first + self.steps_in_period(r)):
                x, y = self.streams.window(k)
                yield WindowBatch(x[rows].to(self.device), y[rows].to(self.device), weight,
                                  k % self.streams.windows_per_pass == 0)
            return
        # The windows of evaluation period r depend on (seed, r) alone: a resumed run
        # draws the same ones.
        g = torch.Generator().manual_seed(self.seed * 100_003 + r)
        for _ in range(self.steps_in_period(r)):
            x, y = random_windows(self.train, self.p.seq_len, self.p.batch_size, g)
            yield WindowBatch(x[rows].to(self.device), y[rows].to(self.device), weight, False)

    def loss(self, model, batch: WindowBatch):
        start = None if (self.streams is None or batch.new_pass) else self.state
        logits, state = model(batch.inputs, start)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(),
                               batch.targets.reshape(-1), reduction="sum")
        if self.streams is not None:
            self.state = tuple(s.detach() for s in state)
        return loss * batch.weight, batch.targets.numel()

    def evaluate(self, model) -> dict[str, float]:
        nats = streams_loss(model, self.val, self.device)
        return {"val_loss": nats, "val_bpc": nats / math.log(2)}

    def state_dict(self) -> dict:
        return {"state": None if self.state is None else tuple(s.cpu() for s in self.state)}

    def load_state_dict(self, state: dict) -> None:
        s = state.get("state")
        self.state = None if s is None else tuple(t.to(self.device) for t in s)
