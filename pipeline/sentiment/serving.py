"""The classifier as a registered MLflow model: raw review text in (the tokenizer and
vocabulary travel with it); out, per review: the label ("none" when the review has no
word the model knows), the probability of that label and of "positive", the known-word
and token counts, and whether it was cut to MAX_TOKENS."""
from __future__ import annotations

from pathlib import Path

import mlflow.pyfunc
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema

from ..mlops.registry import log_pyfunc
from .predict import MAX_TOKENS, load_sentiment_model, predict_texts

NAME = "sentiment-lstm"
# What the model imports beyond the standard library (tests/test_serving.py checks the
# list against the code); pinned to the versions installed here.
REQUIREMENTS = ["mlflow", "numpy", "pandas", "pydantic", "pyyaml", "torch"]
SIGNATURE = ModelSignature(inputs=Schema([ColSpec("string", "text")]),
                           outputs=Schema([ColSpec("string", "label"),
                                           ColSpec("double", "probability"),
                                           ColSpec("double", "p_positive"),
                                           ColSpec("long", "known_words"),
                                           ColSpec("long", "tokens"),
                                           ColSpec("boolean", "cut")]))
NO_LABEL = "none"
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
    "Words not in the training reviews become <unk>; a review with no known word gets "
    "no label (`none`).",
    f"Reviews longer than {MAX_TOKENS:,} tokens (none in IMDb) are scored on their first "
    "and last half of that many (`cut`).",
]


class SentimentModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        # Loaded once: a broken model fails here, not at the first request.
        self.loaded = load_sentiment_model(Path(context.artifacts["model_dir"]))

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        texts = [str(t) for t in model_input["text"]]
        answers = pd.DataFrame([{"label": r.label or NO_LABEL, "probability": r.probability,
                                 "p_positive": r.positive, "known_words": r.known_words,
                                 "tokens": r.tokens, "cut": r.cut}
                                for r in predict_texts(texts, loaded=self.loaded)],
                               columns=[c.name for c in SIGNATURE.outputs.inputs])
        # No label, no probability: None (JSON null), as NaN is no JSON.
        answers["probability"] = answers["probability"].astype(object)
        answers.loc[answers["label"] == NO_LABEL, "probability"] = None
        return answers


def log_sentiment_model(model_dir: Path, register: bool = True):
    """Log the model on the active run; register a version of `NAME` when asked. Its
    evaluate stage decides whether that version becomes `champion` (mlops/registry.py)."""
    return log_pyfunc(Path(__file__).with_name("mlflow_model.py"), model_dir, EXAMPLE,
                      SIGNATURE, REQUIREMENTS, NAME if register else None)
