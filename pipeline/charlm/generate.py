"""Using the trained char LSTM: loading it from the stage's output, and sampling text
with a temperature (the book's "scale factor")."""
from __future__ import annotations

from pathlib import Path

import torch

from ..core.config import CharLMParams
from ..core.inputs import CHARLM_MODEL
from ..core.outputs import MODEL_CHARLM
from ..training.trained import load_trained
from .model import CharLSTM, build_charlm
from .vocab import CharVocab


def load_charlm(model_dir: Path = MODEL_CHARLM, device="cpu"):
    """The trained char LSTM, its character vocabulary, its params and model.json."""
    return load_trained(model_dir, CHARLM_MODEL, CharLMParams, CharVocab.load, "chars.json",
                        build_charlm, "generate", device)


@torch.no_grad()
def generate(model: CharLSTM, vocab, prime: str, length: int, temperature: float = 1.0,
             top_k: int | None = None, seed: int = 0, device: torch.device | str = "cpu") -> str:
    """Sample `length` characters after `prime`. Logits are divided by `temperature`
    (the book multiplies them by a 'scale factor' = 1 / temperature). Seeded: the same
    arguments give the same text."""
    if temperature <= 0:
        raise ValueError("temperature must be positive")
    model.eval()
    device = torch.device(device)
    g = torch.Generator(device="cpu").manual_seed(seed)
    ids = torch.as_tensor(vocab.encode(prime), dtype=torch.long, device=device)[None, :]
    logits, state = model(ids)
    out = []
    for _ in range(length):
        last = logits[0, -1].float().cpu() / temperature
        if top_k is not None and top_k < last.numel():
            kth = torch.topk(last, top_k).values[-1]
            last = last.masked_fill(last < kth, float("-inf"))
        nxt = torch.multinomial(torch.softmax(last, dim=-1), 1, generator=g)
        out.append(int(nxt))
        logits, state = model(nxt.view(1, 1).to(device), state)
    return prime + vocab.decode(out)
