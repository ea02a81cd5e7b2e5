"""Stage train_baseline: the linear baseline the LSTM has to beat, TF-IDF over word uni-
and bigrams, then logistic regression (scikit-learn). Same prepared tokens, same
train/validation/test split as the LSTM; the regularisation strength is picked on
validation (one nested MLflow run per value), test is scored once. Logged to the
`sentiment` MLflow experiment beside the LSTM runs, and registered as the MLflow model
`sentiment-tfidf` (raw review text in, label out) that can be served like the LSTM."""
from __future__ import annotations

import pickle
import time

import numpy as np
import pandas as pd

from ..command import stage_command
from ..config import Params, flatten
from ..data import load_reviews, review_tables
from ..evaluation import classification_metrics
from ..outputs import (METRICS, MODEL_BASELINE, PLOTS, PREPARED_IMDB, read_json, read_provenance,
                       require, staged_dir, write_json)
from ..text import Vocab, known_words_text


def review_texts(reviews, words: np.ndarray) -> list[str]:
    """The tokenised reviews as space-joined words (tokens never contain spaces)."""
    return [" ".join(words[reviews.review(i)]) for i in range(len(reviews))]


def _search_c(features: dict, labels: dict, p) -> list[dict]:
    """One logistic regression per C, each with its validation accuracy and loss, each
    an MLflow run nested in the stage's run."""
    import mlflow
    from sklearn.linear_model import LogisticRegression
    search = []
    experiment = mlflow.active_run().info.experiment_id  # nested runs beside their parent
    for c in p.c_values:
        with mlflow.start_run(experiment_id=experiment, run_name=f"tfidf-logreg-C{c:g}",
                              nested=True):
            clf = LogisticRegression(C=c, max_iter=p.max_iter, solver="liblinear")
            clf.fit(features["train"], labels["train"])
            val = classification_metrics(labels["val"], clf.predict_proba(features["val"])[:, 1])
            mlflow.log_param("baseline.C", c)
            mlflow.log_metrics({"val_accuracy": val["accuracy"], "val_loss": val["loss"]})
        search.append({"C": c, "val_accuracy": val["accuracy"], "val_loss": val["loss"],
                       "model": clf})
        print(f"C={c:g}: validation accuracy {val['accuracy']:.4f}")
    return search


def pipeline_bytes(vectorizer, clf) -> bytes:
    """The fitted vectorizer + classifier, pickled: the same bytes for the same fit in
    any process."""
    from sklearn.pipeline import make_pipeline
    # scikit-learn caches id(stop_words) on a fitted vectorizer: a memory address, new in
    # every process. Without it the pickle repeats; scikit-learn recomputes it on use.
    vars(vectorizer).pop("_stop_words_id", None)
    return pickle.dumps(make_pipeline(vectorizer, clf))


def _write_outputs(vectorizer, clf, search: list[dict], metrics: dict) -> None:
    coef = clf.coef_[0]
    names = vectorizer.get_feature_names_out()
    top = np.concatenate([np.argsort(coef)[:20], np.argsort(coef)[-20:][::-1]])
    weights = pd.DataFrame({"feature": names[top], "weight": coef[top]})
    with staged_dir(MODEL_BASELINE) as out:
        (out / "model.pkl").write_bytes(pipeline_bytes(vectorizer, clf))
        weights.to_csv(out / "top_features.csv", index=False)
        pd.DataFrame([{k: v for k, v in r.items() if k != "model"} for r in search]).to_csv(
            out / "search.csv", index=False)
    write_json(METRICS / "baseline.json", {k: v for k, v in metrics.items() if k != "seconds"})
    plot_dir = PLOTS / "baseline"
    plot_dir.mkdir(parents=True, exist_ok=True)
    weights.to_csv(plot_dir / "top_features.csv", index=False)


def _log_model(vectorizer, clf, words: np.ndarray) -> str:
    """The fitted vectorizer and classifier behind the project's tokenizer, as a
    registered MLflow scikit-learn model: raw review text in, label (1 positive) out.
    Returns the registered version."""
    import mlflow.sklearn
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer
    from ..serving import BASELINE_NAME, PACKAGE, pinned
    reader = FunctionTransformer(known_words_text, kw_args={"words": frozenset(words)})
    example = pd.DataFrame({"text": ["A wonderful film, I loved it :)", "Dull and far too long."]})
    info = mlflow.sklearn.log_model(
        make_pipeline(reader, vectorizer, clf), name="model", input_example=example,
        code_paths=[str(PACKAGE)],
        signature=ModelSignature(inputs=Schema([ColSpec("string", "text")]),
                                 outputs=Schema([ColSpec("long")])),
        pip_requirements=pinned(["mlflow", "numpy", "scikit-learn", "scipy", "skops"]),
        registered_model_name=BASELINE_NAME,
        # Stored with skops, which loads only the types named here, not arbitrary pickle.
        skops_trusted_types=["builtins.frozenset", "pipeline.text.known_words_text"])
    return info.registered_model_version


def train_baseline(params: Params) -> dict:
    """TF-IDF (uni+bigram) + logistic regression on the same split: the bar to beat."""
    import mlflow
    from .. import tracking
    from ..serving import BASELINE_NAME, promote_if_better
    require(PREPARED_IMDB / "tokens.npy", "prepared reviews", "prepare_imdb")
    exp_id = tracking.experiment_id(tracking.connect(), "sentiment")  # beside the LSTM runs
    with mlflow.start_run(experiment_id=exp_id, run_name=f"tfidf-logreg-seed{params.seed}",
                          tags={**tracking.run_tags("train_baseline", "cpu"),
                                "model_type": "tfidf-logreg"}):
        tracking.log_params({**flatten(params.baseline, "baseline."), "seed": params.seed,
                             **tracking.data_params(read_json(PREPARED_IMDB / "summary.json"),
                                                    read_provenance("imdb"))})
        datasets = tracking.log_datasets("imdb", review_tables(PREPARED_IMDB, ("train", "val", "test")),
                                         PREPARED_IMDB, "imdb")
        metrics, vectorizer, best, search, words = _fit(params.baseline)
        _write_outputs(vectorizer, best["model"], search, metrics)
        mlflow.log_metrics(tracking.final_metrics({k: v for k, v in metrics.items()
                                                   if not k.startswith(("val_", "test_"))}))
        version = _log_model(vectorizer, best["model"], words)
        tracking.log_evaluation({k: v for k, v in metrics.items()
                                 if k.startswith(("val_", "test_"))}, datasets, mlflow.active_run())
        # Champion by validation accuracy, like the LSTM.
        promote_if_better(BASELINE_NAME, version, "final_val_accuracy", "max")
        for r in search:  # the validation curve over C, as a metric history
            mlflow.log_metric("search_val_accuracy", r["val_accuracy"],
                              step=int(round(np.log10(r["C"]) * 100)))
        mlflow.log_artifacts(str(MODEL_BASELINE), "outputs")
        mlflow.log_artifact(str(METRICS / "baseline.json"), "metrics")
    print(f"TF-IDF + logistic regression: test accuracy {metrics['test_accuracy']:.4f} "
          f"(validation {metrics['val_accuracy']:.4f}, C={best['C']:g}, "
          f"{metrics['features']:,} features, {metrics['seconds']:.0f} s) -> "
          f"{METRICS / 'baseline.json'}")
    return metrics


def _fit(p) -> tuple[dict, object, dict, list[dict], np.ndarray]:
    """Fit the vectorizer on the training part, pick C on validation, score test once."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    started = time.perf_counter()
    splits = load_reviews(PREPARED_IMDB)  # whole reviews: no head/tail cut here
    splits.pop("unsup", None)  # no labels
    words = np.array(Vocab.load(PREPARED_IMDB / "vocab.txt").itos, dtype=object)
    texts = {name: review_texts(split, words) for name, split in splits.items()}
    labels = {name: split.labels.astype(int) for name, split in splits.items()}
    # The vocabulary of n-grams is fitted on the training part only, like the LSTM's.
    # Tokens are already split by spaces; a pattern, not a function, so skops can store it.
    vectorizer = TfidfVectorizer(token_pattern=r"\S+", lowercase=False,
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
    return metrics, vectorizer, best, search, words


main = stage_command(train_baseline)

if __name__ == "__main__":
    main()
