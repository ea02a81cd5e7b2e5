"""The logged MLflow models declare exactly what they import, pinned."""
from __future__ import annotations

from importlib.metadata import packages_distributions, version

from pipeline.serving import REQUIREMENTS, pinned_requirements
from tests.import_closure import third_party_at_import


def test_model_requirements_are_what_the_model_code_imports():
    imported = set()
    # MLflow runs the pyfunc files; their load_context and predict import the rest.
    for module in ("pipeline.pyfunc_sentiment", "pipeline.pyfunc_charlm",
                   "pipeline.inference", "pipeline.evaluation"):
        imported |= third_party_at_import(module)
    distributions = packages_distributions()

    def distribution(name: str) -> str:
        names = [d.lower() for d in distributions[name]]
        return name if name in names else names[0]
    needed = {distribution(name) for name in imported}
    assert needed == set(REQUIREMENTS)
    # Nothing the models never import (the stages' scipy, requests, dvc, sklearn).
    assert not {"scipy", "requests", "dvc", "scikit-learn", "click"} & needed


def test_model_requirements_are_pinned_to_the_installed_versions():
    pins = dict(line.split("==") for line in pinned_requirements())
    assert pins["torch"] == version("torch").split("+")[0]
    assert pins["pyyaml"] == version("PyYAML")
    assert set(pins) == set(REQUIREMENTS)
