"""Who becomes `champion` (pipeline/mlops/registry.py): only a version measured on the
same validation data by the same metric, only when better, and for the classifier only
when it beats the TF-IDF baseline on the same reviews. On a throwaway SQLite store."""
from __future__ import annotations

import mlflow
import pytest
from mlflow import MlflowClient

from pipeline.mlops.registry import CHAMPION, Evidence, promote_if_better, registered_version

NAME = "toy-classifier"
FULL, OTHER = "a" * 64, "b" * 64  # digests of two sets of validation reviews


@pytest.fixture
def client(tmp_path):
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    client = MlflowClient()
    client.create_registered_model(NAME)
    yield client
    mlflow.set_tracking_uri(None)


def new_version(client: MlflowClient) -> str:
    with mlflow.start_run() as run:
        pass
    return client.create_model_version(NAME, f"runs:/{run.info.run_id}/model",
                                       run.info.run_id).version


def accuracy(value: float, digest: str = FULL, loss: float = 0.3,
             baseline: float | None = None) -> Evidence:
    bar = None if baseline is None else Evidence("val_accuracy", baseline, "max", digest, 0.3)
    return Evidence("val_accuracy", value, "max", digest, loss, baseline=bar)


def champion(client: MlflowClient) -> str:
    return client.get_model_version_by_alias(NAME, CHAMPION).version


def test_the_first_version_is_champion_and_carries_its_evidence(client):
    v1 = new_version(client)
    assert promote_if_better(NAME, v1, accuracy(0.90, baseline=0.89))
    assert champion(client) == v1
    tags = client.get_model_version(NAME, v1).tags
    assert tags["eval_metric"] == "val_accuracy"
    assert tags["eval_data_digest"] == FULL
    assert float(tags["eval_value"]) == 0.90
    assert tags["margin_over_baseline"] == "+0.0100"


def test_a_better_version_on_the_same_data_takes_it(client):
    v1, v2 = new_version(client), new_version(client)
    promote_if_better(NAME, v1, accuracy(0.90))
    assert promote_if_better(NAME, v2, accuracy(0.91))
    assert champion(client) == v2


def test_a_worse_or_equal_version_on_the_same_data_does_not(client):
    v1, v2, v3 = new_version(client), new_version(client), new_version(client)
    promote_if_better(NAME, v1, accuracy(0.90, loss=0.30))
    assert not promote_if_better(NAME, v2, accuracy(0.89))
    assert not promote_if_better(NAME, v3, accuracy(0.90, loss=0.31))  # a tie, higher loss
    assert champion(client) == v1
    assert client.get_model_version(NAME, v2).tags["champion_decision"].startswith("not promoted")


def test_a_tie_goes_to_the_lower_validation_loss(client):
    v1, v2 = new_version(client), new_version(client)
    promote_if_better(NAME, v1, accuracy(0.90, loss=0.30))
    assert promote_if_better(NAME, v2, accuracy(0.90, loss=0.25))
    assert champion(client) == v2


def test_a_better_looking_version_on_other_validation_data_does_not(client):
    """Another seed or split, or a smoke-sized data set: not comparable, whatever it scores."""
    v1, v2 = new_version(client), new_version(client)
    promote_if_better(NAME, v1, accuracy(0.90))
    assert not promote_if_better(NAME, v2, accuracy(0.99, digest=OTHER))
    assert champion(client) == v1
    assert "other validation data" in client.get_model_version(NAME, v2).tags["champion_decision"]


def test_another_metric_is_not_comparable(client):
    v1, v2 = new_version(client), new_version(client)
    promote_if_better(NAME, v1, accuracy(0.90))
    assert not promote_if_better(NAME, v2, Evidence("val_f1", 0.95, "max", FULL))
    assert champion(client) == v1


def test_a_classifier_below_the_baseline_is_not_promoted(client):
    v1, v2 = new_version(client), new_version(client)
    assert not promote_if_better(NAME, v1, accuracy(0.88, baseline=0.89))
    with pytest.raises(mlflow.exceptions.MlflowException):
        champion(client)  # not even as the first version
    promote_if_better(NAME, v2, accuracy(0.90, baseline=0.89))
    assert champion(client) == v2


def test_a_baseline_measured_on_other_reviews_proves_nothing(client):
    v1 = new_version(client)
    bar = Evidence("val_accuracy", 0.5, "max", OTHER)
    assert not promote_if_better(NAME, v1, Evidence("val_accuracy", 0.9, "max", FULL,
                                                     baseline=bar))


def test_lower_is_better_for_a_loss(client):
    v1, v2, v3 = new_version(client), new_version(client), new_version(client)
    promote_if_better(NAME, v1, Evidence("val_loss", 1.20, "min", FULL))
    assert not promote_if_better(NAME, v2, Evidence("val_loss", 1.25, "min", FULL))
    assert promote_if_better(NAME, v3, Evidence("val_loss", 1.15, "min", FULL))
    assert champion(client) == v3


def test_a_champion_without_evidence_gives_way(client):
    """Stores from before versions carried evidence: the old alias was set on an
    incomparable figure, so the first version with evidence replaces it."""
    v1, v2 = new_version(client), new_version(client)
    client.set_registered_model_alias(NAME, CHAMPION, v1)
    assert promote_if_better(NAME, v2, accuracy(0.80))
    assert champion(client) == v2


def test_the_version_of_a_run(client):
    v1 = new_version(client)
    run_id = client.get_model_version(NAME, v1).run_id
    assert registered_version(NAME, run_id) == v1
    with mlflow.start_run() as other:
        pass
    assert registered_version(NAME, other.info.run_id) is None
