"""The logged MLflow models declare exactly what they import, pinned."""
from __future__ import annotations

from importlib.metadata import packages_distributions, version

import pytest

from pipeline.charlm import serving as charlm_serving
from pipeline.mlops.registry import pinned
from pipeline.dvcgraph import third_party_at_import
from pipeline.sentiment import serving as sentiment_serving

FAMILIES = {"sentiment": sentiment_serving, "charlm": charlm_serving}


def _distribution(name: str) -> str:
    names = [d.lower() for d in packages_distributions()[name]]
    return name if name in names else names[0]


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_model_requirements_are_what_the_model_code_imports(family):
    # MLflow runs the model's file; everything it serves with is imported from there.
    imported = third_party_at_import(f"pipeline.{family}.mlflow_model")
    needed = {_distribution(name) for name in imported}
    assert needed == set(FAMILIES[family].REQUIREMENTS)
    # Nothing the models never import (the stages' scipy, requests, dvc, sklearn).
    assert not {"scipy", "requests", "dvc", "scikit-learn", "click", "matplotlib"} & needed


def test_model_requirements_are_pinned_to_the_installed_versions():
    pins = dict(line.split("==") for line in pinned(sentiment_serving.REQUIREMENTS))
    assert pins["torch"] == version("torch").split("+")[0]
    assert pins["pyyaml"] == version("PyYAML")
    assert set(pins) == set(sentiment_serving.REQUIREMENTS)
