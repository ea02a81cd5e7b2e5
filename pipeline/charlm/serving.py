"""The char LSTM as a registered MLflow model: a prompt, a length and a temperature in,
sampled text out."""
from __future__ import annotations

from pathlib import Path

import mlflow.pyfunc
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema

from ..mlops.registry import log_pyfunc
from .generate import generate, load_charlm

NAME = "charlm-lstm"
# What the model imports beyond the standard library (tests/test_serving.py checks the
# list against the code); pinned to the versions installed here.
REQUIREMENTS = ["mlflow", "numpy", "pandas", "pydantic", "pyyaml", "torch"]
SIGNATURE = ModelSignature(inputs=Schema([ColSpec("string", "prompt"),
                                          ColSpec("long", "length"),
                                          ColSpec("double", "temperature")]),
                           outputs=Schema([ColSpec("string", "text")]))
EXAMPLE = pd.DataFrame({"prompt": ["The island"], "length": [50], "temperature": [1.0]})

INTENDED_USE = ("Generating text in the style of Jules Verne's The Mysterious Island "
                "(English translation), for teaching sampling and temperature.")
LIMITS = [
    "Learned from one book of about a million characters: it repeats the book's names "
    "and phrases and knows nothing else.",
    "Character by character: sentences drift, and nothing it writes is checked for sense "
    "or fact.",
]


class CharLMModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        self.model, self.vocab, _, _ = load_charlm(Path(context.artifacts["model_dir"]))

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        out = [generate(self.model, self.vocab, str(row["prompt"]), int(row.get("length", 200)),
                        float(row.get("temperature", 1.0)), seed=int(row.get("seed", 1)))
               for row in model_input.to_dict("records")]
        return pd.DataFrame({"text": out})


def log_charlm_model(model_dir: Path, register: bool = True):
    """Log the model on the active run; register a version of `NAME` when asked. Its
    evaluate stage decides whether that version becomes `champion` (mlops/registry.py)."""
    return log_pyfunc(Path(__file__).with_name("mlflow_model.py"), model_dir, EXAMPLE,
                      SIGNATURE, REQUIREMENTS, NAME if register else None)
