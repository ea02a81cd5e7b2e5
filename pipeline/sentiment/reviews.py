"""The prepared reviews as the models read them: one split is a view into the shared
token array (numpy and pandas only, so the TF-IDF baseline reads them without torch).

Batches are length-bucketed index arrays: bucketing keeps padding (wasted LSTM steps)
small. `sentiment/batches.py` turns an index array into right-padded tensors.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..core.inputs import load_array, read_table
from .text import PAD_ID

# What the readers below use of reviews.parquet.
TABLE_COLUMNS = ("split", "label", "n_tokens", "offset")


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

    def padded(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(token ids right-padded with PAD_ID [B, T], lengths [B], labels [B])."""
        lengths = self.lengths[indices]
        out = np.full((len(indices), int(lengths.max())), PAD_ID, dtype=np.int64)
        for row, i in enumerate(indices):
            ids = self.review(i)
            out[row, :len(ids)] = ids
        return out, lengths.astype(np.int64), self.labels[indices]

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
    tokens = load_array(prepared / "tokens.npy", "the encoded reviews", mmap_mode="r")
    table = read_table(prepared / "reviews.parquet", TABLE_COLUMNS)
    return {split: ReviewSet(tokens, part.reset_index(drop=True), head_tokens, tail_tokens)
            for split, part in table.groupby("split", sort=False)}


def review_tables(prepared: Path, splits: tuple[str, ...]) -> dict[str, pd.DataFrame]:
    """The index of the prepared reviews (no text, no tokens) of each split: what MLflow
    shows of a dataset input (schema, row count)."""
    table = read_table(prepared / "reviews.parquet", TABLE_COLUMNS)
    return {s: table[table["split"] == s].reset_index(drop=True) for s in splits
            if (table["split"] == s).any()}


def which_reviews(prepared: Path, split: str) -> pd.DataFrame:
    """The identity of a split's reviews (id, rating, label, movie), not how they were
    tokenised: two models were scored on the same reviews exactly when these agree."""
    return review_tables(prepared, (split,))[split][["id", "rating", "label", "movie"]]
