"""Sentiment stages: train the review classifier, evaluate it on the test reviews."""
from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ..config import Params, SentimentParams
from ..data import ReviewSet, load_reviews
from ..download import sha256_file
from ..evaluation import classification_metrics, plot_confusion, predict_reviews
from ..models import ENCODER_PREFIXES, build_sentiment, load_encoder
from ..text import Vocab
from ..training import setup_runtime, shard, world
from .common import (METRICS, MODEL_SENTIMENT, MODEL_SENTIMENT_LM, PLOTS, PREPARED_IMDB,
                     read_json, require, write_json)
from .pretrain import pretrained_encoder
from .runner import final_metrics, train_and_track


class SentimentTask:
    """One round = one epoch over the training reviews; validation accuracy picks the
    best epoch."""
    metric, mode, item_name = "val_accuracy", "max", "reviews"

    def __init__(self, train: ReviewSet, val: ReviewSet, p: SentimentParams, seed: int,
                 device: torch.device):
        self.train, self.val, self.p, self.seed, self.device = train, val, p, seed, device

    def rounds(self) -> int:
        return self.p.epochs

    def _order(self, r: int) -> list[np.ndarray]:
        batches = self.train.batches(self.p.batch_size, shuffle=True, seed=self.seed * 100_003 + r)
        # Under DDP every process needs at least one review of every batch.
        return [idx for idx in batches if len(idx) >= world()[1]]

    def steps_in_round(self, r: int) -> int:
        return len(self._order(r))

    def batches(self, r: int):
        for idx in self._order(r):
            rows, weight = shard(len(idx))
            yield self.train.batch(idx[rows]).to(self.device), weight

    def loss(self, model, batch):
        reviews, weight = batch
        logits = model(reviews.tokens, reviews.lengths)
        loss = F.binary_cross_entropy_with_logits(logits.float(), reviews.labels, reduction="sum")
        return loss * weight, len(reviews.labels)

    def evaluate(self, model) -> dict[str, float]:
        m = classification_metrics(self.val.labels, predict_reviews(model, self.val, self.device))
        return {"val_accuracy": m["accuracy"], "val_loss": m["loss"]}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def train_sentiment(params: Params) -> dict:
    from ..serving import log_sentiment_model  # mlflow.pyfunc: imported only by training
    p = params.sentiment
    device = setup_runtime(params.seed, params.device, params.train.deterministic,
                           params.train.num_threads)
    require(PREPARED_IMDB / "tokens.npy", "prepared reviews", "prepare_imdb")
    splits = load_reviews(PREPARED_IMDB, p.head_tokens, p.tail_tokens)
    vocab = Vocab.load(PREPARED_IMDB / "vocab.txt")
    model = build_sentiment(len(vocab), p)
    provenance, lr_scales = {}, {}
    if p.pretrained != "none":
        encoder = pretrained_encoder()
        load_encoder(model, encoder)
        provenance["pretrained_encoder_sha256"] = sha256_file(MODEL_SENTIMENT_LM / "encoder.pt")
        # A discriminative rate (ULMFiT): what was pretrained (the embedding, or the
        # embedding and the LSTM) may learn slower than the fresh parts.
        lr_scales = {prefix: p.encoder_lr_scale for prefix in ENCODER_PREFIXES
                     if any(name.startswith(prefix) for name in encoder)}
    task = SentimentTask(splits["train"], splits["val"], p, params.seed, device)
    result = train_and_track(
        "sentiment", params, p, model, task, device, PREPARED_IMDB, MODEL_SENTIMENT,
        write_extra=lambda out: shutil.copy(PREPARED_IMDB / "vocab.txt", out / "vocab.txt"),
        log_model=log_sentiment_model,
        curves=["train_loss", "val_loss", "val_accuracy"], extra_params=provenance,
        lr_scales=lr_scales)
    return {"best_epoch": result.best_round, **result.best_metrics}


def load_sentiment_model(model_dir=MODEL_SENTIMENT, device="cpu"):
    """The trained classifier, its vocabulary and its params, from the stage outputs."""
    require(model_dir / "model.pt", "the trained sentiment model", "train_sentiment")
    info = read_json(model_dir / "model.json")
    p = SentimentParams(**info["params"])
    vocab = Vocab.load(model_dir / "vocab.txt")
    model = build_sentiment(len(vocab), p)
    model.load_state_dict(torch.load(model_dir / "model.pt", map_location=device,
                                     weights_only=True))
    return model.to(device).eval(), vocab, p, info


def evaluate_sentiment(params: Params) -> dict:
    device = setup_runtime(params.seed, params.device, params.train.deterministic,
                           params.train.num_threads)
    model, _, p, info = load_sentiment_model(device=device)
    splits = load_reviews(PREPARED_IMDB, p.head_tokens, p.tail_tokens)
    results = {}
    for split in ("val", "test"):
        probs = predict_reviews(model, splits[split], device)
        results[split] = (splits[split].labels, probs,
                          classification_metrics(splits[split].labels, probs))
    labels, probs, test = results["test"]
    metrics = {**{f"test_{k}": v for k, v in test.items()},
               **{f"val_{k}": v for k, v in results["val"][2].items()},
               "best_epoch": info["best_round"], "test_reviews": int(len(labels))}
    write_json(METRICS / "sentiment.json", metrics)
    plot_dir = PLOTS / "sentiment"
    plot_dir.mkdir(parents=True, exist_ok=True)
    names = np.array(["negative", "positive"])
    pd.DataFrame({"actual": names[labels.astype(int)],
                  "predicted": names[(probs >= 0.5).astype(int)]}).to_csv(
        plot_dir / "confusion.csv", index=False)
    plot_confusion(labels, probs, plot_dir / "confusion.png",
                   f"test accuracy {test['accuracy']:.4f}")
    import mlflow
    from .. import tracking  # mlflow: imported only where a run is logged
    with tracking.resume_run(MODEL_SENTIMENT / "run.json", "evaluate_sentiment"):
        mlflow.log_metrics(final_metrics(metrics))
        mlflow.log_artifact(str(plot_dir / "confusion.png"), "plots")
        mlflow.log_artifact(str(METRICS / "sentiment.json"), "metrics")
    print(f"test accuracy {test['accuracy']:.4f}  loss {test['loss']:.4f}  "
          f"ROC AUC {test['roc_auc']:.4f}  (validation accuracy {results['val'][2]['accuracy']:.4f})")
    return metrics


def predict_texts(texts: list[str], model_dir=MODEL_SENTIMENT) -> list[tuple[str, float]]:
    """Label and probability of 'positive' for raw review texts."""
    from ..text import tokenize_many
    model, vocab, p, _ = load_sentiment_model(model_dir)
    table = pd.DataFrame({"label": np.zeros(len(texts), np.float32)})
    encoded = [vocab.encode(t) for t in tokenize_many(texts)]
    encoded = [e if len(e) else np.array([1], np.int32) for e in encoded]
    lengths = np.array([len(e) for e in encoded], dtype=np.int64)
    table = table.assign(n_tokens=lengths,
                         offset=np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64))
    reviews = ReviewSet(np.concatenate(encoded), table, p.head_tokens, p.tail_tokens)
    probs = predict_reviews(model, reviews, torch.device("cpu"))
    return [("positive" if q >= 0.5 else "negative", float(q)) for q in probs]
