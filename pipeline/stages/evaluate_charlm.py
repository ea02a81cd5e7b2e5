"""Stage evaluate_charlm: held-out loss of the char LSTM, and text sampled from it at
several temperatures (the `samples` params: changing them re-runs only this stage)."""
from __future__ import annotations

import logging

import mlflow

from ..charlm.data import load_chars
from ..charlm.dynamic import tune_and_evaluate
from ..charlm.evaluation import loss_report, stateful_loss, windowed_loss
from ..charlm.generate import generate, load_charlm
from ..charlm.serving import INTENDED_USE, LIMITS, NAME
from ..core.command import stage_command
from ..core.config import Params
from ..core.inputs import read_provenance
from ..core.outputs import EVAL_CHARLM, METRICS, MODEL_CHARLM, PREPARED_GUTENBERG, write_json
from ..mlops import tracking
from ..mlops.model_card import attach_card, card_markdown
from ..mlops.registry import Evidence, promote_if_better
from ..training.runtime import setup_for
from ..training.trained import weights_digest

log = logging.getLogger(__name__)

BOOK_WINDOW = 40


def _samples(model, vocab, params: Params, device) -> list[str]:
    s = params.samples
    return [f"=== temperature {t} (scale factor {1 / t:g}) ===\n"
            + generate(model, vocab, s.prime, s.length, temperature=t, top_k=s.top_k,
                       seed=params.seed, device=device) + "\n"
            for t in s.temperatures]


def evaluate_charlm(params: Params) -> dict:
    """Held-out loss of the char LSTM, and samples at several temperatures."""
    device = setup_for(params)
    model, vocab, _, info = load_charlm(device=device)
    train, val = load_chars(PREPARED_GUTENBERG)
    stateful = loss_report(stateful_loss(model, val, device))
    # The book's view whatever the training mode: random 40-char windows from a zero
    # state, so the figure compares across recipes.
    windowed = loss_report(windowed_loss(model, val, device, seq_len=BOOK_WINDOW,
                                         seed=params.seed))
    metrics = {**{f"val_{k}": v for k, v in stateful.items()},
               **{f"val_windowed_{k}": v for k, v in windowed.items()},
               **tune_and_evaluate(model, train, val, device, params.dynamic_eval),
               "best_step": info["best_step"], "val_characters": int(len(val))}
    write_json(METRICS / "charlm.json", metrics)
    samples = _samples(model, vocab, params, device)
    EVAL_CHARLM.mkdir(parents=True, exist_ok=True)
    (EVAL_CHARLM / "samples.txt").write_text("\n".join(samples), encoding="utf-8")

    with tracking.open_training_run("charlm", weights_digest(MODEL_CHARLM, info),
                                    "evaluate_charlm") as run:
        digest = tracking.content_digest(PREPARED_GUTENBERG)
        datasets = tracking.log_datasets("gutenberg", {"val": val.numpy()}, PREPARED_GUTENBERG,
                                         "gutenberg", digest)
        tracking.log_evaluation(metrics, datasets, run)
        version = _attach_card(run, metrics, info, digest)
        if version is not None:  # None: a smoke run registers no version
            # The champion is chosen on the held-out text's static loss.
            promote_if_better(NAME, version, Evidence(
                "val_loss", metrics["val_loss"], "min", tracking.split_digest(val.numpy())))
        for t, sample in zip(params.samples.temperatures, samples):
            mlflow.log_text(sample, f"samples/temperature_{t}.txt")
        mlflow.log_artifact(str(METRICS / "charlm.json"), "metrics")
    log.info("held-out loss %.4f nats/char (%.4f bits/char), dynamic evaluation %.4f, "
             "zero-state %d-char windows %.4f -> %s, %s", stateful["loss"], stateful["bpc"],
             metrics["val_loss_dynamic"], BOOK_WINDOW, windowed["loss"],
             METRICS / "charlm.json", EVAL_CHARLM / "samples.txt")
    log.info("%s", samples[0])
    return metrics


def _attach_card(run, metrics: dict, info: dict, digest: str) -> str | None:
    source = read_provenance("gutenberg").get("url", "a DVC remote")
    data = (f"Project Gutenberg #1268, The Mysterious Island: the text between the licence "
            f"markers, the last {metrics['val_characters']:,} characters held out. Prepared "
            f"data digest `{digest[:16]}`, fetched from {source}.")
    results = [("held-out loss (nats/char)", f"{metrics['val_loss']:.4f}"),
               ("held-out bits/char", f"{metrics['val_bpc']:.4f}"),
               ("held-out loss with dynamic evaluation (nats/char)",
                f"{metrics['val_loss_dynamic']:.4f}"),
               ("zero-state 40-char windows (the book's view), nats/char",
                f"{metrics['val_windowed_loss']:.4f}")]
    card = card_markdown(f"{NAME}: character language model",
                         "Character-level LSTM: a prompt, a length and a temperature in, "
                         "sampled text out.", data, info["params"], results, INTENDED_USE,
                         LIMITS)
    return attach_card(NAME, run, card, {
        "data_digest": digest, "val_loss": f"{metrics['val_loss']:.4f}",
        "git_commit": run.data.tags.get("git_commit", "unknown")})


main = stage_command(evaluate_charlm)

if __name__ == "__main__":
    main()
