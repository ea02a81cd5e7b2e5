"""What the shared training loop (`training.fit`) trains on: one Task per model.

A task says which batches make up round r, the loss of a batch and how to evaluate;
the loop does the rest. Batches of round r are a function of (seed, r) alone, so a
resumed run sees exactly the batches an uninterrupted one would.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from .data import ReviewSet, StreamBatches, iterate_streams, random_windows
from .evaluation import classification_metrics, predict_reviews, streams_loss
from .text import PAD_ID
from .runtime import shard, world

EVAL_STREAMS = 64


class SentimentTask:
    """One round = one epoch over the training reviews; validation accuracy picks the
    best epoch."""
    metric, mode, item_name = "val_accuracy", "max", "reviews"

    def __init__(self, train: ReviewSet, val: ReviewSet, p, seed: int, device: torch.device):
        self.train, self.val, self.p, self.seed, self.device = train, val, p, seed, device

    def rounds(self) -> int:
        return self.p.epochs

    def _order(self, r: int) -> list[np.ndarray]:
        batches = self.train.batches(self.p.batch_size, shuffle=True, seed=self.seed * 100_003 + r)
        # Under DDP every process needs at least one review of every batch.
        return [idx for idx in batches if len(idx) >= world()[1]]

    def steps_in_round(self, r: int) -> int:
        return len(self._order(r))

    def batches(self, r: int):
        for idx in self._order(r):
            rows, weight = shard(len(idx))
            yield self.train.batch(idx[rows]).to(self.device), weight

    def loss(self, model, batch):
        reviews, weight = batch
        logits = model(reviews.tokens, reviews.lengths)
        loss = F.binary_cross_entropy_with_logits(logits.float(), reviews.labels, reduction="sum")
        return loss * weight, len(reviews.labels)

    def evaluate(self, model) -> dict[str, float]:
        m = classification_metrics(self.val.labels, predict_reviews(model, self.val, self.device))
        return {"val_accuracy": m["accuracy"], "val_loss": m["loss"]}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class WindowBatch(NamedTuple):
    inputs: torch.Tensor
    targets: torch.Tensor
    weight: float        # makes the summed loss a per-item mean of the global batch
    new_pass: bool       # first window of a pass over the streams: start from a zero state


class CharTask:
    """One round = `eval_every` optimisation steps. Without `tbptt` (the book): random
    windows from a zero state. With it: contiguous streams, the state carried from one
    window to the next and detached, so gradients stop at the window edge."""
    metric, mode, item_name = "val_loss", "min", "chars"

    def __init__(self, train: torch.Tensor, val: torch.Tensor, p, seed: int,
                 device: torch.device, tbptt: bool | None = None):
        self.train, self.val, self.p, self.seed, self.device = train, val, p, seed, device
        tbptt = p.mode == "tbptt" if tbptt is None else tbptt
        self.streams = StreamBatches(train, p.seq_len, p.batch_size) if tbptt else None
        self.state = None

    def rounds(self) -> int:
        return math.ceil(self.p.steps / self.p.eval_every)

    def steps_in_round(self, r: int) -> int:
        return min(self.p.eval_every, self.p.steps - r * self.p.eval_every)

    def batches(self, r: int):
        # Under DDP each process takes its own rows (its own streams, with tbptt).
        rows, weight = shard(self.p.batch_size)
        weight /= self.p.seq_len
        first = r * self.p.eval_every
        if self.streams is None:
            g = torch.Generator().manual_seed(self.seed * 100_003 + r)
            for _ in range(self.steps_in_round(r)):
                x, y = random_windows(self.train, self.p.seq_len, self.p.batch_size, g)
                yield WindowBatch(x[rows].to(self.device), y[rows].to(self.device), weight, False)
        else:
            for k in range(first, first + self.steps_in_round(r)):
                x, y = self.streams.window(k)
                yield WindowBatch(x[rows].to(self.device), y[rows].to(self.device), weight,
                                  k % self.streams.windows_per_pass == 0)

    def _start_state(self, batch: WindowBatch):
        return None if (self.streams is None or batch.new_pass) else self.state

    def loss(self, model, batch: WindowBatch):
        logits, state = model(batch.inputs, self._start_state(batch))
        if self.streams is not None:
            self.state = tuple(s.detach() for s in state)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(),
                               batch.targets.reshape(-1), reduction="sum")
        return loss * batch.weight, batch.targets.numel()

    def evaluate(self, model) -> dict[str, float]:
        nats = streams_loss(model, self.val, self.device)
        return {"val_loss": nats, "val_bpc": nats / math.log(2)}

    def state_dict(self) -> dict:
        return {"state": None if self.state is None else tuple(s.cpu() for s in self.state)}

    def load_state_dict(self, state: dict) -> None:
        s = state.get("state")
        self.state = None if s is None else tuple(t.to(self.device) for t in s)


class WordLMTask(CharTask):
    """The char LM's truncated-BPTT task over words (always streams): the validation loss
    (nats/word) picks the best round."""
    item_name = "words"

    def __init__(self, train: torch.Tensor, val: torch.Tensor, p, seed: int,
                 device: torch.device):
        super().__init__(train, val, p, seed, device, tbptt=True)

    def loss(self, model, batch: WindowBatch):
        nll, state = model(batch.inputs, batch.targets, self._start_state(batch))
        self.state = tuple(s.detach() for s in state)
        return nll * batch.weight, batch.targets.numel()

    def evaluate(self, model) -> dict[str, float]:
        total, count, state = torch.zeros((), device=self.device), 0, None
        streams = min(EVAL_STREAMS, max(1, (len(self.val) - 1) // (self.p.seq_len + 1)))
        for x, y in iterate_streams(self.val, self.p.seq_len, streams):
            nll, state = model(x.to(self.device), y.to(self.device), state)
            total += nll.float()
            count += y.numel()
        loss = total.item() / count
        return {"val_loss": loss, "val_perplexity": math.exp(loss)}


def review_stream(reviews: ReviewSet, seed: int | None = None) -> torch.Tensor:
    """Every review, whole, each followed by <pad>; shuffled when `seed` is given."""
    order = np.arange(len(reviews)) if seed is None else (
        np.random.default_rng(seed).permutation(len(reviews)))
    end = np.array([PAD_ID], dtype=np.int64)
    # Whole reviews, whatever head/tail cut the classifier reads.
    parts = [part for i in order for part in (
        reviews.tokens[reviews.offsets[i]:reviews.offsets[i] + reviews.full_lengths[i]], end)]
    return torch.from_numpy(np.concatenate(parts))
