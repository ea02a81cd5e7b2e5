"""Review batches as tensors: right-padded token ids, lengths and labels.

Right padding plus reading each review's output at its last real token makes the padded
result equal to the unpadded one for a unidirectional LSTM.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .reviews import ReviewSet


@dataclass
class ReviewBatch:
    tokens: torch.Tensor   # [B, T] int64, right-padded with PAD_ID
    lengths: torch.Tensor  # [B] int64, >= 1
    labels: torch.Tensor   # [B] float32, 1.0 = positive

    def to(self, device: torch.device) -> "ReviewBatch":
        nb = device.type == "cuda"
        return ReviewBatch(self.tokens.to(device, non_blocking=nb),
                           self.lengths.to(device, non_blocking=nb),
                           self.labels.to(device, non_blocking=nb))


def review_batch(reviews: ReviewSet, indices: np.ndarray) -> ReviewBatch:
    """The reviews at `indices` as one padded batch."""
    tokens, lengths, labels = reviews.padded(indices)
    return ReviewBatch(torch.from_numpy(tokens), torch.from_numpy(lengths),
                       torch.from_numpy(labels))
