"""Stage train_baseline: the linear baseline the LSTM has to beat, TF-IDF over word uni-
and bigrams, then
logistic regression (scikit-learn). Same prepared tokens, same train/validation/test
split as the LSTM; the regularisation strength is picked on validation, test is scored
once. Logged to the `sentiment` MLflow experiment, beside the LSTM runs."""
from __future__ import annotations

import pickle
import time

import numpy as np
import pandas as pd

from ..command import stage_command
from ..config import Params, flatten
from ..data import load_reviews
from ..evaluation import classification_metrics
from ..outputs import (METRICS, MODEL_BASELINE, PLOTS, PREPARED_IMDB, read_json, read_provenance,
                       require, staged_dir, write_json)
from ..text import Vocab


def review_texts(reviews, words: np.ndarray) -> list[str]:
    """The tokenised reviews as space-joined words (tokens never contain spaces)."""
    return [" ".join(words[reviews.review(i)]) for i in range(len(reviews))]


def _search_c(features: dict, labels: dict, p) -> list[dict]:
    """One logistic regression per C, each with its validation accuracy and loss."""
    from sklearn.linear_model import LogisticRegression
    search = []
    for c in p.c_values:
        clf = LogisticRegression(C=c, max_iter=p.max_iter, solver="liblinear")
        clf.fit(features["train"], labels["train"])
        val = classification_metrics(labels["val"], clf.predict_proba(features["val"])[:, 1])
        search.append({"C": c, "val_accuracy": val["accuracy"], "val_loss": val["loss"],
                       "model": clf})
        print(f"C={c:g}: validation accuracy {val['accuracy']:.4f}")
    return search


def _write_outputs(vectorizer, clf, search: list[dict], metrics: dict) -> None:
    from sklearn.pipeline import make_pipeline
    coef = clf.coef_[0]
    names = vectorizer.get_feature_names_out()
    top = np.concatenate([np.argsort(coef)[:20], np.argsort(coef)[-20:][::-1]])
    weights = pd.DataFrame({"feature": names[top], "weight": coef[top]})
    with staged_dir(MODEL_BASELINE) as out:
        with open(out / "model.pkl", "wb") as f:
            pickle.dump(make_pipeline(vectorizer, clf), f)
        weights.to_csv(out / "top_features.csv", index=False)
        pd.DataFrame([{k: v for k, v in r.items() if k != "model"} for r in search]).to_csv(
            out / "search.csv", index=False)
    write_json(METRICS / "baseline.json", {k: v for k, v in metrics.items() if k != "seconds"})
    plot_dir = PLOTS / "baseline"
    plot_dir.mkdir(parents=True, exist_ok=True)
    weights.to_csv(plot_dir / "top_features.csv", index=False)


def _track(params: Params, search: list[dict], metrics: dict) -> None:
    import mlflow
    from .. import tracking
    exp_id = tracking.experiment_id(tracking.connect(), "sentiment")  # beside the LSTM runs
    with mlflow.start_run(experiment_id=exp_id, run_name="tfidf-logreg",
                          tags={**tracking.run_tags("train_baseline", "cpu"),
                                "model_type": "tfidf-logreg"}):
        tracking.log_params({**flatten(params.baseline, "baseline."), "seed": params.seed,
                             **tracking.data_params(read_json(PREPARED_IMDB / "summary.json"),
                                                    read_provenance("imdb"))})
        mlflow.log_metrics(tracking.final_metrics(metrics))
        for r in search:  # the validation curve over C, as a metric history
            mlflow.log_metric("search_val_accuracy", r["val_accuracy"],
                              step=int(round(np.log10(r["C"]) * 100)))
        mlflow.log_artifacts(str(MODEL_BASELINE), "outputs")
        mlflow.log_artifact(str(METRICS / "baseline.json"), "metrics")


def train_baseline(params: Params) -> dict:
    """TF-IDF (uni+bigram) + logistic regression on the same split: the bar to beat."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    p = params.baseline
    require(PREPARED_IMDB / "tokens.npy", "prepared reviews", "prepare_imdb")
    started = time.perf_counter()
    splits = load_reviews(PREPARED_IMDB)  # whole reviews: no head/tail cut here
    words = np.array(Vocab.load(PREPARED_IMDB / "vocab.txt").itos, dtype=object)
    texts = {name: review_texts(split, words) for name, split in splits.items()}
    labels = {name: split.labels.astype(int) for name, split in splits.items()}

    # The vocabulary of n-grams is fitted on the training part only, like the LSTM's.
    vectorizer = TfidfVectorizer(tokenizer=str.split, token_pattern=None, lowercase=False,
                                 ngram_range=(1, p.ngram_max), min_df=p.min_df,
                                 max_features=p.max_features, sublinear_tf=True)
    features = {"train": vectorizer.fit_transform(texts["train"])}
    for name in ("val", "test"):
        features[name] = vectorizer.transform(texts[name])
    search = _search_c(features, labels, p)
    best = max(search, key=lambda r: (r["val_accuracy"], -r["val_loss"]))
    results = {name: classification_metrics(labels[name],
                                             best["model"].predict_proba(features[name])[:, 1])
               for name in ("val", "test")}
    metrics = {**{f"test_{k}": v for k, v in results["test"].items()},
               **{f"val_{k}": v for k, v in results["val"].items()},
               "best_C": best["C"], "features": len(vectorizer.vocabulary_),
               "test_reviews": int(len(labels["test"])),
               "seconds": round(time.perf_counter() - started, 1)}
    _write_outputs(vectorizer, best["model"], search, metrics)
    _track(params, search, metrics)
    print(f"TF-IDF + logistic regression: test accuracy {metrics['test_accuracy']:.4f} "
          f"(validation {metrics['val_accuracy']:.4f}, C={best['C']:g}, "
          f"{metrics['features']:,} features, {metrics['seconds']:.0f} s) -> "
          f"{METRICS / 'baseline.json'}")
    return metrics


main = stage_command(train_baseline)

if __name__ == "__main__":
    main()
