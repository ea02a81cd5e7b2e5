"""The text the word vectors are learned from: the training reviews and the unlabelled
ones, each review whole and followed by <pad> as an end-of-review word (no context
window reaches across it)."""
from __future__ import annotations

import logging

import numpy as np
import torch

from .reviews import ReviewSet
from .text import PAD_ID

log = logging.getLogger(__name__)


def review_stream(reviews: ReviewSet) -> torch.Tensor:
    """Every review, whole, each followed by <pad>, in file order."""
    end = np.array([PAD_ID], dtype=np.int64)
    # Whole reviews, whatever head/tail cut the classifier reads.
    parts = [part for i in range(len(reviews)) for part in (
        reviews.tokens[reviews.offsets[i]:reviews.offsets[i] + reviews.full_lengths[i]], end)]
    return torch.from_numpy(np.concatenate(parts))


def pretraining_text(splits: dict[str, ReviewSet]) -> torch.Tensor:
    """The training reviews, then the unlabelled ones (if any)."""
    parts = [splits["train"]] + ([splits["unsup"]] if "unsup" in splits else [])
    if len(parts) == 1:
        log.warning("no unlabelled reviews in the data (the archive has no train/unsup): "
                    "pretraining on the labelled training reviews only")
    return torch.cat([review_stream(part) for part in parts])
