"""MLflow: where runs go, what every run is tagged with, and resuming runs.

Default store: `sqlite:///<repo>/mlflow.db` with artifacts in `<repo>/mlartifacts`.
`<repo>` is the real repository even when DVC runs a stage in a temporary copy
(`dvc exp run --temp` / `--queue` work in `<repo>/.dvc/tmp/exps/<tmp>/`): a relative
`mlflow.db` would land in that copy and vanish with it. A team sets
`MLFLOW_TRACKING_URI` (and MLflow's own auth variables) to use a server instead.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import traceback
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import mlflow
import mlflow.data
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from ..core import logs
from ..core.config import flatten
from ..core.errors import TrackingUnavailable
from ..core.inputs import read_provenance
from ..core.outputs import repo_root, sha256_file
from .lineage import lineage_tags

log = logging.getLogger(__name__)

# Bounded waits for an unreachable server (MLflow's own defaults retry for minutes).
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "15")


def default_uri() -> str:
    return f"sqlite:///{repo_root() / 'mlflow.db'}"


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or default_uri()


def connect() -> MlflowClient:
    """Point MLflow at the store and check it answers, before any training starts."""
    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    try:
        client.search_experiments(max_results=1)
    except Exception as exc:  # MLflow raises several types for an unreachable store
        raise TrackingUnavailable(
            f"MLflow tracking store {uri} is not reachable: {type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:300]}. Nothing was trained. Check the server or "
            "unset MLFLOW_TRACKING_URI to use the local mlflow.db.") from exc
    return client


def experiment_id(client: MlflowClient, name: str) -> str:
    """The experiment's id, created on first use. Two stages starting at once on a fresh
    store (queued experiments) may both try to create it: the loser reads it back."""
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    artifact_location = None
    if tracking_uri() == default_uri():
        artifact_location = (repo_root() / "mlartifacts" / name).as_uri()
    try:
        return client.create_experiment(name, artifact_location=artifact_location)
    except MlflowException:
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def run_tags(stage: str, device: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """What made the run (lineage.py) and where it ran."""
    return {**lineage_tags(stage), "device": device, **(extra or {})}


def attach_log_when_done(run_id: str) -> None:
    """The stage's log file goes to this run as `logs/<stage>.log` when the stage ends,
    whether it succeeded or failed."""
    def attach(path: Path) -> None:
        MlflowClient(tracking_uri()).log_artifact(run_id, str(path), "logs")
    logs.at_stage_end(attach)


def run_name(stage: str, seed: int) -> str:
    """A name a person can tell apart in the UI: stage, DVC experiment, seed."""
    return "-".join(filter(None, [stage, os.environ.get("DVC_EXP_NAME"), f"seed{seed}"]))


def start_run(experiment: str, stage: str, device: str, resume_file: Path,
              fingerprint: str, name: str | None = None,
              tags: dict[str, str] | None = None) -> mlflow.ActiveRun:
    """Start the stage's run, or resume the run of a killed attempt with the same
    fingerprint (its id is kept in `resume_file` beside the checkpoint)."""
    client = connect()
    exp_id = experiment_id(client, experiment)
    run_id = None
    if resume_file.exists():
        try:
            saved = json.loads(resume_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:  # a new run is the safe answer
            log.warning("%s is unreadable (%s): starting a new run", resume_file, exc)
            saved = {}
        if (isinstance(saved, dict) and saved.get("fingerprint") == fingerprint
                and saved.get("tracking_uri") == tracking_uri()):
            run_id = saved.get("run_id")
    # CPU, memory (and GPU, with nvidia-ml-py) sampled while the run is active.
    if run_id is not None:
        run = mlflow.start_run(run_id=run_id, log_system_metrics=True)
    else:
        run = mlflow.start_run(experiment_id=exp_id, run_name=name,
                               tags=run_tags(stage, device, tags), log_system_metrics=True)
        resume_file.parent.mkdir(parents=True, exist_ok=True)
        resume_file.write_text(json.dumps({"fingerprint": fingerprint, "run_id": run.info.run_id,
                                           "tracking_uri": tracking_uri()}))
    attach_log_when_done(run.info.run_id)
    return run


def open_training_run(experiment: str, model_sha256: str, stage: str) -> mlflow.ActiveRun:
    """The training run that produced the model with this digest (tag `model_sha256`), so
    the evaluation is logged beside it; a new run if this store has none (a model pulled
    from a DVC remote, trained against another store)."""
    client = connect()
    exp_id = experiment_id(client, experiment)
    found = client.search_runs([exp_id], f"tags.model_sha256 = '{model_sha256}'",
                               order_by=["attributes.start_time DESC"], max_results=1)
    if found:
        run = mlflow.start_run(run_id=found[0].info.run_id)
    else:
        log.warning("no training run of model %s in %s: logging the evaluation to a new "
                    "run", model_sha256[:12], tracking_uri())
        run = mlflow.start_run(experiment_id=exp_id, run_name=f"{stage}-{model_sha256[:8]}",
                               tags={**run_tags(stage, "cpu"), "model_sha256": model_sha256})
    mlflow.set_tag("dvc_eval_stage", stage)
    attach_log_when_done(run.info.run_id)
    return run


def record_failure(exc: BaseException) -> None:
    """Why the active run failed, on the run itself: a tag to filter on and the
    traceback as an artifact (a queued DVC experiment's own log does not keep it)."""
    mlflow.set_tag("error", f"{type(exc).__name__}: {exc}"[:5000])
    mlflow.log_text("".join(traceback.format_exception(exc)), "error.txt")


def log_params(params: dict[str, Any]) -> None:
    # MLflow refuses to change a logged param: on a resumed run log only the new ones.
    logged = mlflow.active_run().data.params if mlflow.active_run() else {}
    fresh = {k: ("null" if v is None else v) for k, v in params.items() if k not in logged}
    items = list(fresh.items())
    for i in range(0, len(items), 100):  # the server's batch limit
        mlflow.log_params(dict(items[i:i + 100]))


def data_params(summary: dict[str, Any], provenance: dict[str, Any]) -> dict[str, Any]:
    """A prepared data set's summary.json and where its raw data came from
    (data/provenance/), as `data.*` params (lists stay in the artifacts)."""
    fetched = {k: v for k, v in provenance.items() if k in ("url", "sha256", "bytes", "fetched_at")}
    return {f"data.{k}": v for k, v in flatten({**summary, "source": fetched}).items()
            if not isinstance(v, list)}


def final_metrics(metrics: dict) -> dict[str, float]:
    """Evaluation metrics for the training run. Validation figures get a `final_` prefix
    so they do not add a point to the training history of the same name (the char LM's
    final held-out loss is also computed differently from the estimate at each evaluation
    during training)."""
    return {(f"final_{k}" if k.startswith("val_") else k): float(v) for k, v in metrics.items()}


# MLflow's dataset contexts for the splits the stages read.
CONTEXTS = {"train": "training", "val": "validation", "test": "test", "unsup": "pretraining"}


def content_digest(data_dir: Path) -> str:
    """The prepared data's identity: a digest of every file's digest (the same bytes give
    the same digest on any machine, like DVC's hash of the output)."""
    files = sorted(p for p in Path(data_dir).rglob("*") if p.is_file())
    blob = "".join(f"{p.relative_to(data_dir).as_posix()}:{sha256_file(p)}\n" for p in files)
    return hashlib.sha256(blob.encode()).hexdigest()


def split_digest(data: pd.DataFrame | np.ndarray) -> str:
    """sha256 of one split's content (a table's rows, or an array's bytes): the identity
    of the data a model was measured on, the same on any machine."""
    if isinstance(data, pd.DataFrame):
        raw = pd.util.hash_pandas_object(data, index=False).to_numpy().tobytes()
    else:
        raw = np.ascontiguousarray(data).tobytes()
    return hashlib.sha256(raw).hexdigest()


def log_datasets(name: str, splits: dict[str, pd.DataFrame | np.ndarray], data_dir: Path,
                 dataset: str, digest: str | None = None) -> dict[str, Any]:
    """Each split as an MLflow dataset input of the active run: named `<name>-<split>`,
    with the prepared data's content digest (computed unless given) and the URL the raw
    data came from."""
    # Where the raw data came from; the prepared data itself for outputs pulled from a
    # DVC remote (no provenance), as MLflow needs a URL or a file URI.
    source = read_provenance(dataset).get("url") or Path(data_dir).resolve().as_uri()
    if "://" not in source:
        source = Path(source).resolve().as_uri()
    digest = digest or content_digest(data_dir)
    logged = {}
    for split, data in splits.items():
        split_digest = hashlib.sha256(f"{digest}:{split}".encode()).hexdigest()[:16]
        make = mlflow.data.from_pandas if isinstance(data, pd.DataFrame) else mlflow.data.from_numpy
        with warnings.catch_warnings():
            # Two of MLflow's warnings that do not apply here: a file URI matches its
            # local-source class twice, and the integer-column hint is about model inputs
            # with missing values (these tables have none).
            for message in _IGNORED_DATASET_WARNINGS:
                warnings.filterwarnings("ignore", message=message, category=UserWarning)
            logged[split] = make(data, source=source, name=f"{name}-{split}", digest=split_digest)
            mlflow.log_input(logged[split], context=CONTEXTS.get(split, split),
                             tags={"data_digest": digest})
    return logged


_IGNORED_DATASET_WARNINGS = ("The specified dataset source can be interpreted in multiple ways",
                             "Hint: Inferred schema contains integer column")


def logged_model_id(run: mlflow.ActiveRun) -> str | None:
    """The model the training run logged (None for runs that log none)."""
    found = mlflow.search_logged_models(experiment_ids=[run.info.experiment_id],
                                        filter_string=f"source_run_id = '{run.info.run_id}'",
                                        output_format="list")
    return found[0].model_id if found else None


def log_evaluation(metrics: dict, datasets: dict[str, Any], run: mlflow.ActiveRun) -> None:
    """Evaluation metrics on the training run, each `test_*`/`val_*` figure linked to the
    dataset it was measured on and to the run's logged model (MLflow 3's model view)."""
    model_id = logged_model_id(run)
    for split, group in (("test", "test_"), ("val", "val_"), (None, "")):
        part = {k: v for k, v in metrics.items() if k.startswith(group)
                and (group or not k.startswith(("test_", "val_")))}
        if part:
            mlflow.log_metrics(final_metrics(part), model_id=model_id,
                               dataset=datasets.get(split) if split else None)
