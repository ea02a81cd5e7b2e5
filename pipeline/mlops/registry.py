"""The MLflow model registry: models logged "from code", registered, and the `champion`
alias (MLflow's registry stages are deprecated).

A model is logged by the path of a small file that builds it (`<family>/mlflow_model.py`,
`mlflow.models.set_model`), so no pickled object is stored: the package's code travels
with the model, the stage's output directory is its artifact, and the weights load with
`torch.load(weights_only=True)`.

Which version is `champion` (what a team serves) is decided on validation data, never
on test: the test figures stay an unbiased report. A version carries its evidence as
tags (`eval_metric`, `eval_value`, `eval_data_digest`, and for the LSTM classifier the
TF-IDF baseline's figure on the same reviews). `champion` moves to a new version only
when the evidence is comparable (the same metric on the same validation data: a
different seed, split or archive gives other validation reviews) and better, and for
the classifier only when it also beats the baseline. Runs on a `limit`ed data set (the
smoke recipe) log their model on the run but register no version.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import mlflow
import mlflow.pyfunc
import pandas as pd
from mlflow.models import ModelSignature

log = logging.getLogger(__name__)

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


@dataclass(frozen=True)
class Evidence:
    """What a version is judged on: one metric on one set of validation data."""
    metric: str                      # e.g. val_accuracy
    value: float
    mode: str                        # max | min
    data_digest: str                 # the validation data it was measured on
    tie_break: float | None = None   # the validation loss, lower wins a tie
    baseline: "Evidence | None" = None  # a bar on the same data it must clear

    def beats(self, other_value: float, other_tie_break: float | None = None) -> bool:
        if self.value != other_value:
            return self.value > other_value if self.mode == "max" else self.value < other_value
        return (self.tie_break is not None and other_tie_break is not None
                and self.tie_break < other_tie_break)

    def tags(self) -> dict[str, str]:
        tags = {"eval_metric": self.metric, "eval_value": repr(self.value),
                "eval_data_digest": self.data_digest}
        if self.tie_break is not None:
            tags["eval_tie_break_loss"] = repr(self.tie_break)
        if self.baseline is not None:
            tags["baseline_value"] = repr(self.baseline.value)
            tags["margin_over_baseline"] = f"{self.value - self.baseline.value:+.4f}"
        return tags


def registered_version(name: str, run_id: str) -> str | None:
    """The version of `name` registered from `run_id` (None: the run registered none)."""
    found = mlflow.MlflowClient().search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
    return found[0].version if found else None


def _champion(client: mlflow.MlflowClient, name: str):
    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except mlflow.exceptions.MlflowException:
        return None


def _refusal(evidence: Evidence, current) -> str | None:
    """Why `evidence` may not take `champion` from `current` (None: it may)."""
    base = evidence.baseline
    if base is not None:
        if base.data_digest != evidence.data_digest:
            return "the baseline was measured on other validation data"
        if not evidence.beats(base.value, base.tie_break):
            return f"it does not beat the baseline ({evidence.metric} {base.value:.4f})"
    if current is None:
        return None
    tags = current.tags
    if "eval_data_digest" not in tags:  # promoted before versions carried evidence
        return None
    if (tags["eval_data_digest"], tags.get("eval_metric")) != (evidence.data_digest,
                                                               evidence.metric):
        return (f"version {current.version} was measured on other validation data or by "
                "another metric: not comparable")
    old, old_tie = float(tags["eval_value"]), tags.get("eval_tie_break_loss")
    if not evidence.beats(old, None if old_tie is None else float(old_tie)):
        return f"version {current.version} is as good or better ({evidence.metric} {old:.4f})"
    return None


def promote_if_better(name: str, version: str, evidence: Evidence) -> bool:
    """Tag `version` with its evidence and move `champion` to it when the evidence is
    comparable with the champion's and better (see the module's docstring)."""
    client = mlflow.MlflowClient()
    for key, value in evidence.tags().items():
        client.set_model_version_tag(name, version, key, value)
    current = _champion(client, name)
    refusal = _refusal(evidence, current)
    if refusal is not None:
        client.set_model_version_tag(name, version, "champion_decision", f"not promoted: {refusal}")
        log.info("%s version %s (%s %.4f) is not champion: %s. To serve it anyway, set the "
                 "alias in the MLflow UI's model page.", name, version, evidence.metric,
                 evidence.value, refusal)
        return False
    client.set_registered_model_alias(name, CHAMPION, version)
    was = f"after version {current.version}" if current is not None else "the first"
    client.set_model_version_tag(name, version, "champion_decision", f"promoted ({was})")
    log.info("%s version %s is now @%s (%s %.4f)", name, version, CHAMPION, evidence.metric,
             evidence.value)
    return True
