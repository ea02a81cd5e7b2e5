"""What the training loop trains the classifier on: one evaluation period is one epoch
over the training reviews, and validation accuracy picks the best epoch.

The batches of epoch r are a function of (seed, r) alone, so a resumed run sees exactly
the batches an uninterrupted one would.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..core.config import SentimentParams
from ..training.runtime import shard, world
from .batches import review_batch
from .metrics import classification_metrics
from .predict import predict_reviews
from .reviews import ReviewSet


class SentimentTask:
    metric, mode, item_name, period_name = "val_accuracy", "max", "reviews", "epoch"

    def __init__(self, train: ReviewSet, val: ReviewSet, p: SentimentParams, seed: int,
                 device: torch.device):
        self.train, self.val, self.p, self.seed, self.device = train, val, p, seed, device

    def periods(self) -> int:
        return self.p.epochs

    def period_label(self, r: int) -> str:
        return f"epoch {r + 1}/{self.p.epochs}"

    def _order(self, r: int) -> list[np.ndarray]:
        batches = self.train.batches(self.p.batch_size, shuffle=True, seed=self.seed * 100_003 + r)
        # Under DDP every process needs at least one review of every batch.
        return [idx for idx in batches if len(idx) >= world()[1]]

    def steps_in_period(self, r: int) -> int:
        return len(self._order(r))

    def batches(self, r: int):
        for idx in self._order(r):
            rows, weight = shard(len(idx))
            yield review_batch(self.train, idx[rows]).to(self.device), weight

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
