"""MLflow datasets as the stages log them (pipeline/tracking.py), on a throwaway SQLite store."""
from __future__ import annotations

import warnings

import mlflow
import numpy as np
import pandas as pd
import pytest

from pipeline.mlops import tracking


@pytest.fixture
def store(tmp_path, monkeypatch):
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    # No provenance: the source is the prepared data's own file URI, the case in which
    # MLflow warns that the URI matches its local-source class twice.
    monkeypatch.setattr(tracking, "read_provenance", lambda dataset: {})
    data = tmp_path / "prepared"
    data.mkdir()
    (data / "tokens.npy").write_bytes(b"some tokens")
    yield data
    mlflow.set_tracking_uri(None)


SPLITS = {"train": pd.DataFrame({"id": [1, 2, 3], "label": [0, 1, 1]}),
          "val": np.arange(5, dtype=np.int64)}


def test_datasets_are_logged_with_the_content_digest_and_no_warnings(store):
    with warnings.catch_warnings(record=True) as caught, mlflow.start_run() as run:
        warnings.simplefilter("always")
        logged = tracking.log_datasets("toy", SPLITS, store, "toy")
    assert [str(w.message)[:60] for w in caught if issubclass(w.category, UserWarning)] == []
    inputs = mlflow.get_run(run.info.run_id).inputs.dataset_inputs
    digest = tracking.content_digest(store)
    assert {d.dataset.name for d in inputs} == {"toy-train", "toy-val"}
    assert {t.value for d in inputs for t in d.tags if t.key == "data_digest"} == {digest}
    assert {d.dataset.source for d in inputs} == {f'{{"uri": "{store.resolve().as_uri()}"}}'}
    assert set(logged) == {"train", "val"}


def test_a_given_digest_is_used_as_is(store, monkeypatch):
    monkeypatch.setattr(tracking, "content_digest", lambda d: pytest.fail("digest recomputed"))
    with mlflow.start_run() as run:
        tracking.log_datasets("toy", SPLITS, store, "toy", digest="f" * 64)
    inputs = mlflow.get_run(run.info.run_id).inputs.dataset_inputs
    assert {t.value for d in inputs for t in d.tags if t.key == "data_digest"} == {"f" * 64}


def test_other_warnings_still_reach_the_user(store, monkeypatch):
    real = mlflow.data.from_numpy

    def noisy(*args, **kwargs):
        warnings.warn("something else is wrong", UserWarning)
        return real(*args, **kwargs)
    monkeypatch.setattr(mlflow.data, "from_numpy", noisy)
    with mlflow.start_run(), pytest.warns(UserWarning, match="something else is wrong"):
        tracking.log_datasets("toy", {"val": SPLITS["val"]}, store, "toy")
