"""Using the trained classifier: loading it from the stage's output and scoring reviews,
prepared or raw text. Used by the evaluate stage, `predict` and the MLflow model; imports
neither the training code nor MLflow."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..core.config import SentimentParams
from ..core.outputs import MODEL_PRETRAIN, MODEL_SENTIMENT, require
from ..training.trained import load_trained
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
    return load_trained(model_dir, SentimentParams, Vocab.load, "vocab.txt", build_sentiment,
                        "the trained sentiment model", "train_sentiment", device)


def encode_texts(texts: list[str], vocab: Vocab) -> tuple[ReviewSet, np.ndarray]:
    """Raw texts as a ReviewSet the classifier reads, and how many known words each has."""
    tokens, lengths, offsets = encode_reviews(tokenize_many(texts), vocab)
    known = np.add.reduceat(tokens > 1, offsets) if len(texts) else np.zeros(0, np.int64)
    table = pd.DataFrame({"label": np.zeros(len(texts), np.float32), "n_tokens": lengths,
                          "offset": offsets})
    return ReviewSet(tokens, table), known  # whole reviews: the head/tail cut is for training


def predict_texts(texts: list[str], model_dir: Path = MODEL_SENTIMENT,
                  loaded=None) -> list[tuple[str, float, int]]:
    """(label, probability of 'positive', known words) for each raw review text."""
    model, vocab, _, _ = loaded or load_sentiment_model(model_dir)
    reviews, known = encode_texts(texts, vocab)
    probs = predict_reviews(model, reviews, torch.device("cpu"))
    return [("positive" if q >= 0.5 else "negative", float(q), int(k))
            for q, k in zip(probs, known)]


def pretrained_encoder(vocab_file: Path, model_dir: Path = MODEL_PRETRAIN) -> dict:
    """The pretrained weights (embedding, and the LSTM after a word LM), checked to belong
    to this vocabulary."""
    require(model_dir / "encoder.pt", "the pretrained encoder", "pretrain")
    if (model_dir / "vocab.txt").read_bytes() != Path(vocab_file).read_bytes():
        raise ValueError(f"the encoder in {model_dir} was pretrained with another vocabulary "
                         f"than {vocab_file}: run `dvc repro pretrain`")
    return torch.load(model_dir / "encoder.pt", map_location="cpu", weights_only=True)
