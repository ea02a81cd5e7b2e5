"""Batches for both models, from the compact arrays the prepare stages wrote.

Reviews: length-bucketed, right-padded batches. Bucketing keeps padding (wasted LSTM
steps) small; right padding plus reading each review's output at its last real token
makes the padded result equal to the unpadded one for a unidirectional LSTM.

Characters: either the book's random windows (each starts from a zero state) or
truncated BPTT over `batch_size` contiguous streams, with the state carried along.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import torch

from .text import PAD_ID


# ---------------------------------------------------------------- reviews
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


class ReviewSet:
    """One split of the prepared reviews: a view into the shared token array."""

    def __init__(self, tokens: np.ndarray, table: pd.DataFrame,
                 head_tokens: int | None = None, tail_tokens: int | None = None):
        self.tokens = tokens
        self.offsets = table["offset"].to_numpy(np.int64)
        self.full_lengths = table["n_tokens"].to_numpy(np.int64)
        self.labels = table["label"].to_numpy(np.float32)
        self.head, self.tail = head_tokens, tail_tokens
        limit = None if head_tokens is None else head_tokens + tail_tokens
        self.lengths = (self.full_lengths if limit is None
                        else np.minimum(self.full_lengths, limit))

    def __len__(self) -> int:
        return len(self.offsets)

    def review(self, i: int) -> np.ndarray:
        start, n = self.offsets[i], self.full_lengths[i]
        ids = self.tokens[start:start + n]
        if self.head is not None and n > self.head + self.tail:
            # Long reviews: the opening and the verdict at the end carry the sentiment.
            ids = np.concatenate([ids[:self.head], ids[n - self.tail:]])
        return ids

    def batch(self, indices: np.ndarray) -> ReviewBatch:
        lengths = self.lengths[indices]
        out = np.full((len(indices), int(lengths.max())), PAD_ID, dtype=np.int64)
        for row, i in enumerate(indices):
            ids = self.review(i)
            out[row, :len(ids)] = ids
        return ReviewBatch(torch.from_numpy(out), torch.from_numpy(lengths.astype(np.int64)),
                           torch.from_numpy(self.labels[indices]))

    def batches(self, batch_size: int, shuffle: bool = False, seed: int = 0,
                pool_batches: int = 50) -> list[np.ndarray]:
        """Index arrays of length-bucketed batches.

        Training: shuffle, then sort within pools of `pool_batches` batches and shuffle
        the batch order, so batches are similar in length but still random.
        Evaluation: sorted by length, the least padding.
        """
        if not shuffle:
            order = np.argsort(self.lengths, kind="stable")
            return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(self))
        pool = batch_size * pool_batches
        out = []
        for start in range(0, len(order), pool):
            chunk = order[start:start + pool]
            chunk = chunk[np.argsort(self.lengths[chunk], kind="stable")]
            out.extend(chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size))
        return [out[i] for i in rng.permutation(len(out))]


def load_reviews(prepared: Path, head_tokens: int | None = None,
                 tail_tokens: int | None = None) -> dict[str, ReviewSet]:
    """The train/val/test splits, memory-mapped: loading takes milliseconds."""
    tokens = np.load(prepared / "tokens.npy", mmap_mode="r")
    table = pd.read_parquet(prepared / "reviews.parquet")
    return {split: ReviewSet(tokens, part.reset_index(drop=True), head_tokens, tail_tokens)
            for split, part in table.groupby("split", sort=False)}


def review_tables(prepared: Path, splits: tuple[str, ...]) -> dict[str, pd.DataFrame]:
    """The index of the prepared reviews (no text, no tokens) of each split: what MLflow
    shows of a dataset input (schema, row count)."""
    table = pd.read_parquet(prepared / "reviews.parquet")
    return {s: table[table["split"] == s].reset_index(drop=True) for s in splits
            if (table["split"] == s).any()}


# ---------------------------------------------------------------- characters
def random_windows(text: torch.Tensor, seq_len: int, batch_size: int,
                   generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The book's sampling: `batch_size` random windows of seq_len + 1 characters."""
    starts = torch.randint(0, len(text) - seq_len, (batch_size,), generator=generator)
    idx = starts[:, None] + torch.arange(seq_len + 1)
    chunk = text[idx].long()
    return chunk[:, :-1], chunk[:, 1:]


class StreamBatches:
    """Truncated BPTT: the text cut into `batch_size` contiguous streams read in windows
    of `seq_len`. Row b of consecutive batches continues the same stream, so the LSTM
    state from one window is the right initial state for the next."""

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


def load_chars(prepared: Path) -> tuple[torch.Tensor, torch.Tensor]:
    train = torch.from_numpy(np.load(prepared / "train.npy").astype(np.int64))
    val = torch.from_numpy(np.load(prepared / "val.npy").astype(np.int64))
    return train, val


def iterate_streams(text: torch.Tensor, seq_len: int,
                    batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One pass over `text` as `batch_size` streams, for stateful evaluation."""
    streams = StreamBatches(text, seq_len, batch_size)
    for k in range(streams.windows_per_pass):
        yield streams.window(k)
