"""The encoded book as tensors, and the book's way of sampling training windows."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..core.inputs import load_array


def load_chars(prepared: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """(training text, held-out tail) as int64 character ids."""
    train, val = (torch.from_numpy(load_array(prepared / name, "the encoded book")
                                   .astype(np.int64)) for name in ("train.npy", "val.npy"))
    return train, val


def random_windows(text: torch.Tensor, seq_len: int, batch_size: int,
                   generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The book's sampling: `batch_size` random windows of seq_len + 1 characters."""
    starts = torch.randint(0, len(text) - seq_len, (batch_size,), generator=generator)
    idx = starts[:, None] + torch.arange(seq_len + 1)
    chunk = text[idx].long()
    return chunk[:, :-1], chunk[:, 1:]
