"""Stage evaluate_sentiment: score the classifier on the test reviews; metrics and a
confusion matrix, logged to the training run."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..command import stage_command
from ..config import Params
from ..data import load_reviews
from ..evaluation import classification_metrics, plot_confusion, predict_reviews
from ..inference import load_sentiment_model
from ..outputs import METRICS, MODEL_SENTIMENT, PLOTS, PREPARED_IMDB, sha256_file, write_json
from ..runtime import setup_for


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
    _write_confusion(labels, probs, test["accuracy"])

    import mlflow
    from .. import tracking  # mlflow: imported only where a run is logged
    with tracking.open_training_run("sentiment", sha256_file(MODEL_SENTIMENT / "model.pt"),
                                    "evaluate_sentiment"):
        mlflow.log_metrics(tracking.final_metrics(metrics))
        mlflow.log_artifact(str(PLOTS / "sentiment" / "confusion.png"), "plots")
        mlflow.log_artifact(str(METRICS / "sentiment.json"), "metrics")
    val = results["val"][2]
    print(f"test accuracy {test['accuracy']:.4f}  loss {test['loss']:.4f}  ROC AUC "
          f"{test['roc_auc']:.4f}  (validation accuracy {val['accuracy']:.4f}) -> "
          f"{METRICS / 'sentiment.json'}")
    return metrics


main = stage_command(evaluate_sentiment)

if __name__ == "__main__":
    main()
