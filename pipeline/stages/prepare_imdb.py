"""Stage prepare_imdb: tokenise every review once, split off validation, build the
vocabulary from the training part, encode to compact integer arrays plus a pandas index
of every review. The unlabelled reviews (split `unsup`, if the archive has them) are
encoded with the same vocabulary, for pretraining only."""
from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd

from ..core import logs
from ..core.command import stage_command
from ..core.config import Params
from ..core.errors import ConfigError
from ..core.inputs import read_json, read_table
from ..core.outputs import PREPARED_IMDB, RAW_IMDB, staged_dir, write_json
from ..sentiment.text import UNK_ID, Vocab, encode_reviews, tokenize_many

log = logging.getLogger(__name__)


def split_train_val(train: pd.DataFrame, val_size: int, split_by: str, seed: int) -> np.ndarray:
    """Boolean mask of the validation part of the training reviews.

    split_by="movie": whole movies go to validation (reviews of one movie are alike, and
    test movies are disjoint from training movies, so a random split flatters
    validation); split_by="random": the book's split.
    """
    if val_size >= len(train):
        raise ConfigError(f"imdb.val_size={val_size} leaves no training reviews "
                          f"(there are {len(train)})")
    rng = np.random.default_rng(seed)
    if split_by == "random":
        mask = np.zeros(len(train), dtype=bool)
        mask[rng.permutation(len(train))[:val_size]] = True
        return mask
    # A review without a known movie is its own group.
    groups = np.where(train["movie"] == "unknown",
                      "review-" + train["label"].astype(str) + "-" + train["id"].astype(str),
                      train["movie"]).astype(str)
    sizes = pd.Series(groups).value_counts()
    movies = rng.permutation(np.sort(sizes.index.to_numpy()))
    chosen, total = [], 0
    for movie in movies:  # fill the validation part with whole movies, up to val_size
        n = int(sizes[movie])
        if total + n <= val_size:
            chosen.append(movie)
            total += n
        if total == val_size:
            break
    return np.isin(groups, chosen)


def _split(table: pd.DataFrame, p, seed: int) -> pd.DataFrame:
    """The table with split train/val/test (and unsup), ordered by split, label and id."""
    table = table.sort_values(["split", "label", "id"], kind="stable").reset_index(drop=True)
    train_rows = table.index[table["split"] == "train"]
    is_val = split_train_val(table.loc[train_rows], p.val_size, p.split_by, seed)
    table.loc[train_rows[is_val], "split"] = "val"
    order = {"train": 0, "val": 1, "test": 2, "unsup": 3}
    return (table.assign(_order=table["split"].map(order))
            .sort_values(["_order", "label", "id"], kind="stable")
            .drop(columns="_order").reset_index(drop=True))


def _summary(index: pd.DataFrame, vocab: Vocab, tokens: np.ndarray, read_stats: dict) -> dict:
    lengths = index["n_tokens"].to_numpy()
    splits = ("train", "val", "test")
    part = {s: index[index["split"] == s] for s in splits}
    return {
        "reviews": {s: len(part[s]) for s in splits},
        "unlabelled": int((index["split"] == "unsup").sum()),
        "positive": {s: int(part[s]["label"].sum()) for s in splits},
        "movies": {s: int(part[s]["movie"].nunique()) for s in splits},
        "val_movies_in_train": len(set(part["val"]["movie"]) & set(part["train"]["movie"])
                                   - {"unknown"}),
        "vocab_size": len(vocab),
        "tokens": int(lengths.sum()),
        "tokens_per_review": {"median": float(np.median(lengths)),
                              "p90": float(np.percentile(lengths, 90)),
                              "max": int(lengths.max())},
        "unk_rate": round(float(np.mean(tokens == UNK_ID)), 6),
        "bad_utf8": read_stats["bad_utf8"], "bad_utf8_files": read_stats["bad_utf8_files"],
        "empty_dropped": read_stats["empty_dropped"],
    }


def prepare_imdb(params: Params) -> dict:
    """Tokenise every review once; split; build the vocabulary; encode to arrays."""
    p = params.imdb
    raw = read_table(RAW_IMDB / "reviews.parquet", ("split", "text", "label"),
                     "the acquired IMDb reviews")
    started = time.perf_counter()
    table = _split(raw, p, params.seed)
    tokenized = tokenize_many(list(logs.progress(table["text"], desc="tokenise", unit="review")))
    vocab = Vocab.build((t for t, s in zip(tokenized, table["split"]) if s == "train"),
                        min_freq=p.min_freq, max_size=p.max_vocab)
    tokens, lengths, offsets = encode_reviews(tokenized, vocab)
    index = table.drop(columns=["text"]).assign(n_tokens=lengths, offset=offsets)
    with staged_dir(PREPARED_IMDB) as out:
        np.save(out / "tokens.npy", tokens)
        index.to_parquet(out / "reviews.parquet", index=False, write_page_checksum=True)
        vocab.save(out / "vocab.txt")
        summary = _summary(index, vocab, tokens, read_json(RAW_IMDB / "summary.json"))
        write_json(out / "summary.json", summary)
    log.info(f"prepared {len(index):,} reviews ({summary['unlabelled']:,} unlabelled), "
             f"vocabulary {len(vocab):,} in {time.perf_counter() - started:.1f} s "
             f"-> {PREPARED_IMDB}")
    return summary


main = stage_command(prepare_imdb)

if __name__ == "__main__":
    main()
