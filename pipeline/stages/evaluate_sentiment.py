"""Stage evaluate_sentiment: score the classifier on the test reviews; metrics and a
confusion matrix, logged to the training run with the datasets they were measured on,
and a model card (beside the TF-IDF baseline's figures) on the registered version."""
from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd

from ..core.command import stage_command
from ..core.config import Params, SentimentParams
from ..core.outputs import (METRICS, MODEL_SENTIMENT, PLOTS, PREPARED_IMDB, read_json,
                            read_provenance, require, sha256_file, write_json)
from ..mlops import tracking
from ..mlops.model_card import attach_card, card_markdown
from ..sentiment.metrics import classification_metrics, plot_confusion
from ..sentiment.predict import load_sentiment_model, predict_reviews
from ..sentiment.reviews import load_reviews, review_tables
from ..sentiment.serving import INTENDED_USE, LIMITS, NAME
from ..training.runtime import setup_for

def _write_confusion(labels: np.ndarray, probs: np.ndarray, accuracy: float) -> None:
    plot_dir = PLOTS / "sentiment"
    plot_dir.mkdir(parents=True, exist_ok=True)
    names = np.array(["negative", "positive"])
    pd.DataFrame({"actual": names[labels.astype(int)],
                  "predicted": names[(probs >= 0.5).astype(int)]}).to_csv(
        plot_dir / "confusion.csv", index=False)
    plot_confusion(labels, probs, plot_dir / "confusion.png", f"test accuracy {accuracy:.4f}")


def evaluate_sentiment(params: Params) -> dict:
    """Score the classifier on the test reviews; metrics, confusion matrix."""
    device = setup_for(params)
    baseline = read_json(require(METRICS / "baseline.json", "the baseline's metrics",
                                 "train_baseline"))
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

    with tracking.open_training_run("sentiment", sha256_file(MODEL_SENTIMENT / "model.pt"),
                                    "evaluate_sentiment") as run:
        digest = tracking.content_digest(PREPARED_IMDB)
        datasets = tracking.log_datasets("imdb", review_tables(PREPARED_IMDB, ("val", "test")),
                                         PREPARED_IMDB, "imdb", digest)
        tracking.log_evaluation(metrics, datasets, run)
        _attach_card(run, metrics, baseline, p, digest)
        mlflow.log_artifact(str(PLOTS / "sentiment" / "confusion.png"), "plots")
        mlflow.log_artifact(str(METRICS / "sentiment.json"), "metrics")
    val = results["val"][2]
    print(f"test accuracy {test['accuracy']:.4f}  loss {test['loss']:.4f}  ROC AUC "
          f"{test['roc_auc']:.4f}  (validation accuracy {val['accuracy']:.4f}) -> "
          f"{METRICS / 'sentiment.json'}")
    return metrics


def _attach_card(run, metrics: dict, baseline: dict, p: SentimentParams, digest: str) -> None:
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
               ("TF-IDF + logistic regression, same test reviews",
                f"{baseline['test_accuracy']:.4f}")]
    card = card_markdown(f"{NAME}: IMDb review sentiment",
                         "Embedding + LSTM classifier of raw review text (the tokenizer and "
                         "vocabulary travel with the model): label and probability.",
                         data, p.model_dump(), results, INTENDED_USE, LIMITS)
    attach_card(NAME, run, card, {
        "data_digest": digest, "test_accuracy": f"{metrics['test_accuracy']:.4f}",
        "baseline_test_accuracy": f"{baseline['test_accuracy']:.4f}",
        "git_commit": run.data.tags.get("git_commit", "unknown")})


main = stage_command(evaluate_sentiment)

if __name__ == "__main__":
    main()
