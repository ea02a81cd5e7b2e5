"""The MLflow model registry: models logged "from code", registered, and the `champion`
alias (MLflow's registry stages are deprecated).

A model is logged by the path of a small file that builds it (`<family>/mlflow_model.py`,
`mlflow.models.set_model`), so no pickled object is stored: the package's code travels
with the model, the stage's output directory is its artifact, and the weights load with
`torch.load(weights_only=True)`. Every training registers a version; `champion` moves to
it only when its validation metric beats the current champion's.
"""
from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import mlflow
import mlflow.pyfunc
import pandas as pd
from mlflow.models import ModelSignature

CHAMPION = "champion"
PACKAGE = Path(__file__).resolve().parents[1]  # pipeline/, logged with every model


def _installed(name: str) -> str:
    try:
        return version({"pyyaml": "PyYAML"}.get(name, name))
    except PackageNotFoundError:
        if name != "mlflow":
            raise
        return version("mlflow-skinny")  # the same code without the UI


def pinned(names: list[str]) -> list[str]:
    """`name==version` as installed here (torch without its local +cpu tag)."""
    return [f"{name}=={_installed(name).split('+')[0]}" for name in names]


def log_pyfunc(model_file: Path, model_dir: Path, input_example: pd.DataFrame,
               signature: ModelSignature, requirements: list[str],
               registered_name: str | None):
    """Log the model that `model_file` builds from `model_dir`, with the package's code."""
    return mlflow.pyfunc.log_model(
        name="model", python_model=str(model_file),
        artifacts={"model_dir": str(model_dir)}, code_paths=[str(PACKAGE)],
        signature=signature, input_example=input_example,
        pip_requirements=pinned(requirements), registered_model_name=registered_name)


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
