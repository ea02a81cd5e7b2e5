"""MLflow pyfunc wrappers: the trained models as self-contained MLflow models.

The sentiment model takes raw review text (tokenizer and vocabulary travel with it) and
returns label and probability; the char model takes a prompt, a length and a temperature
and returns text. Each bundles the stage's output directory as an artifact, so the
plain `model.pt` state_dict inside stays loadable with `torch.load(weights_only=True)`.
"""
from __future__ import annotations

from pathlib import Path

import mlflow.pyfunc
import pandas as pd

SENTIMENT_NAME = "sentiment-lstm"
CHARLM_NAME = "charlm-lstm"


class SentimentModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        from .inference import load_sentiment_model
        # Loaded once, at load time: a broken model fails here, not at the first request.
        self.loaded = load_sentiment_model(Path(context.artifacts["model_dir"]))

    def predict(self, context, model_input, params=None):
        from .inference import predict_texts
        texts = _column(model_input, "text")
        results = predict_texts([str(t) for t in texts], loaded=self.loaded)
        return pd.DataFrame([r[:2] for r in results], columns=["label", "probability"])


class CharLMModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        from .inference import load_charlm
        self.model, self.vocab, _, _ = load_charlm(Path(context.artifacts["model_dir"]))

    def predict(self, context, model_input, params=None):
        from .evaluation import generate
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        out = []
        for row in frame.to_dict("records"):
            out.append(generate(self.model, self.vocab, str(row["prompt"]),
                                int(row.get("length", 200)),
                                float(row.get("temperature", 1.0)),
                                seed=int(row.get("seed", 1))))
        return pd.DataFrame({"text": out})


def _column(model_input, name: str) -> list:
    if isinstance(model_input, pd.DataFrame):
        if name not in model_input.columns:
            raise ValueError(f"input needs a {name!r} column, got {list(model_input.columns)}")
        return list(model_input[name])
    if isinstance(model_input, (list, tuple)):
        return list(model_input)
    raise ValueError(f"input must be a DataFrame with a {name!r} column or a list of strings")


def _log(python_model, model_dir: Path, input_example: pd.DataFrame, signature,
         registered_name: str | None):
    import torch
    package = Path(__file__).resolve().parent
    return mlflow.pyfunc.log_model(
        name="model", python_model=python_model, artifacts={"model_dir": str(model_dir)},
        code_paths=[str(package)], signature=signature, input_example=input_example,
        pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", f"pandas=={pd.__version__}",
                          f"mlflow=={mlflow.__version__}", "click", "tqdm", "pyyaml"],
        registered_model_name=registered_name)


def log_sentiment_model(model_dir: Path, register: bool = True):
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema
    signature = ModelSignature(inputs=Schema([ColSpec("string", "text")]),
                               outputs=Schema([ColSpec("string", "label"),
                                               ColSpec("double", "probability")]))
    example = pd.DataFrame({"text": ["A wonderful film, I loved it :)",
                                     "Dull and far too long."]})
    return _log(SentimentModel(), model_dir, example, signature,
                SENTIMENT_NAME if register else None)


def log_charlm_model(model_dir: Path, register: bool = True):
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema
    signature = ModelSignature(inputs=Schema([ColSpec("string", "prompt"),
                                              ColSpec("long", "length"),
                                              ColSpec("double", "temperature")]),
                               outputs=Schema([ColSpec("string", "text")]))
    example = pd.DataFrame({"prompt": ["The island"], "length": [50], "temperature": [1.0]})
    return _log(CharLMModel(), model_dir, example, signature, CHARLM_NAME if register else None)
