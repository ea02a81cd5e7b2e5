"""Trained models as the stage outputs left them: loading, and prediction on raw text.

Used by the evaluate stages, `predict` / `generate` and the MLflow models
(pipeline/serving.py); imports neither the training code nor MLflow.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .config import CharLMParams, SentimentParams, section_from_dict
from .data import ReviewSet
from .evaluation import predict_reviews
from .models import build_charlm, build_sentiment
from .outputs import MODEL_CHARLM, MODEL_SENTIMENT, MODEL_PRETRAIN, read_json, require
from .text import CharVocab, Vocab, encode_reviews, tokenize_many


def _load(model_dir: Path, params_cls, vocab_cls, vocab_file: str, build, what: str,
          stage: str, device):
    """A trained model from a stage's output directory: (model, vocab, params, model.json).
    The params it was trained with go through the same checks as params.yaml."""
    model_dir = Path(model_dir)
    require(model_dir / "model.pt", what, stage)
    info = read_json(model_dir / "model.json")
    p = section_from_dict(params_cls, info["params"], f"{model_dir / 'model.json'}: params")
    vocab = vocab_cls.load(model_dir / vocab_file)
    model = build(len(vocab), p)
    model.load_state_dict(torch.load(model_dir / "model.pt", map_location=device,
                                     weights_only=True))
    return model.to(device).eval(), vocab, p, info


def load_sentiment_model(model_dir: Path = MODEL_SENTIMENT, device="cpu"):
    """The trained classifier, its vocabulary, its params and model.json."""
    return _load(model_dir, SentimentParams, Vocab, "vocab.txt", build_sentiment,
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


def load_charlm(model_dir: Path = MODEL_CHARLM, device="cpu"):
    """The trained char LSTM, its character vocabulary, its params and model.json."""
    return _load(model_dir, CharLMParams, CharVocab, "chars.json", build_charlm,
                 "the trained char model", "train_charlm", device)


def pretrained_encoder(vocab_file: Path, model_dir: Path = MODEL_PRETRAIN) -> dict:
    """The pretrained weights (embedding, and the LSTM after a word LM), checked to belong
    to this vocabulary."""
    require(model_dir / "encoder.pt", "the pretrained encoder", "pretrain")
    if (model_dir / "vocab.txt").read_bytes() != Path(vocab_file).read_bytes():
        raise ValueError(f"the encoder in {model_dir} was pretrained with another vocabulary "
                         f"than {vocab_file}: run `dvc repro pretrain`")
    return torch.load(model_dir / "encoder.pt", map_location="cpu", weights_only=True)
