"""The linear baseline the LSTM has to beat: TF-IDF over word uni- and bigrams, then
logistic regression (scikit-learn), on the same prepared tokens and the same
train/validation/test split as the LSTM. No torch: it reads the prepared reviews as
numpy arrays.

Registered as the MLflow model `sentiment-tfidf` (raw review text in, label out), stored
with skops, which loads only the types it is told to trust, not arbitrary pickle.
"""
from __future__ import annotations

import logging
import pickle
import time

import mlflow
import mlflow.sklearn
import numpy as np
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from .core.config import BaselineParams
from .core.outputs import PREPARED_IMDB
from .mlops.registry import PACKAGE, pinned
from .sentiment.metrics import classification_metrics
from .sentiment.reviews import ReviewSet, load_reviews
from .sentiment.text import Vocab, known_words_text

NAME = "sentiment-tfidf"

log = logging.getLogger(__name__)


def review_texts(reviews: ReviewSet, words: np.ndarray) -> list[str]:
    """The tokenised reviews as space-joined words (tokens never contain spaces)."""
    return [" ".join(words[reviews.review(i)]) for i in range(len(reviews))]


def search_c(features: dict, labels: dict, p: BaselineParams) -> list[dict]:
    """One logistic regression per C, each with its validation accuracy and loss, each
    an MLflow run nested in the stage's run."""
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
        log.info("C=%g: validation accuracy %.4f", c, val["accuracy"])
    return search


def fit_tfidf(p: BaselineParams) -> tuple[dict, object, dict, list[dict], np.ndarray]:
    """Fit the vectorizer on the training part, pick C on validation, score test once.
    (metrics, vectorizer, best search entry, the search, the vocabulary's words)."""
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
    search = search_c(features, labels, p)
    best = max(search, key=lambda r: (r["val_accuracy"], -r["val_loss"]))
    results = {name: classification_metrics(
        labels[name], best["model"].predict_proba(features[name])[:, 1])
        for name in ("val", "test")}
    metrics = {**{f"test_{k}": v for k, v in results["test"].items()},
               **{f"val_{k}": v for k, v in results["val"].items()},
               "best_C": best["C"], "features": len(vectorizer.vocabulary_),
               "test_reviews": int(len(labels["test"])),
               "seconds": round(time.perf_counter() - started, 1)}
    return metrics, vectorizer, best, search, words


def pipeline_bytes(vectorizer, clf) -> bytes:
    """The fitted vectorizer + classifier, pickled: the same bytes for the same fit in
    any process."""
    # scikit-learn caches id(stop_words) on a fitted vectorizer: a memory address, new in
    # every process. Without it the pickle repeats; scikit-learn recomputes it on use.
    vars(vectorizer).pop("_stop_words_id", None)
    return pickle.dumps(make_pipeline(vectorizer, clf))


def top_features(vectorizer, clf, n: int = 20) -> pd.DataFrame:
    """The n most negative and n most positive n-grams by weight."""
    coef = clf.coef_[0]
    names = vectorizer.get_feature_names_out()
    top = np.concatenate([np.argsort(coef)[:n], np.argsort(coef)[-n:][::-1]])
    return pd.DataFrame({"feature": names[top], "weight": coef[top]})


def log_tfidf_model(vectorizer, clf, words: np.ndarray, register: bool = True) -> str | None:
    """The fitted vectorizer and classifier behind the project's tokenizer, as an MLflow
    scikit-learn model: raw review text in, label (1 positive) out. Returns the version
    registered (None when not asked to register)."""
    reader = FunctionTransformer(known_words_text, kw_args={"words": frozenset(words)})
    example = pd.DataFrame({"text": ["A wonderful film, I loved it :)", "Dull and far too long."]})
    info = mlflow.sklearn.log_model(
        make_pipeline(reader, vectorizer, clf), name="model", input_example=example,
        code_paths=[str(PACKAGE)],
        signature=ModelSignature(inputs=Schema([ColSpec("string", "text")]),
                                 outputs=Schema([ColSpec("long")])),
        pip_requirements=pinned(["mlflow", "numpy", "scikit-learn", "scipy", "skops"]),
        registered_model_name=NAME if register else None,
        skops_trusted_types=["builtins.frozenset",
                             f"{known_words_text.__module__}.known_words_text"])
    return info.registered_model_version
