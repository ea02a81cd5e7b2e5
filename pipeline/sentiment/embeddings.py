"""Word vectors from the reviews' own text: PPMI + truncated SVD.

Counting which words occur near which (a co-occurrence matrix), weighting the counts by
positive pointwise mutual information and keeping the top singular directions gives
word vectors in which "awful" sits near "terrible" and "boring" near "dull" (Levy,
Goldberg & Dagan 2015: with these settings about as good as word2vec). One sparse count
and one randomized SVD, no gradient descent: far cheaper than a word language model on
a CPU. The sentiment model then starts from these vectors instead of random ones.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.utils.extmath import randomized_svd

CONTEXT_SMOOTHING = 0.75  # context counts ** 0.75: rare contexts get less inflated PMI


def cooccurrence(stream: np.ndarray, boundary: int, vocab_size: int,
                 window: int) -> sp.csr_matrix:
    """Symmetric counts of word pairs at most `window` apart, each pair weighted
    1 / distance (near words say more). `boundary` ends each review: no pair spans it."""
    stream = np.asarray(stream, dtype=np.int64)
    review = np.cumsum(stream == boundary)  # changes at every boundary token
    rows, cols, weights = [], [], []
    for d in range(1, window + 1):
        left, right = stream[:-d], stream[d:]
        keep = (review[d:] == review[:-d]) & (left != boundary)
        rows += [left[keep], right[keep]]
        cols += [right[keep], left[keep]]
        weights += [np.full(2 * int(keep.sum()), 1.0 / d, dtype=np.float64)]
    counts = sp.coo_matrix((np.concatenate(weights),
                            (np.concatenate(rows).astype(np.int32),
                             np.concatenate(cols).astype(np.int32))),
                           shape=(vocab_size, vocab_size))
    return counts.tocsr()  # sums the duplicates


def ppmi(counts: sp.csr_matrix) -> sp.csr_matrix:
    """max(0, log p(w, c) / (p(w) p_smoothed(c))), kept sparse."""
    total = counts.sum()
    words = np.asarray(counts.sum(axis=1)).ravel()
    contexts = words ** CONTEXT_SMOOTHING
    coo = counts.tocoo()
    pmi = (np.log(coo.data * total)
           - np.log(words[coo.row]) - np.log(contexts[coo.col] * total / contexts.sum()))
    keep = pmi > 0
    return sp.csr_matrix((pmi[keep].astype(np.float32), (coo.row[keep], coo.col[keep])),
                         shape=counts.shape)


def svd_vectors(matrix: sp.csr_matrix, dim: int, seed: int) -> np.ndarray:
    """[vocab, dim] vectors U sqrt(S), scaled to unit standard deviation (the scale of
    nn.Embedding's own N(0, 1) start). Seeded, so the same counts give the same bytes."""
    rank = min(dim, min(matrix.shape) - 1)
    u, s, _ = randomized_svd(matrix, rank, n_iter=5, random_state=seed)
    vectors = np.zeros((matrix.shape[0], dim), dtype=np.float64)
    vectors[:, :rank] = u * np.sqrt(s)
    std = vectors.std()
    return (vectors / std if std > 0 else vectors).astype(np.float32)


def nearest(vectors: np.ndarray, words: list[str], probes: list[str],
            k: int = 8) -> dict[str, list[str]]:
    """The k nearest words (cosine) to each probe word: a look at what was learned."""
    index = {w: i for i, w in enumerate(words)}
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    out = {}
    for probe in probes:
        if probe in index:
            sims = unit @ unit[index[probe]]
            sims[index[probe]] = -np.inf
            out[probe] = [words[j] for j in np.argsort(-sims, kind="stable")[:k]]
    return out
