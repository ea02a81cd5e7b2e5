"""The data each benchmark runs on: the prepared data when it exists, else synthetic
data of the same shape, so the benchmarks also run on a fresh clone."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

from benchutil import data_root


# ---------------------------------------------------------------- synthetic data
# Shapes taken from the real prepared IMDb data (summary.json of a full `dvc repro`):
# 50,000 reviews, 11.77 M tokens (mean 235), median 177, p90 459, max 2,498 tokens;
# vocabulary 68,781. A log-normal with median 177 and sigma 0.75 has mean 234 and
# p90 463; lengths are clipped to [4, 2500].
SYN_VOCAB = 70_000
SYN_MEDIAN, SYN_SIGMA, SYN_MAX = 177.0, 0.75, 2500
SYN_BOOK_CHARS, SYN_BOOK_SYMBOLS = 1_100_000, 80
_SENTIMENT_WORDS = 300  # per class: ranks 100-399 positive, 400-699 negative


def _rng(seed: int):
    import numpy as np
    return np.random.default_rng(seed)


def _zipf_cdf(n: int, s: float = 1.0, q: float = 2.7):
    import numpy as np
    p = 1.0 / (np.arange(1, n + 1) + q) ** s
    return np.cumsum(p / p.sum())


def synthetic_lengths(n: int, seed: int):
    import numpy as np
    rng = _rng(seed)
    x = rng.lognormal(math.log(SYN_MEDIAN), SYN_SIGMA, n)
    return np.clip(np.round(x), 4, SYN_MAX).astype(np.int64)


def synthetic_encoded(n: int, seed: int, vocab_size: int = SYN_VOCAB):
    """n reviews as token ids (int32, ids 2..vocab_size-1 by Zipf rank), lengths, labels.

    The labels are learnable: about 4% of each review's tokens are drawn from 300
    "sentiment words" of its class (and a quarter of those from the other class's),
    so an accuracy comparison on synthetic data is not a coin toss."""
    import numpy as np
    rng = _rng(seed + 7)
    lengths = synthetic_lengths(n, seed)
    labels = rng.integers(0, 2, n).astype(np.float32)
    total = int(lengths.sum())
    cdf = _zipf_cdf(vocab_size - 2)
    ids = (np.searchsorted(cdf, rng.random(total), side="right").clip(0, vocab_size - 3) + 2)
    review_of = np.repeat(np.arange(n), lengths)
    senti = rng.random(total) < 0.04
    own = rng.random(total) < 0.75
    positive = (labels[review_of] == 1) == own
    word = rng.integers(0, _SENTIMENT_WORDS, total)
    ids = np.where(senti, np.where(positive, 102 + word, 102 + _SENTIMENT_WORDS + word), ids)
    return ids.astype(np.int32), lengths, labels


def synthetic_review_table(lengths, labels, splits: Sequence[str]):
    """The columns of reviews.parquet that ReviewSet and load_reviews read."""
    import numpy as np
    import pandas as pd
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    return pd.DataFrame({"split": list(splits), "id": np.arange(len(lengths), dtype=np.int64),
                         "label": labels.astype(np.int64), "n_tokens": lengths.astype(np.int64),
                         "offset": offsets})


def synthetic_words(vocab_size: int = SYN_VOCAB, seed: int = 0) -> list[str]:
    """vocab_size made-up lower-case words, frequent ones short (Zipf-like); index i is
    the word of token id i (0 and 1 are <pad> and <unk>)."""
    rng = _rng(seed + 11)
    letters = "etaoinshrdlcumwfgypbvkjxqz"
    weights = _zipf_cdf(26, 1.1, 1.0)
    words, seen = ["<pad>", "<unk>"], set()
    rank = 0
    while len(words) < vocab_size:
        length = int(min(15, max(1, round(2 + 0.45 * math.log1p(rank) + rng.normal(0, 1.0)))))
        w = "".join(letters[i] for i in weights.searchsorted(rng.random(length)))
        if w not in seen:
            seen.add(w)
            words.append(w)
            rank += 1
    return words


def synthetic_texts(ids, lengths, words: Sequence[str], seed: int) -> list[str]:
    """Review texts whose book-style tokenisation gives back exactly these token ids:
    words with commas, full stops, capitals and the IMDb `<br /><br />` breaks."""
    import numpy as np
    rng = _rng(seed + 13)
    w = np.array(words, dtype=object)
    forms = [w, w + ",", w + ".", np.array([s.capitalize() for s in words], dtype=object),
             w + ". <br /><br />"]
    table_ = np.stack(forms, axis=1)  # [vocab, 5]
    form = np.searchsorted(np.cumsum([0.80, 0.07, 0.07, 0.05, 0.01]), rng.random(len(ids)),
                           side="right").clip(0, 4)
    tokens = table_[ids, form]
    out, start = [], 0
    for n in lengths:
        out.append(" ".join(tokens[start:start + n]))
        start += n
    return out


def synthetic_book(n_chars: int = SYN_BOOK_CHARS, n_symbols: int = SYN_BOOK_SYMBOLS,
                   seed: int = 0):
    """Encoded text (uint8 ids) with a skewed symbol distribution like a novel's."""
    import numpy as np
    rng = _rng(seed + 17)
    cdf = _zipf_cdf(n_symbols, 1.3, 2.0)
    return np.searchsorted(cdf, rng.random(n_chars), side="right").clip(0, n_symbols - 1).astype(np.uint8)


# ---------------------------------------------------------------- real data, or synthetic
def prepared_imdb_dir(args) -> Path | None:
    d = data_root(args) / "prepared" / "imdb"
    ok = (d / "tokens.npy").exists() and (d / "reviews.parquet").exists() and (d / "vocab.txt").exists()
    return d if ok and not args.synthetic else None


def raw_imdb_reviews(args):
    """The acquired reviews (split, id, label, text, ...) as a DataFrame, or None."""
    path = data_root(args) / "raw" / "imdb" / "reviews.parquet"
    if args.synthetic or not path.exists():
        return None
    import pandas as pd
    return pd.read_parquet(path)


def prepared_book_dir(args) -> Path | None:
    d = data_root(args) / "prepared" / "gutenberg"
    return d if (d / "train.npy").exists() and not args.synthetic else None


def load_book(args):
    """(encoded training text as an int64 tensor, vocabulary size, description)."""
    import json as _json
    import numpy as np
    import torch
    d = prepared_book_dir(args)
    if d is not None:
        train = np.load(d / "train.npy")
        vocab = len(_json.loads((d / "chars.json").read_text(encoding="utf-8")))
        return (torch.from_numpy(train.astype(np.int64)), vocab,
                f"real: {d} ({len(train):,} training characters, {vocab} symbols)")
    text = synthetic_book(seed=args.seed)
    return (torch.from_numpy(text.astype(np.int64)), SYN_BOOK_SYMBOLS,
            f"synthetic: {len(text):,} characters, {SYN_BOOK_SYMBOLS} symbols "
            f"(no prepared book under {data_root(args)})")
