"""Stage evaluate_sentiment: score the classifier on the test reviews; metrics and a
confusion matrix, logged to the training run with the datasets they were measured on,
and a model card (beside the TF-IDF baseline's figures) on the registered version."""
from __future__ import annotations

import logging

import mlflow
import numpy as np
import pandas as pd

from ..core.command import stage_command
from ..core.config import Params, SentimentParams
from ..core.inputs import read_json, read_json_object, read_provenance
from ..core.outputs import (EVAL_SENTIMENT, METRICS, MODEL_SENTIMENT, PLOTS, PREPARED_IMDB,
                            staged_dir, write_json)
from ..mlops import tracking
from ..mlops.model_card import attach_card, card_markdown
from ..mlops.registry import Evidence, promote_if_better
from ..sentiment.metrics import classification_metrics, plot_confusion
from ..sentiment.predict import load_sentiment_model, predict_reviews
from ..sentiment.reviews import load_reviews, review_tables, which_reviews
from ..sentiment.serving import INTENDED_USE, LIMITS, NAME
from ..training.runtime import setup_for
from ..training.trained import weights_digest

log = logging.getLogger(__name__)


def _write_confusion(labels: np.ndarray, probs: np.ndarray, accuracy: float) -> None:
    plot_dir = PLOTS / "sentiment"
    plot_dir.mkdir(parents=True, exist_ok=True)
    names = np.array(["negative", "positive"])
    pd.DataFrame({"actual": names[labels.astype(int)],
                  "predicted": names[(probs >= 0.5).astype(int)]}).to_csv(
        plot_dir / "confusion.csv", index=False)
    plot_confusion(labels, probs, plot_dir / "confusion.png", f"test accuracy {accuracy:.4f}")


def _write_predictions(probs: np.ndarray) -> None:
    """Each test review's P(positive), to look at the errors. Kept in DVC's cache, not
    git: a fresh clone lacks it, so `dvc repro` runs this stage there and the MLflow
    store gets the evaluation of the model it trained."""
    table = which_reviews(PREPARED_IMDB, "test").assign(p_positive=probs.round(6))
    with staged_dir(EVAL_SENTIMENT) as out:
        table.to_csv(out / "test_predictions.csv", index=False)


def evaluate_sentiment(params: Params) -> dict:
    """Score the classifier on the test reviews; metrics, confusion matrix."""
    device = setup_for(params)
    baseline = read_json_object(METRICS / "baseline.json",
                                ("test_accuracy", "val_accuracy", "val_loss"),
                                "the baseline's metrics")
    model, _, p, info = load_sentiment_model(device=device)
    splits = load_reviews(PREPARED_IMDB)  # whole reviews: the head/tail cut is for training
    results = {}
    for split in ("val", "test"):
        probs = predict_reviews(model, splits[split], device)
        results[split] = (splits[split].labels, probs,
                          classification_metrics(splits[split].labels, probs))
    labels, probs, test = results["test"]
    metrics = {**{f"test_{k}": v for k, v in test.items()},
               **{f"val_{k}": v for k, v in results["val"][2].items()},
               "best_epoch": info["best_epoch"], "test_reviews": int(len(labels))}
    write_json(METRICS / "sentiment.json", metrics)
    _write_confusion(labels, probs, test["accuracy"])
    _write_predictions(probs)

    with tracking.open_training_run("sentiment", weights_digest(MODEL_SENTIMENT, info),
                                    "evaluate_sentiment") as run:
        digest = tracking.content_digest(PREPARED_IMDB)
        datasets = tracking.log_datasets("imdb", review_tables(PREPARED_IMDB, ("val", "test")),
                                         PREPARED_IMDB, "imdb", digest)
        tracking.log_evaluation(metrics, datasets, run)
        evidence = _evidence(metrics, baseline)
        version = _attach_card(run, metrics, baseline, p, digest)
        if version is not None:  # None: a smoke run registers no version
            promote_if_better(NAME, version, evidence)
        mlflow.log_artifact(str(PLOTS / "sentiment" / "confusion.png"), "plots")
        mlflow.log_artifact(str(METRICS / "sentiment.json"), "metrics")
    log.info("test accuracy %.4f  loss %.4f  ROC AUC %.4f  (validation accuracy %.4f) -> %s",
             test["accuracy"], test["loss"], test["roc_auc"], results["val"][2]["accuracy"],
             METRICS / "sentiment.json")
    return metrics


def _evidence(metrics: dict, baseline: dict) -> Evidence:
    """The champion is chosen on the validation reviews, scored whole as in serving,
    against the TF-IDF baseline scored on the same reviews (its digest says which)."""
    digest = tracking.split_digest(which_reviews(PREPARED_IMDB, "val"))
    bar = Evidence("val_accuracy", baseline["val_accuracy"], "max",
                   baseline.get("val_data_digest", "unknown"), baseline["val_loss"])
    return Evidence("val_accuracy", metrics["val_accuracy"], "max", digest,
                    metrics["val_loss"], baseline=bar)


def _attach_card(run, metrics: dict, baseline: dict, p: SentimentParams,
                 digest: str) -> str | None:
    summary = read_json(PREPARED_IMDB / "summary.json")
    n = summary["reviews"]
    source = read_provenance("imdb").get("url", "a DVC remote")
    data = (f"IMDb Large Movie Review Dataset: {n['train']:,} training and {n['val']:,} "
            f"validation reviews (whole movies held out), {n['test']:,} test reviews of other "
            f"movies; {summary.get('unlabelled', 0):,} unlabelled reviews for pretraining "
            f"only. Prepared data digest `{digest[:16]}`, fetched from {source}.")
    results = [("test accuracy", f"{metrics['test_accuracy']:.4f}"),
               ("test ROC AUC", f"{metrics['test_roc_auc']:.4f}"),
               ("validation accuracy", f"{metrics['val_accuracy']:.4f}"),
               ("TF-IDF + logistic regression, same validation reviews",
                f"{baseline['val_accuracy']:.4f}"),
               ("margin over TF-IDF, validation",
                f"{metrics['val_accuracy'] - baseline['val_accuracy']:+.4f}"),
               ("TF-IDF + logistic regression, same test reviews",
                f"{baseline['test_accuracy']:.4f}")]
    card = card_markdown(f"{NAME}: IMDb review sentiment",
                         "Embedding + LSTM classifier of raw review text (the tokenizer and "
                         "vocabulary travel with the model): label and probability.",
                         data, p.model_dump(), results, INTENDED_USE, LIMITS)
    return attach_card(NAME, run, card, {
        "data_digest": digest, "test_accuracy": f"{metrics['test_accuracy']:.4f}",
        "baseline_test_accuracy": f"{baseline['test_accuracy']:.4f}",
        "baseline_val_accuracy": f"{baseline['val_accuracy']:.4f}",
        "git_commit": run.data.tags.get("git_commit", "unknown")})


main = stage_command(evaluate_sentiment)

if __name__ == "__main__":
    main()
