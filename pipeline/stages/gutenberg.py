"""Gutenberg stages: acquire (download, record digest, strip the licence) and prepare
(character vocabulary, encoded text, held-out tail)."""
from __future__ import annotations

import numpy as np
from tqdm.auto import tqdm

from ..config import Params
from ..text import CharVocab
from .common import PREPARED_BOOK, RAW_BOOK, read_json, require, staged_dir, write_json
from .imdb import download_path


def acquire_gutenberg(params: Params) -> dict:
    from ..download import fetch
    from ..sources import strip_gutenberg
    p = params.gutenberg
    source = fetch(p.url, download_path(p.url), p.sha256)
    text = strip_gutenberg(download_path(p.url).read_bytes())
    if p.limit is not None:
        text = text[:p.limit]
    with staged_dir(RAW_BOOK) as out:
        (out / "book.txt").write_text(text, encoding="utf-8", newline="\n")
        summary = {"source": source, "characters": len(text), "limit": p.limit}
        write_json(out / "source.json", summary)
    tqdm.write(f"book: {len(text):,} characters after stripping the licence")
    return summary


def prepare_gutenberg(params: Params) -> dict:
    p = params.gutenberg
    text = require(RAW_BOOK / "book.txt", "the stripped book", "acquire_gutenberg").read_text(
        encoding="utf-8")
    # The vocabulary covers the whole book, so the held-out tail never meets an unknown
    # character; it carries no other information about the tail.
    vocab = CharVocab.build(text)
    encoded = vocab.encode(text)
    dtype = np.uint8 if len(vocab) <= 256 else np.int32
    split = int(len(encoded) * (1 - p.val_fraction))
    with staged_dir(PREPARED_BOOK) as out:
        np.save(out / "train.npy", encoded[:split].astype(dtype))
        np.save(out / "val.npy", encoded[split:].astype(dtype))
        vocab.save(out / "chars.json")
        summary = {"characters": len(encoded), "train_characters": split,
                   "val_characters": len(encoded) - split, "vocab_size": len(vocab),
                   "source": read_json(RAW_BOOK / "source.json")["source"]}
        write_json(out / "summary.json", summary)
    return summary
