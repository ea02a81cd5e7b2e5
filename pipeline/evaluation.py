"""Metrics, plots and text generation."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .data import ReviewSet, random_windows
from .models import CharLSTM, SentimentLSTM


# ---------------------------------------------------------------- sentiment
@torch.no_grad()
def predict_reviews(model: SentimentLSTM, reviews: ReviewSet, device: torch.device,
                    batch_size: int = 256) -> np.ndarray:
    """Probability of 'positive' for every review, in the set's order."""
    model.eval()
    probs = np.empty(len(reviews), dtype=np.float64)
    for idx in reviews.batches(batch_size):
        b = reviews.batch(idx).to(device)
        probs[idx] = torch.sigmoid(model(b.tokens, b.lengths).float()).cpu().numpy()
    return probs


def classification_metrics(labels: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    from sklearn import metrics as skm  # heavy import, only where needed
    labels = labels.astype(int)
    pred = (probs >= 0.5).astype(int)
    eps = 1e-7
    clipped = np.clip(probs, eps, 1 - eps)
    loss = float(-np.mean(labels * np.log(clipped) + (1 - labels) * np.log(1 - clipped)))
    p, r, f1, _ = skm.precision_recall_fscore_support(labels, pred, average="binary",
                                                      zero_division=0)
    auc = skm.roc_auc_score(labels, probs) if len(set(labels)) == 2 else float("nan")
    return {"accuracy": float(skm.accuracy_score(labels, pred)), "loss": loss,
            "precision": float(p), "recall": float(r), "f1": float(f1), "roc_auc": float(auc)}


def plot_confusion(labels: np.ndarray, probs: np.ndarray, path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import confusion_matrix
    cm = confusion_matrix(labels.astype(int), (probs >= 0.5).astype(int), labels=[0, 1])
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.imshow(cm, cmap="Blues")
    for (i, j), v in np.ndenumerate(cm):
        ax.text(j, i, f"{v}", ha="center", va="center",
                color="white" if v > cm.max() / 2 else "black")
    ax.set_xticks([0, 1], ["negative", "positive"])
    ax.set_yticks([0, 1], ["negative", "positive"])
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_history(history: list[dict], x: str, series: list[str], path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    xs = [row[x] for row in history]
    for name in series:
        ax.plot(xs, [row[name] for row in history], marker="o", label=name)
    ax.set_xlabel(x)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ---------------------------------------------------------------- char LM
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
