"""The classifier as a registered MLflow model: raw review text in (the tokenizer and
vocabulary travel with it), label and probability of 'positive' out."""
from __future__ import annotations

from pathlib import Path

import mlflow.pyfunc
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema

from ..mlops.registry import log_pyfunc
from .predict import load_sentiment_model, predict_texts

NAME = "sentiment-lstm"
# What the model imports beyond the standard library (tests/test_serving.py checks the
# list against the code); pinned to the versions installed here.
REQUIREMENTS = ["mlflow", "numpy", "pandas", "pydantic", "pyyaml", "torch"]
SIGNATURE = ModelSignature(inputs=Schema([ColSpec("string", "text")]),
                           outputs=Schema([ColSpec("string", "label"),
                                           ColSpec("double", "probability")]))
EXAMPLE = pd.DataFrame({"text": ["A wonderful film, I loved it :)", "Dull and far too long."]})

INTENDED_USE = (
    "Telling positive from negative English movie reviews like IMDb's user reviews; the "
    "reference model of this pipeline, to compare recipes against.")
LIMITS = [
    "Two classes only: IMDb leaves out ratings 5-6, so mixed or neutral reviews get a "
    "confident-looking label anyway.",
    "English movie reviews only; other domains (products, tweets) need their own test.",
    "Trained on the first `head_tokens` and last `tail_tokens` tokens of long reviews; "
    "it reads whole reviews when scoring, so a very long review costs more time.",
    "Words not in the training reviews become <unk>; a review with no known word is "
    "answered from no evidence (`predict` reports the known-word count).",
]


class SentimentModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        # Loaded once: a broken model fails here, not at the first request.
        self.loaded = load_sentiment_model(Path(context.artifacts["model_dir"]))

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        texts = [str(t) for t in model_input["text"]]
        results = predict_texts(texts, loaded=self.loaded)
        return pd.DataFrame([r[:2] for r in results], columns=["label", "probability"])


def log_sentiment_model(model_dir: Path, register: bool = True):
    """Log the model on the active run; register a version of `NAME` when asked. Its
    evaluate stage decides whether that version becomes `champion` (mlops/registry.py)."""
    return log_pyfunc(Path(__file__).with_name("mlflow_model.py"), model_dir, EXAMPLE,
                      SIGNATURE, REQUIREMENTS, NAME if register else None)
