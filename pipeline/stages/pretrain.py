"""Pretraining stage: what the sentiment model starts from, learned from the training
reviews' own text (`sentiment.pretrained`):

- `embeddings`: word vectors from co-occurrence counts (PPMI + SVD, seconds), the
  classifier's embedding starts from them;
- `lm`: a word language model, whose embedding and LSTM start the classifier. Reviews are
  read whole, in a seeded random order, each followed by <pad> as an end-of-review word,
  as `batch_size` contiguous streams with truncated BPTT, like the char LM's tbptt mode;
- `none`: nothing (the book).

Only the training part of the training reviews is read: never validation (except to
measure the LM) and never test text.
"""
from __future__ import annotations

import math
import shutil
import time

import numpy as np
import pandas as pd
import torch

from .. import embeddings
from ..config import Params
from ..data import ReviewSet, StreamBatches, iterate_streams, load_reviews
from ..evaluation import plot_history
from ..models import build_word_lm
from ..text import PAD_ID, Vocab
from ..training import setup_runtime
from .charlm import CharTask
from .common import (MODEL_SENTIMENT_LM, PLOTS, PREPARED_IMDB, read_json, require, staged_dir,
                     write_json)
from .runner import final_metrics, train_and_track

EVAL_STREAMS = 64
# Words whose nearest neighbours show whether the vectors learned anything.
PROBE_WORDS = ["great", "awful", "boring", "funny", "recommend", "waste", "actor", "hitchcock"]


def review_stream(reviews: ReviewSet, seed: int | None = None) -> torch.Tensor:
    """Every review, whole, each followed by <pad>; shuffled when `seed` is given."""
    order = np.arange(len(reviews)) if seed is None else (
        np.random.default_rng(seed).permutation(len(reviews)))
    end = np.array([PAD_ID], dtype=np.int64)
    # Whole reviews, whatever head/tail cut the classifier reads.
    parts = [part for i in order for part in (
        reviews.tokens[reviews.offsets[i]:reviews.offsets[i] + reviews.full_lengths[i]], end)]
    return torch.from_numpy(np.concatenate(parts))


class WordLMTask(CharTask):
    """The char LM's truncated-BPTT task over words: one round = `eval_every` steps; the
    validation loss (nats/word, over the first `eval_tokens` validation words) picks the
    best round."""
    item_name = "words"

    def __init__(self, train: torch.Tensor, val: torch.Tensor, p, seed: int,
                 device: torch.device):
        self.train, self.val, self.p, self.seed, self.device = train, val, p, seed, device
        self.streams = StreamBatches(train, p.seq_len, p.batch_size)
        self.state = None

    def loss(self, model, batch):
        x, y, weight, new_pass = batch
        nll, state = model(x, y, None if new_pass else self.state)
        self.state = tuple(s.detach() for s in state)
        return nll * weight, y.numel()

    def evaluate(self, model) -> dict[str, float]:
        total, count, state = torch.zeros((), device=self.device), 0, None
        streams = min(EVAL_STREAMS, max(1, (len(self.val) - 1) // (self.p.seq_len + 1)))
        for x, y in iterate_streams(self.val, self.p.seq_len, streams):
            nll, state = model(x.to(self.device), y.to(self.device), state)
            total += nll.float()
            count += y.numel()
        loss = total.item() / count
        return {"val_loss": loss, "val_perplexity": math.exp(loss)}


def pretrain_sentiment(params: Params) -> dict:
    kind = params.sentiment.pretrained
    if kind == "none":
        return _skip()
    if kind == "embeddings":
        return pretrain_embeddings(params)
    return pretrain_lm(params)


def pretrain_embeddings(params: Params) -> dict:
    """PPMI + SVD word vectors of the training reviews, as an embedding-only encoder."""
    import mlflow
    from .. import tracking  # mlflow: imported only where a run is logged
    p, s = params.pretrain, params.sentiment
    require(PREPARED_IMDB / "tokens.npy", "prepared reviews", "prepare_imdb")
    exp_id = tracking.experiment_id(tracking.connect(), "sentiment_lm")  # fail before the work
    started = time.perf_counter()
    splits = load_reviews(PREPARED_IMDB)  # whole reviews
    vocab = Vocab.load(PREPARED_IMDB / "vocab.txt")
    stream = review_stream(splits["train"]).numpy()  # training reviews only, <pad>-separated
    counts = embeddings.cooccurrence(stream, PAD_ID, len(vocab), p.embedding_window)
    weighted = embeddings.ppmi(counts)
    vectors = embeddings.svd_vectors(weighted, s.embed_dim, params.seed)
    vectors[PAD_ID] = 0.0  # the classifier's padding_idx row
    summary = {"train_words": int((stream != PAD_ID).sum()), "cooccurring_pairs": counts.nnz,
               "ppmi_pairs": weighted.nnz,
               "nearest": embeddings.nearest(vectors, vocab.itos, PROBE_WORDS)}
    seconds = round(time.perf_counter() - started, 1)  # not in the outputs: they repeat exactly

    with mlflow.start_run(experiment_id=exp_id, run_name="ppmi-svd",
                          tags={**tracking.run_tags("pretrain_sentiment", "cpu"),
                                "model_type": "ppmi-svd"}):
        with staged_dir(MODEL_SENTIMENT_LM) as out:
            torch.save({"embedding.weight": torch.from_numpy(vectors)}, out / "encoder.pt")
            shutil.copy(PREPARED_IMDB / "vocab.txt", out / "vocab.txt")
            write_json(out / "embeddings.json", summary)
        tracking.log_params({"seed": params.seed, "sentiment.pretrained": s.pretrained,
                             "sentiment.embed_dim": s.embed_dim,
                             "pretrain.embedding_window": p.embedding_window,
                             **tracking.data_params(read_json(PREPARED_IMDB / "summary.json"))})
        mlflow.log_metrics(final_metrics({**{k: v for k, v in summary.items() if k != "nearest"},
                                          "seconds": seconds}))
        mlflow.log_artifact(str(MODEL_SENTIMENT_LM / "embeddings.json"), "outputs")
    _empty_curves("word LM pretraining: none (sentiment.pretrained: embeddings)")
    for word, near in summary["nearest"].items():
        print(f"{word:>10}: {' '.join(near)}")
    print(f"PPMI-SVD word vectors ({s.embed_dim} dims) of {summary['train_words']:,} training "
          f"words in {seconds:.0f} s -> {MODEL_SENTIMENT_LM / 'encoder.pt'}")
    return summary


def pretrain_lm(params: Params) -> dict:
    """A word LM of the classifier's shape; its embedding + LSTM are the encoder."""
    p, s = params.pretrain, params.sentiment
    device = setup_runtime(params.seed, params.device, params.train.deterministic,
                           params.train.num_threads)
    require(PREPARED_IMDB / "tokens.npy", "prepared reviews", "prepare_imdb")
    splits = load_reviews(PREPARED_IMDB)  # whole reviews
    vocab = Vocab.load(PREPARED_IMDB / "vocab.txt")
    train = review_stream(splits["train"], seed=params.seed)
    val = review_stream(splits["val"])[:p.eval_tokens]
    model = build_word_lm(len(vocab), s, p)
    task = WordLMTask(train, val, p, params.seed, device)

    def write_extra(out):
        torch.save(model.encoder_state_dict(), out / "encoder.pt")
        shutil.copy(PREPARED_IMDB / "vocab.txt", out / "vocab.txt")

    sizes = {f"sentiment.{k}": getattr(s, k) for k in ("embed_dim", "hidden_size", "num_layers")}
    result = train_and_track(
        "pretrain", params, p, model, task, device, PREPARED_IMDB, MODEL_SENTIMENT_LM,
        write_extra=write_extra, log_model=lambda model_dir: None,
        curves=["train_loss", "val_loss"], experiment="sentiment_lm", stage="pretrain_sentiment",
        extra_params={**sizes, "train_words": len(train)})
    return {"best_step": result.best_step, **result.best_metrics}


def _skip() -> dict:
    """DVC has no optional stages: with `sentiment.pretrained: none` this stage writes
    only a note (and empty curves), so `dvc repro` spends no time on a model nobody reads.
    Changing the choice changes this stage's params, and DVC re-runs it for real."""
    note = {"pretrained": "none", "note": "sentiment.pretrained is none: nothing pretrained"}
    with staged_dir(MODEL_SENTIMENT_LM) as out:
        write_json(out / "skipped.json", note)
    _empty_curves("word LM pretraining: off (sentiment.pretrained: none)")
    print(note["note"])
    return note


def _empty_curves(title: str) -> None:
    """The declared LM curves, empty, for the choices that train no LM."""
    plot_dir = PLOTS / "pretrain"
    plot_dir.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(columns=["round", "step", "train_loss", "val_loss", "val_perplexity"]).to_csv(
        plot_dir / "history.csv", index=False)
    plot_history([], "step", ["train_loss", "val_loss"], plot_dir / "learning_curves.png", title)


def pretrained_encoder(vocab_file=PREPARED_IMDB / "vocab.txt",
                       model_dir=MODEL_SENTIMENT_LM) -> dict[str, torch.Tensor]:
    """The pretrained weights (embedding, and the LSTM after a word LM), checked to belong
    to this vocabulary."""
    require(model_dir / "encoder.pt", "the pretrained encoder", "pretrain_sentiment")
    if (model_dir / "vocab.txt").read_bytes() != vocab_file.read_bytes():
        raise ValueError(f"the word LM in {model_dir} was pretrained with another vocabulary "
                         f"than {vocab_file}: run `dvc repro pretrain_sentiment`")
    return torch.load(model_dir / "encoder.pt", map_location="cpu", weights_only=True)
