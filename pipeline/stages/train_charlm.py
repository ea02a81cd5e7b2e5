"""Stage train_charlm: the character LSTM on the book, with gradient clipping,
truncated BPTT, checkpoints and an MLflow run."""
from __future__ import annotations

import logging
import shutil

from ..charlm.data import load_chars
from ..charlm.model import build_charlm
from ..charlm.serving import log_charlm_model
from ..charlm.task import CharTask
from ..charlm.vocab import CharVocab
from ..core.command import stage_command
from ..core.config import Params
from ..core.inputs import require
from ..core.outputs import MODEL_CHARLM, PREPARED_GUTENBERG
from ..training.runtime import setup_for
from ..training.tracked import TrainingRun, train_and_track

log = logging.getLogger(__name__)


def train_charlm(params: Params) -> dict:
    """Train the character LSTM (gradient clipping, checkpoints, MLflow)."""
    p = params.charlm
    device = setup_for(params)
    require(PREPARED_GUTENBERG / "train.npy", "the encoded book", "prepare_gutenberg")
    train, val = load_chars(PREPARED_GUTENBERG)
    vocab = CharVocab.load(PREPARED_GUTENBERG / "chars.json")
    model = build_charlm(len(vocab), p)
    task = CharTask(train, val, p, params.seed, device)
    spec = TrainingRun(
        name="charlm", section=p, stage="train_charlm", experiment="charlm",
        data_dir=PREPARED_GUTENBERG, dataset="gutenberg", model_dir=MODEL_CHARLM,
        curves=["train_loss", "val_loss"],
        write_extra=lambda out: shutil.copy(PREPARED_GUTENBERG / "chars.json", out / "chars.json"),
        log_model=log_charlm_model,
        inputs=lambda: {"train": train.numpy(), "val": val.numpy()})
    result = train_and_track(spec, params, model, task, device)
    log.info(f"best step {result.best_step}: held-out loss "
             f"{result.best_metrics['val_loss']:.4f} nats/char -> {MODEL_CHARLM}")
    return {"best_step": result.best_step, **result.best_metrics}


main = stage_command(train_charlm, distributed=True)

if __name__ == "__main__":
    main()
