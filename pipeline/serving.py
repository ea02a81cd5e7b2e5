"""The trained models as MLflow models, logged "from code" and registered.

The sentiment model takes raw review text (tokenizer and vocabulary travel with it) and
returns label and probability; the char model takes a prompt, a length and a temperature
and returns text. Each is logged by the path of a small file that builds it
(pipeline/pyfunc_*.py, `mlflow.models.set_model`), so no pickled object is stored: the
package's code travels with the model, the stage's output directory is its artifact, and
the weights load with `torch.load(weights_only=True)`.

Every training registers a version; the alias `champion` moves to it only when its
validation metric beats the current champion's (MLflow's registry stages are deprecated).
"""
from __future__ import annotations

from pathlib import Path

import mlflow.pyfunc
import pandas as pd

SENTIMENT_NAME = "sentiment-lstm"
CHARLM_NAME = "charlm-lstm"
BASELINE_NAME = "sentiment-tfidf"
CHAMPION = "champion"
PACKAGE = Path(__file__).resolve().parent
# What the models import beyond the standard library (tests/test_serving.py checks the
# list against the code); pinned to the versions installed here.
REQUIREMENTS = ["mlflow", "numpy", "pandas", "pydantic", "pyyaml", "torch"]


class SentimentModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        from pipeline.inference import load_sentiment_model
        # Loaded once: a broken model fails here, not at the first request.
        self.loaded = load_sentiment_model(Path(context.artifacts["model_dir"]))

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        from pipeline.inference import predict_texts
        texts = [str(t) for t in model_input["text"]]
        results = predict_texts(texts, loaded=self.loaded)
        return pd.DataFrame([r[:2] for r in results], columns=["label", "probability"])


class CharLMModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        from pipeline.inference import load_charlm
        self.model, self.vocab, _, _ = load_charlm(Path(context.artifacts["model_dir"]))

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        from pipeline.evaluation import generate
        out = [generate(self.model, self.vocab, str(row["prompt"]), int(row.get("length", 200)),
                        float(row.get("temperature", 1.0)), seed=int(row.get("seed", 1)))
               for row in model_input.to_dict("records")]
        return pd.DataFrame({"text": out})


def pinned(names: list[str]) -> list[str]:
    """`name==version` as installed here (torch without its local +cpu tag)."""
    from importlib.metadata import PackageNotFoundError, version

    def installed(name: str) -> str:
        try:
            return version({"pyyaml": "PyYAML"}.get(name, name))
        except PackageNotFoundError:
            if name != "mlflow":
                raise
            return version("mlflow-skinny")  # the same code without the UI
    return [f"{name}=={installed(name).split('+')[0]}" for name in names]


def pinned_requirements() -> list[str]:
    return pinned(REQUIREMENTS)


def _log(model_file: str, model_dir: Path, input_example: pd.DataFrame, signature,
         registered_name: str | None):
    return mlflow.pyfunc.log_model(
        name="model", python_model=str(PACKAGE / model_file),
        artifacts={"model_dir": str(model_dir)}, code_paths=[str(PACKAGE)],
        signature=signature, input_example=input_example,
        pip_requirements=pinned_requirements(), registered_model_name=registered_name)


def promote_if_better(name: str, version: str, metric: str, mode: str) -> bool:
    """Move the `champion` alias of `name` to `version` when its run's `metric` beats
    the champion's run's (`mode` max or min); the first version is champion by default."""
    client = mlflow.MlflowClient()
    new = client.get_run(client.get_model_version(name, version).run_id).data.metrics[metric]
    try:
        current = client.get_model_version_by_alias(name, CHAMPION)
    except mlflow.exceptions.MlflowException:
        current = None
    if current is not None:
        old = client.get_run(current.run_id).data.metrics.get(metric)
        if old is not None and not (new > old if mode == "max" else new < old):
            print(f"{name} version {version}: {metric} {new:.4f}, champion stays version "
                  f"{current.version} ({old:.4f})")
            return False
    client.set_registered_model_alias(name, CHAMPION, version)
    print(f"{name} version {version} is now @{CHAMPION} ({metric} {new:.4f})")
    return True


def log_sentiment_model(model_dir: Path, register: bool = True):
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema
    signature = ModelSignature(inputs=Schema([ColSpec("string", "text")]),
                               outputs=Schema([ColSpec("string", "label"),
                                               ColSpec("double", "probability")]))
    example = pd.DataFrame({"text": ["A wonderful film, I loved it :)",
                                     "Dull and far too long."]})
    info = _log("pyfunc_sentiment.py", model_dir, example, signature,
                SENTIMENT_NAME if register else None)
    if register:
        promote_if_better(SENTIMENT_NAME, info.registered_model_version, "best_val_accuracy", "max")
    return info


def log_charlm_model(model_dir: Path, register: bool = True):
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema
    signature = ModelSignature(inputs=Schema([ColSpec("string", "prompt"),
                                              ColSpec("long", "length"),
                                              ColSpec("double", "temperature")]),
                               outputs=Schema([ColSpec("string", "text")]))
    example = pd.DataFrame({"prompt": ["The island"], "length": [50], "temperature": [1.0]})
    info = _log("pyfunc_charlm.py", model_dir, example, signature,
                CHARLM_NAME if register else None)
    if register:
        promote_if_better(CHARLM_NAME, info.registered_model_version, "best_val_loss", "min")
    return info
