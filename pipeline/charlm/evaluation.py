"""How well the char LSTM predicts held-out text, three ways."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .data import random_windows
from .model import CharLSTM


def loss_report(nats: float) -> dict[str, float]:
    return {"loss": nats, "bpc": nats / math.log(2), "perplexity": math.exp(nats)}


@torch.no_grad()
def stateful_loss(model: CharLSTM, text: torch.Tensor, device: torch.device,
                  chunk: int = 2000) -> float:
    """Mean next-character loss (nats) reading `text` once, front to back, carrying the
    state across chunks: how the model is used when it generates."""
    model.eval()
    total, state = 0.0, None
    for start in range(0, len(text) - 1, chunk):
        end = min(start + chunk, len(text) - 1)
        x = text[start:end][None, :].to(device)
        y = text[start + 1:end + 1].to(device)
        logits, state = model(x, state)
        total += F.cross_entropy(logits[0].float(), y, reduction="sum").item()
    return total / (len(text) - 1)


@torch.no_grad()
def streams_loss(model: CharLSTM, text: torch.Tensor, device: torch.device,
                 streams: int = 32, seq_len: int = 200) -> float:
    """Cheaper stateful estimate: `streams` contiguous pieces read in parallel (only
    each piece's first characters start from a zero state). Used during training."""
    model.eval()
    per = (len(text) - 1) // streams
    x_all = text[:per * streams].view(streams, per)
    y_all = text[1:per * streams + 1].view(streams, per)
    total, state = 0.0, None
    for start in range(0, per, seq_len):
        x = x_all[:, start:start + seq_len].to(device)
        y = y_all[:, start:start + seq_len].to(device)
        logits, state = model(x, state)
        total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1),
                                 reduction="sum").item()
    return total / (per * streams)


@torch.no_grad()
def windowed_loss(model: CharLSTM, text: torch.Tensor, device: torch.device, seq_len: int = 40,
                  batch_size: int = 256, windows: int = 4096, seed: int = 0) -> float:
    """The book's training view: random windows, each from a zero state."""
    model.eval()
    g = torch.Generator().manual_seed(seed)
    total, count = 0.0, 0
    for _ in range(0, windows, batch_size):
        x, y = random_windows(text, seq_len, batch_size, g)
        logits, _ = model(x.to(device))
        total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(),
                                 y.to(device).reshape(-1), reduction="sum").item()
        count += y.numel()
    return total / count
