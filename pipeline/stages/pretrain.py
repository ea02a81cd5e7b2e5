"""Stage pretrain: what the sentiment model starts from, learned from the reviews' own
text (`sentiment.pretrained`):

- `embeddings`: word vectors from co-occurrence counts (PPMI + SVD, a minute or two), the
  classifier's embedding starts from them;
- `none`: nothing (the book).

It reads the training part of the labelled reviews and the unlabelled reviews (when the
archive has them): never validation and never test text.
"""
from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import torch

from ..core.command import stage_command
from ..core.config import Params
from ..core.inputs import read_json, read_provenance, require
from ..core.outputs import MODEL_PRETRAIN, PLOTS, PREPARED_IMDB, staged_dir, write_json
from ..mlops import tracking
from ..mlops.plots import plot_history
from ..sentiment import embeddings
from ..sentiment.pretraining import pretraining_text
from ..sentiment.reviews import load_reviews, review_tables
from ..sentiment.text import PAD_ID, Vocab

PLOT_DIR = PLOTS / "pretrain"  # what there is to look at depends on the choice
SPECTRUM_COLUMNS = ["dimension", "share", "cumulative"]
# Words whose nearest neighbours show whether the vectors learned anything.
PROBE_WORDS = ["great", "awful", "boring", "funny", "recommend", "waste", "actor", "hitchcock"]

log = logging.getLogger(__name__)


def pretrain(params: Params) -> dict:
    """Pretrain what the sentiment model starts from (sentiment.pretrained)."""
    kind = params.sentiment.pretrained
    if kind == "none":
        return _skip()
    return pretrain_embeddings(params)


def pretrain_embeddings(params: Params) -> dict:
    """PPMI + SVD word vectors of the pretraining text, as an embedding-only encoder."""
    p, s = params.pretrain, params.sentiment
    require(PREPARED_IMDB / "tokens.npy", "prepared reviews", "prepare_imdb")
    exp_id = tracking.experiment_id(tracking.connect(), "pretrain")  # fail before the work
    started = time.perf_counter()
    splits = load_reviews(PREPARED_IMDB)  # whole reviews
    vocab = Vocab.load(PREPARED_IMDB / "vocab.txt")
    stream = pretraining_text(splits).numpy()
    counts = embeddings.cooccurrence(stream, PAD_ID, len(vocab), p.embedding_window)
    weighted = embeddings.ppmi(counts)
    vectors = embeddings.svd_vectors(weighted, s.embed_dim, params.seed)
    vectors[PAD_ID] = 0.0  # the classifier's padding_idx row
    summary = {"train_words": int((stream != PAD_ID).sum()),
               "unlabelled_reviews": len(splits["unsup"]) if "unsup" in splits else 0,
               "cooccurring_pairs": counts.nnz,
               "ppmi_pairs": weighted.nnz,
               "nearest": embeddings.nearest(vectors, vocab.itos, PROBE_WORDS)}
    seconds = round(time.perf_counter() - started, 1)  # not in the outputs: they repeat exactly

    _clear_plots()  # the spectrum is drawn there
    with mlflow.start_run(experiment_id=exp_id, run_name="ppmi-svd",
                          tags=tracking.run_tags("pretrain", "cpu",
                                                 {"model_type": "ppmi-svd"})) as run:
        tracking.attach_log_when_done(run.info.run_id)
        with staged_dir(MODEL_PRETRAIN) as out:
            torch.save({"embedding.weight": torch.from_numpy(vectors)}, out / "encoder.pt")
            shutil.copy(PREPARED_IMDB / "vocab.txt", out / "vocab.txt")
            write_json(out / "embeddings.json", summary)
        tracking.log_params({"seed": params.seed, "sentiment.pretrained": s.pretrained,
                             "sentiment.embed_dim": s.embed_dim,
                             "pretrain.embedding_window": p.embedding_window,
                             **tracking.data_params(read_json(PREPARED_IMDB / "summary.json"),
                                                    read_provenance("imdb"))})
        tracking.log_datasets("imdb", review_tables(PREPARED_IMDB, ("train", "unsup")),
                              PREPARED_IMDB, "imdb")
        counts = {k: v for k, v in summary.items() if k != "nearest"}
        mlflow.log_metrics(tracking.final_metrics({**counts, "seconds": seconds}))
        mlflow.log_artifact(str(MODEL_PRETRAIN / "embeddings.json"), "outputs")
        mlflow.log_artifact(str(_plot_spectrum(vectors)), "plots")
    for word, near in summary["nearest"].items():
        log.info("%10s: %s", word, " ".join(near))
    log.info(f"PPMI-SVD word vectors ({s.embed_dim} dims) of {summary['train_words']:,} words "
             f"({summary['unlabelled_reviews']:,} unlabelled reviews) in {seconds:.0f} s "
             f"-> {MODEL_PRETRAIN / 'encoder.pt'}")
    return summary


def _skip() -> dict:
    """DVC has no optional stages: with `sentiment.pretrained: none` this stage writes
    only a note (and an empty spectrum), so `dvc repro` spends no time on a model nobody
    reads. Changing the choice changes this stage's params, and DVC re-runs it for real."""
    note = {"pretrained": "none", "note": "sentiment.pretrained is none: nothing pretrained"}
    with staged_dir(MODEL_PRETRAIN) as out:
        write_json(out / "skipped.json", note)
    _clear_plots()
    pd.DataFrame(columns=SPECTRUM_COLUMNS).to_csv(
        PLOT_DIR / "spectrum.csv", index=False)  # an empty table: there are no vectors
    log.info(note["note"])
    return note


def _clear_plots() -> None:
    """plots/pretrain holds only what this run's choice draws (DVC tracks the folder)."""
    shutil.rmtree(PLOT_DIR, ignore_errors=True)
    PLOT_DIR.mkdir(parents=True, exist_ok=True)


def _plot_spectrum(vectors: np.ndarray) -> Path:
    """How the word vectors' variance spreads over their dimensions (an SVD spectrum):
    a steep fall means few dimensions carry the meaning and embed_dim could be smaller."""
    energy = (vectors.astype("float64") ** 2).sum(axis=0)
    share = energy / energy.sum()
    rows = [dict(zip(SPECTRUM_COLUMNS, (i + 1, float(v), float(c))))
            for i, (v, c) in enumerate(zip(share, share.cumsum()))]
    pd.DataFrame(rows).to_csv(PLOT_DIR / "spectrum.csv", index=False, float_format="%.6g")
    plot_history(rows, "dimension", SPECTRUM_COLUMNS[1:], PLOT_DIR / "spectrum.png",
                 "PPMI-SVD word vectors: share of variance per dimension")
    return PLOT_DIR / "spectrum.png"


main = stage_command(pretrain)

if __name__ == "__main__":
    main()
