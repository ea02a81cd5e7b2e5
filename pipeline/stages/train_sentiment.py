"""Stage train_sentiment: the review classifier (embedding + LSTM), with gradient
clipping, checkpoints and an MLflow run."""
from __future__ import annotations

import logging
import shutil

from ..core.command import stage_command
from ..core.config import Params, SentimentParams
from ..core.inputs import require
from ..core.outputs import MODEL_PRETRAIN, MODEL_SENTIMENT, PREPARED_IMDB, sha256_file
from ..sentiment.model import ENCODER_PREFIXES, SentimentLSTM, build_sentiment, load_encoder
from ..sentiment.predict import pretrained_encoder
from ..sentiment.reviews import load_reviews, review_tables
from ..sentiment.serving import log_sentiment_model
from ..sentiment.task import SentimentTask
from ..sentiment.text import Vocab
from ..training.runtime import setup_for
from ..training.tracked import TrainingRun, train_and_track

log = logging.getLogger(__name__)


def _start_from_pretrained(model: SentimentLSTM, p: SentimentParams) -> tuple[dict, dict]:
    """Load what pretrain learned; (params to log, lr scales)."""
    if p.pretrained == "none":
        return {}, {}
    encoder = pretrained_encoder(PREPARED_IMDB / "vocab.txt", MODEL_PRETRAIN)
    load_encoder(model, encoder)
    provenance = {"pretrained_encoder_sha256": sha256_file(MODEL_PRETRAIN / "encoder.pt")}
    # A discriminative rate (ULMFiT): what was pretrained may learn slower than the
    # fresh parts.
    lr_scales = {prefix: p.encoder_lr_scale for prefix in ENCODER_PREFIXES
                 if any(name.startswith(prefix) for name in encoder)}
    return provenance, lr_scales


def train_sentiment(params: Params) -> dict:
    """Train the review classifier (gradient clipping, checkpoints, MLflow)."""
    p = params.sentiment
    device = setup_for(params)
    require(PREPARED_IMDB / "tokens.npy", "prepared reviews", "prepare_imdb")
    # The head/tail cut saves training time; validation reads whole reviews, as the test
    # and predictions do, so the epoch is chosen on what the model will be scored on.
    train = load_reviews(PREPARED_IMDB, p.head_tokens, p.tail_tokens)["train"]
    val = load_reviews(PREPARED_IMDB)["val"]
    vocab = Vocab.load(PREPARED_IMDB / "vocab.txt")
    model = build_sentiment(len(vocab), p)
    provenance, lr_scales = _start_from_pretrained(model, p)
    task = SentimentTask(train, val, p, params.seed, device)
    spec = TrainingRun(
        name="sentiment", section=p, stage="train_sentiment", experiment="sentiment",
        data_dir=PREPARED_IMDB, dataset="imdb", model_dir=MODEL_SENTIMENT,
        curves=["train_loss", "val_loss", "val_accuracy"],
        write_extra=lambda out: shutil.copy(PREPARED_IMDB / "vocab.txt", out / "vocab.txt"),
        log_model=log_sentiment_model, extra_params=provenance, lr_scales=lr_scales,
        inputs=lambda: review_tables(PREPARED_IMDB, ("train", "val")))
    result = train_and_track(spec, params, model, task, device)
    log.info(f"best epoch {result.best_period}: validation accuracy "
             f"{result.best_metrics['val_accuracy']:.4f} -> {MODEL_SENTIMENT}")
    return {"best_epoch": result.best_period, **result.best_metrics}


main = stage_command(train_sentiment, distributed=True)

if __name__ == "__main__":
    main()
