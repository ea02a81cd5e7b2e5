"""IMDb stages: acquire (download, verify, extract, check, gather the 50,000 labelled
reviews into one parquet table) and prepare (tokenise once, split, vocabulary, compact
integer arrays plus a pandas index of every review)."""
from __future__ import annotations

import hashlib
import shutil
import time
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ..config import ConfigError, Params
from ..text import Vocab, tokenize_many
from .common import (DOWNLOADS, PREPARED_IMDB, RAW_IMDB, read_json, require, staged_dir,
                     write_json)


def download_path(url: str) -> Path:
    """A cache name per URL, so a changed URL never reuses another source's file."""
    name = Path(urlparse(url).path).name or "download"
    return DOWNLOADS / f"{hashlib.sha256(url.encode()).hexdigest()[:10]}-{name}"


def acquire_imdb(params: Params) -> dict:
    from ..download import fetch
    from ..sources import extract_imdb, load_reviews
    p = params.imdb
    source = fetch(p.url, download_path(p.url), p.sha256)
    with staged_dir(RAW_IMDB) as out:
        tree = out / "extracted"
        counts = extract_imdb(download_path(p.url), tree, limit=p.limit,
                              expected_per_class=p.expected_per_class)
        table, read_stats = load_reviews(tree / "aclImdb", p.bad_utf8)
        # One table instead of 50,000 small files: DVC hashes and checks one file, so
        # a `dvc repro` with nothing to do stays fast.
        shutil.rmtree(tree)
        table.to_parquet(out / "reviews.parquet", index=False)
        summary = {"source": source, **counts, **read_stats}
        write_json(out / "source.json", summary)
    return summary


def split_train_val(train: pd.DataFrame, val_size: int, split_by: str, seed: int) -> np.ndarray:
    """Boolean mask of the validation part of the training reviews.

    split_by="movie": whole movies go to validation (reviews of one movie are alike, and
    test movies are disjoint from training movies, so a random split flatters
    validation by about a point); split_by="random": the book's split.
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


def prepare_imdb(params: Params) -> dict:
    p = params.imdb
    raw = require(RAW_IMDB / "reviews.parquet", "acquired IMDb reviews", "acquire_imdb")
    started = time.perf_counter()
    table = pd.read_parquet(raw)
    read_stats = read_json(RAW_IMDB / "source.json")
    table = table.sort_values(["split", "label", "id"], kind="stable").reset_index(drop=True)

    train_rows = table.index[table["split"] == "train"]
    is_val = split_train_val(table.loc[train_rows], p.val_size, p.split_by, params.seed)
    table.loc[train_rows[is_val], "split"] = "val"
    order = {"train": 0, "val": 1, "test": 2}
    table = (table.assign(_order=table["split"].map(order))
             .sort_values(["_order", "label", "id"], kind="stable")
             .drop(columns="_order").reset_index(drop=True))

    tokenized = tokenize_many(list(tqdm(table["text"], desc="tokenise", unit="review",
                                        mininterval=1.0)))
    vocab = Vocab.build((t for t, s in zip(tokenized, table["split"]) if s == "train"),
                        min_freq=p.min_freq, max_size=p.max_vocab)
    encoded = [vocab.encode(t) for t in tokenized]
    lengths = np.array([len(e) for e in encoded], dtype=np.int64)
    if (lengths == 0).any():
        # A review of only punctuation or markup: give it one <unk> so it still has a
        # last position to read; the counts say how many.
        encoded = [e if len(e) else np.array([1], dtype=np.int32) for e in encoded]
        lengths = np.maximum(lengths, 1)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    index = table.drop(columns=["text"]).assign(n_tokens=lengths, offset=offsets)

    unk_rate = float(np.mean(np.concatenate(encoded) == 1))
    with staged_dir(PREPARED_IMDB) as out:
        np.save(out / "tokens.npy", np.concatenate(encoded).astype(np.int32))
        index.to_parquet(out / "reviews.parquet", index=False)
        vocab.save(out / "vocab.txt")
        summary = {
            "reviews": {s: int((index["split"] == s).sum()) for s in order},
            "positive": {s: int(index.loc[index["split"] == s, "label"].sum()) for s in order},
            "movies": {s: int(index.loc[index["split"] == s, "movie"].nunique()) for s in order},
            "val_movies_in_train": int(len(set(index.loc[index["split"] == "val", "movie"])
                                           & set(index.loc[index["split"] == "train", "movie"])
                                           - {"unknown"})),
            "vocab_size": len(vocab),
            "tokens": int(lengths.sum()),
            "tokens_per_review": {"median": float(np.median(lengths)),
                                  "p90": float(np.percentile(lengths, 90)),
                                  "max": int(lengths.max())},
            "unk_rate": round(unk_rate, 6),
            "bad_utf8": read_stats["bad_utf8"], "bad_utf8_files": read_stats["bad_utf8_files"],
            "empty_dropped": read_stats["empty_dropped"],
            # What was downloaded (URL, sha256, bytes, time): logged with every run on it.
            "source": read_stats["source"],
        }
        write_json(out / "summary.json", summary)
    tqdm.write(f"prepared {len(index)} reviews, vocabulary {len(vocab)} "
               f"in {time.perf_counter() - started:.1f} s")
    return summary
