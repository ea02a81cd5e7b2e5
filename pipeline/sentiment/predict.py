"""Using the trained classifier: loading it from the stage's output and scoring reviews,
prepared or raw text. Used by the evaluate stage, `predict` and the MLflow model; imports
neither the training code nor MLflow."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..core.config import SentimentParams
from ..core.inputs import SENTIMENT_MODEL, InputError, read_text, require
from ..core.outputs import MODEL_PRETRAIN, MODEL_SENTIMENT
from ..training.trained import load_tensors, load_trained
from .batches import review_batch
from .model import SentimentLSTM, build_sentiment
from .reviews import ReviewSet
from .text import Vocab, encode_reviews, tokenize_many


@torch.no_grad()
def predict_reviews(model: SentimentLSTM, reviews: ReviewSet, device: torch.device,
                    batch_size: int = 256) -> np.ndarray:
    """Probability of 'positive' for every review, in the set's order."""
    model.eval()
    probs = np.empty(len(reviews), dtype=np.float64)
    for idx in reviews.batches(batch_size):
        b = review_batch(reviews, idx).to(device)
        probs[idx] = torch.sigmoid(model(b.tokens, b.lengths).float()).cpu().numpy()
    return probs


def load_sentiment_model(model_dir: Path = MODEL_SENTIMENT, device="cpu"):
    """The trained classifier, its vocabulary, its params and model.json."""
    return load_trained(model_dir, SENTIMENT_MODEL, SentimentParams, Vocab.load, "vocab.txt",
                        build_sentiment, "predict", device)


# Raw text is scored on at most this many tokens: the first and last half of them (the
# opening and the verdict, as in training). The longest review of the data set has fewer,
# so no test figure depends on it; it bounds the time one huge input can take.
MAX_TOKENS = 4000


@dataclass(frozen=True)
class Prediction:
    label: str | None     # "positive", "negative", or None: no word the model knows
    probability: float    # of `label` (NaN without one)
    positive: float       # of "positive"
    known_words: int
    tokens: int           # in the whole review
    cut: bool             # scored on its first and last MAX_TOKENS / 2 tokens only


def encode_texts(texts: list[str], vocab: Vocab,
                 max_tokens: int = MAX_TOKENS) -> tuple[ReviewSet, np.ndarray]:
    """Raw texts as a ReviewSet the classifier reads (each cut to `max_tokens`, head and
    tail), and how many known words each has."""
    tokens, lengths, offsets = encode_reviews(tokenize_many(texts), vocab)
    known = np.add.reduceat(tokens > 1, offsets) if len(texts) else np.zeros(0, np.int64)
    table = pd.DataFrame({"label": np.zeros(len(texts), np.float32), "n_tokens": lengths,
                          "offset": offsets})
    half = max_tokens // 2
    return ReviewSet(tokens, table, half, max_tokens - half), known


def predict_texts(texts: list[str], model_dir: Path = MODEL_SENTIMENT, loaded=None,
                  max_tokens: int = MAX_TOKENS) -> list[Prediction]:
    """The classifier's answer for each raw review text."""
    model, vocab, _, _ = loaded or load_sentiment_model(model_dir)
    reviews, known = encode_texts(texts, vocab, max_tokens)
    probs = predict_reviews(model, reviews, torch.device("cpu"))
    out = []
    for q, k, n in zip(probs, known, reviews.full_lengths):
        label = None if k == 0 else "positive" if q >= 0.5 else "negative"
        prob = float("nan") if label is None else float(q if label == "positive" else 1 - q)
        out.append(Prediction(label, prob, float(q), int(k), int(n), bool(n > max_tokens)))
    return out


def pretrained_encoder(vocab_file: Path, model_dir: Path = MODEL_PRETRAIN) -> dict:
    """The pretrained weights (the embedding), checked to belong to this vocabulary."""
    require(model_dir / "encoder.pt", "the pretrained encoder", "pretrain")
    if read_text(model_dir / "vocab.txt") != read_text(vocab_file):
        raise InputError(f"{model_dir}: the encoder was pretrained with another vocabulary "
                         f"than {vocab_file}; run `dvc repro pretrain`")
    return load_tensors(model_dir / "encoder.pt", "the pretrained encoder's weights")
