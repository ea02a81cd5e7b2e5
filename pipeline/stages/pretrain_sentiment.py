"""Stage pretrain_sentiment: what the sentiment model starts from, learned from the
training reviews' own text (`sentiment.pretrained`):

- `embeddings`: word vectors from co-occurrence counts (PPMI + SVD, seconds), the
  classifier's embedding starts from them;
- `lm`: a word language model (the slower option), whose embedding and LSTM start the
  classifier. Reviews are read whole, in a seeded random order, each followed by <pad> as
  an end-of-review word, as `batch_size` contiguous streams with truncated BPTT;
- `none`: nothing (the book).

Only the training part of the training reviews is read: never validation (except to
measure the LM) and never test text.
"""
from __future__ import annotations

import shutil
import time

import pandas as pd
import torch

from .. import embeddings
from ..command import stage_command
from ..config import Params
from ..data import load_reviews
from ..evaluation import plot_history
from ..models import build_word_lm
from ..outputs import (MODEL_SENTIMENT_LM, PLOTS, PREPARED_IMDB, read_json, read_provenance,
                       require, staged_dir, write_json)
from ..runner import TrainingRun, train_and_track
from ..tasks import WordLMTask, review_stream
from ..text import PAD_ID, Vocab
from ..runtime import setup_for

# Words whose nearest neighbours show whether the vectors learned anything.
PROBE_WORDS = ["great", "awful", "boring", "funny", "recommend", "waste", "actor", "hitchcock"]


def pretrain_sentiment(params: Params) -> dict:
    """Pretrain what the sentiment model starts from (sentiment.pretrained)."""
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
                             **tracking.data_params(read_json(PREPARED_IMDB / "summary.json"),
                                                    read_provenance("imdb"))})
        counts = {k: v for k, v in summary.items() if k != "nearest"}
        mlflow.log_metrics(tracking.final_metrics({**counts,
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
    device = setup_for(params)
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
    spec = TrainingRun(
        name="pretrain", section=p, stage="pretrain_sentiment", experiment="sentiment_lm",
        data_dir=PREPARED_IMDB, dataset="imdb", model_dir=MODEL_SENTIMENT_LM,
        curves=["train_loss", "val_loss"], write_extra=write_extra,
        extra_params={**sizes, "train_words": len(train)})
    result = train_and_track(spec, params, model, task, device)
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


main = stage_command(pretrain_sentiment, distributed=True)

if __name__ == "__main__":
    main()
