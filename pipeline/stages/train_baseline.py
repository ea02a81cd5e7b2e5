"""Stage train_baseline: the TF-IDF + logistic regression baseline (pipeline/baseline.py)
on the same split as the LSTM; the regularisation strength is picked on validation (one
nested MLflow run per value), test is scored once. Logged to the `sentiment` MLflow
experiment beside the LSTM runs, and registered as `sentiment-tfidf`."""
from __future__ import annotations

import logging

import mlflow
import numpy as np
import pandas as pd

from ..baseline import NAME, fit_tfidf, log_tfidf_model, pipeline_bytes, top_features
from ..core.command import stage_command
from ..core.config import Params, flatten
from ..core.inputs import read_json, read_provenance, require
from ..core.outputs import (METRICS, MODEL_BASELINE, PLOTS, PREPARED_IMDB, staged_dir,
                            write_json)
from ..mlops import tracking
from ..mlops.registry import Evidence, promote_if_better
from ..sentiment.reviews import review_tables, which_reviews

log = logging.getLogger(__name__)


def _write_outputs(vectorizer, clf, search: list[dict], metrics: dict) -> None:
    weights = top_features(vectorizer, clf)
    with staged_dir(MODEL_BASELINE) as out:
        (out / "model.pkl").write_bytes(pipeline_bytes(vectorizer, clf))
        weights.to_csv(out / "top_features.csv", index=False)
        pd.DataFrame([{k: v for k, v in r.items() if k != "model"} for r in search]).to_csv(
            out / "search.csv", index=False)
    write_json(METRICS / "baseline.json", {k: v for k, v in metrics.items() if k != "seconds"})
    plot_dir = PLOTS / "baseline"
    plot_dir.mkdir(parents=True, exist_ok=True)
    weights.to_csv(plot_dir / "top_features.csv", index=False)


def train_baseline(params: Params) -> dict:
    """TF-IDF (uni+bigram) + logistic regression on the same split: the bar to beat."""
    require(PREPARED_IMDB / "tokens.npy", "prepared reviews", "prepare_imdb")
    exp_id = tracking.experiment_id(tracking.connect(), "sentiment")  # beside the LSTM runs
    full_data = params.imdb.limit is None  # smoke runs register no version
    with mlflow.start_run(experiment_id=exp_id, run_name=f"tfidf-logreg-seed{params.seed}",
                          tags=tracking.run_tags("train_baseline", "cpu",
                                                 {"model_type": "tfidf-logreg"})) as run:
        tracking.attach_log_when_done(run.info.run_id)
        tracking.log_params({**flatten(params.baseline, "baseline."), "seed": params.seed,
                             **tracking.data_params(read_json(PREPARED_IMDB / "summary.json"),
                                                    read_provenance("imdb"))})
        datasets = tracking.log_datasets(
            "imdb", review_tables(PREPARED_IMDB, ("train", "val", "test")), PREPARED_IMDB, "imdb")
        metrics, vectorizer, best, search, words = fit_tfidf(params.baseline)
        # Which validation reviews the figures are on: the LSTM's evaluation checks it.
        metrics["val_data_digest"] = tracking.split_digest(which_reviews(PREPARED_IMDB, "val"))
        _write_outputs(vectorizer, best["model"], search, metrics)
        scores = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
        mlflow.log_metrics(tracking.final_metrics({k: v for k, v in scores.items()
                                                   if not k.startswith(("val_", "test_"))}))
        version = log_tfidf_model(vectorizer, best["model"], words, register=full_data)
        tracking.log_evaluation({k: v for k, v in scores.items()
                                 if k.startswith(("val_", "test_"))}, datasets, mlflow.active_run())
        if version is not None:  # champion on validation accuracy, like the LSTM
            promote_if_better(NAME, version, Evidence(
                "val_accuracy", metrics["val_accuracy"], "max", metrics["val_data_digest"],
                metrics["val_loss"]))
        for r in search:  # the validation curve over C, as a metric history
            mlflow.log_metric("search_val_accuracy", r["val_accuracy"],
                              step=int(round(np.log10(r["C"]) * 100)))
        mlflow.log_artifacts(str(MODEL_BASELINE), "outputs")
        mlflow.log_artifact(str(METRICS / "baseline.json"), "metrics")
    log.info("TF-IDF + logistic regression: test accuracy %.4f (validation %.4f, C=%g, "
             "%s features, %.0f s) -> %s", metrics["test_accuracy"], metrics["val_accuracy"],
             best["C"], f"{metrics['features']:,}", metrics["seconds"], METRICS / "baseline.json")
    return metrics


main = stage_command(train_baseline)

if __name__ == "__main__":
    main()
