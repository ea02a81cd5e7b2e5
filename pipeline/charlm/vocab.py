"""The character vocabulary: the book's `char2int` / `int2char`."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ..core.inputs import bad, read_json


class CharVocab:
    """Characters sorted by code point."""

    def __init__(self, chars: Sequence[str]):
        self.itos = list(chars)
        self.stoi = {c: i for i, c in enumerate(self.itos)}

    @classmethod
    def build(cls, text: str) -> "CharVocab":
        return cls(sorted(set(text)))

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, text: str) -> np.ndarray:
        unknown = set(text) - self.stoi.keys()
        if unknown:
            raise ValueError(f"characters not in the vocabulary: {''.join(sorted(unknown))!r}")
        return np.array([self.stoi[c] for c in text], dtype=np.int32)

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.itos[int(i)] for i in ids)

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.itos, ensure_ascii=False) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> "CharVocab":
        chars = read_json(path, "a character vocabulary (a JSON list)")
        if not isinstance(chars, list) or not all(isinstance(c, str) for c in chars):
            raise bad(path, "is not a JSON list of characters")
        return cls(chars)
