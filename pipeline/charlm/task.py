"""What the training loop trains the char LSTM on.

Without TBPTT (`charlm.mode: windows`, the book): random windows, each from a zero
state. With it (`tbptt`): contiguous streams, the state carried from one window to the
next (training/lm.py).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..core.config import CharLMParams
from ..training.lm import LanguageModelTask, WindowBatch
from .data import random_windows
from .evaluation import streams_loss


class CharTask(LanguageModelTask):
    item_name = "chars"

    def __init__(self, train: torch.Tensor, val: torch.Tensor, p: CharLMParams, seed: int,
                 device: torch.device):
        super().__init__(train, val, p, seed, device, tbptt=p.mode == "tbptt")

    def batches(self, r: int):
        if self.streams is not None:
            yield from super().batches(r)
            return
        rows, weight = self._rows()
        # The windows of evaluation period r depend on (seed, r) alone: a resumed run
        # draws the same ones.
        g = torch.Generator().manual_seed(self.seed * 100_003 + r)
        for _ in range(self.steps_in_period(r)):
            x, y = random_windows(self.train, self.p.seq_len, self.p.batch_size, g)
            yield WindowBatch(x[rows].to(self.device), y[rows].to(self.device), weight, False)

    def window_loss(self, model, inputs, targets, state):
        logits, state = model(inputs, state)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(),
                               targets.reshape(-1), reduction="sum")
        return loss, state

    def evaluate(self, model) -> dict[str, float]:
        nats = streams_loss(model, self.val, self.device)
        return {"val_loss": nats, "val_bpc": nats / math.log(2)}
