"""The review tokenizer and the word vocabulary.

The tokenizer is the book's: drop HTML tags, keep emoticons, lower-case, split on
non-word characters. Two fixes over the book's version: emoticons are matched before
lower-casing (the book lower-cased first, so `:D` and `:P` were never found), and they
are appended as separate tokens (the book glued the first one onto the last word).
"""
from __future__ import annotations

import multiprocessing
import re
from collections import Counter
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ..core.inputs import bad, read_text

PAD, UNK = "<pad>", "<unk>"
PAD_ID, UNK_ID = 0, 1

_HTML_TAG = re.compile(r"<[^>]*>")
_EMOTICON = re.compile(r"(?::|;|=)(?:-)?(?:\)|\(|D|P)")
_NON_WORD = re.compile(r"[\W]+")


def tokenize(text: str) -> list[str]:
    text = _HTML_TAG.sub("", text)
    emoticons = [e.replace("-", "") for e in _EMOTICON.findall(text)]
    # Emoticons are cut out before splitting, so `:D` does not also leave a word `d`.
    words = _NON_WORD.sub(" ", _EMOTICON.sub(" ", text).lower()).split()
    return words + emoticons


def tokenize_many(texts: Sequence[str], processes: int | None = None) -> list[list[str]]:
    """Tokenize in parallel: the regexes are CPU-bound and hold the GIL."""
    processes = processes or multiprocessing.cpu_count()
    if processes <= 1 or len(texts) < 2000:
        return [tokenize(t) for t in texts]
    ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods()
                                      else "spawn")
    with ctx.Pool(processes) as pool:
        return pool.map(tokenize, texts, chunksize=max(1, len(texts) // (processes * 8)))


def known_words_text(texts: Iterable[str], words: frozenset[str]) -> list[str]:
    """Raw reviews as the TF-IDF baseline reads them: tokens joined by spaces (tokens never
    hold one), a word outside `words` as <unk>, as in the prepared data. Module-level, so
    a served scikit-learn pipeline refers to it by name instead of pickling code."""
    if hasattr(texts, "columns"):  # MLflow's pyfunc hands over a one-column DataFrame
        texts = texts.iloc[:, 0]
    return [" ".join(t if t in words else UNK for t in tokenize(str(text))) for text in texts]


class Vocab:
    """Token <-> index. Index 0 is <pad>, 1 is <unk>, then tokens by falling frequency
    (ties broken alphabetically, so the order never depends on dict iteration order)."""

    def __init__(self, tokens: Sequence[str]):
        self.itos = list(tokens)
        if self.itos[:2] != [PAD, UNK]:
            raise ValueError("a vocabulary starts with <pad>, <unk>")
        self.stoi = {t: i for i, t in enumerate(self.itos)}

    @classmethod
    def build(cls, tokenized: Iterable[Sequence[str]], min_freq: int = 1,
              max_size: int | None = None) -> "Vocab":
        counts = Counter()
        for tokens in tokenized:
            counts.update(tokens)
        ranked = sorted((t for t, c in counts.items() if c >= min_freq),
                        key=lambda t: (-counts[t], t))
        if max_size is not None:
            ranked = ranked[:max_size]
        return cls([PAD, UNK, *ranked])

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, tokens: Sequence[str]) -> np.ndarray:
        get = self.stoi.get
        return np.fromiter((get(t, UNK_ID) for t in tokens), dtype=np.int32, count=len(tokens))

    def save(self, path: Path) -> None:
        Path(path).write_text("\n".join(self.itos) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> "Vocab":
        text = read_text(path, "a vocabulary (one word per line)")
        # save() ends the file with a newline and starts it with the two special tokens.
        if not text.endswith("\n"):
            raise bad(path, "does not end with a newline: truncated")
        words = text.splitlines()
        if words[:2] != [PAD, UNK]:
            raise bad(path, f"does not start with {PAD} and {UNK}: not a vocabulary")
        return cls(words)


def encode_reviews(tokenized: Sequence[Sequence[str]],
                   vocab: Vocab) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(all token ids concatenated, length of each review, offset of each review).

    A review with no token (only punctuation or markup) becomes one <unk>, so that it
    still has a last position for the classifier to read."""
    encoded = [vocab.encode(t) for t in tokenized]
    encoded = [e if len(e) else np.array([UNK_ID], dtype=np.int32) for e in encoded]
    lengths = np.array([len(e) for e in encoded], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    tokens = np.concatenate(encoded).astype(np.int32) if encoded else np.zeros(0, np.int32)
    return tokens, lengths, offsets
