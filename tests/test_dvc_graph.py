"""The DVC graph tells the truth: every stage depends on exactly the code it runs, no
stage module imports another, the two model families share only the core, and the
committed dvc.lock reproduces on a fresh clone."""
from __future__ import annotations

import json

import pytest
import yaml

from pipeline.dvcgraph import (ROOT, closure, collapse, expand, imported_modules,
                               package_files, stage_code_deps, stage_module)
from tests.repo import run

STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
STAGE_MODULES = sorted(p.stem for p in (ROOT / "pipeline/stages").glob("*.py")
                       if p.name != "__init__.py")
SENTIMENT_STAGES = {"prepare_imdb", "pretrain", "train_sentiment", "evaluate_sentiment",
                    "train_baseline"}
CHAR_STAGES = {"prepare_gutenberg", "train_charlm", "evaluate_charlm"}
FAMILIES = ("sentiment", "charlm")


def code_deps(stage: dict) -> list[str]:
    return [d for d in stage["deps"] if d.startswith("pipeline")]


def stage_closure(name: str) -> set[str]:
    return closure(stage_module(STAGES[name]["cmd"]))


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_code_deps_are_its_import_closure(name):
    needed, listed = stage_closure(name), expand(code_deps(STAGES[name]))
    assert not needed - listed, (f"dvc.yaml stage {name!r} runs but does not depend on: "
                                 f"{', '.join(sorted(needed - listed))} "
                                 "(`python -m pipeline deps` prints the lists)")
    assert not listed - needed, (f"dvc.yaml stage {name!r} depends on code it never runs: "
                                 f"{', '.join(sorted(listed - needed))}")


def test_dvc_yaml_lists_the_deps_as_the_deps_command_prints_them():
    # A folder where the stage runs every file in it, the files otherwise: short lists.
    printed = stage_code_deps()
    assert {name: sorted(code_deps(stage)) for name, stage in STAGES.items()} == printed


def test_a_folder_stands_for_its_files_only_when_all_are_run(tmp_path):
    acquire = package_files("pipeline/acquire")
    assert collapse(acquire | {"pipeline/core/errors.py"}) == ["pipeline/acquire",
                                                               "pipeline/core/errors.py"]
    some = set(sorted(acquire)[:-1])
    assert collapse(some) == sorted(some)
    assert expand(["pipeline/acquire", "pipeline/core/errors.py"]) == acquire | {
        "pipeline/core/errors.py"}


def test_every_stage_module_is_a_stage():
    assert sorted(stage_module(s["cmd"]).rsplit(".", 1)[1] for s in STAGES.values()) == \
        STAGE_MODULES


@pytest.mark.parametrize("module", STAGE_MODULES)
def test_a_stage_module_imports_no_other_stage_module(module):
    others = {f"pipeline.stages.{m}" for m in STAGE_MODULES if m != module}
    imported = imported_modules(ROOT / "pipeline/stages" / f"{module}.py")
    assert not imported & others, f"pipeline/stages/{module}.py imports {imported & others}"


@pytest.mark.parametrize("family", FAMILIES)
def test_no_module_of_one_family_imports_the_other(family):
    other = next(f for f in FAMILIES if f != family)
    for path in sorted((ROOT / "pipeline" / family).glob("*.py")):
        imported = imported_modules(path)
        assert not {m for m in imported if m.startswith(f"pipeline.{other}")}, (
            f"{path.relative_to(ROOT)} imports from pipeline.{other}")


def test_each_familys_stages_run_none_of_the_other_familys_code():
    # The point of the two rooms: editing one model retrains only that model.
    for name in SENTIMENT_STAGES:
        assert not {f for f in stage_closure(name) if f.startswith("pipeline/charlm/")}, name
    for name in CHAR_STAGES:
        assert not {f for f in stage_closure(name) if f.startswith("pipeline/sentiment/")}, name


def test_the_core_and_the_training_loop_import_no_family():
    for folder in ("core", "training", "acquire"):
        for path in sorted((ROOT / "pipeline" / folder).glob("*.py")):
            imported = imported_modules(path)
            assert not {m for m in imported
                        if m.startswith(("pipeline.sentiment", "pipeline.charlm",
                                         "pipeline.baseline", "pipeline.stages"))}, path


def test_the_baseline_stage_runs_no_torch():
    # scikit-learn alone: TF-IDF needs no deep-learning library, and editing the LSTM's
    # code must not retrain it.
    for path in sorted(stage_closure("train_baseline")):
        imported = imported_modules(ROOT / path)
        assert not {m for m in imported if m == "torch" or m.startswith("torch.")}, path
    assert not {f for f in stage_closure("train_baseline")
                if f.startswith(("pipeline/training/", "pipeline/sentiment/model"))}


def test_the_import_closure_sees_relative_imports_and_named_model_code():
    assert "pipeline/mlops/tracking.py" in stage_closure("evaluate_sentiment")
    assert "pipeline/acquire/sources.py" in stage_closure("acquire_imdb")
    assert "pipeline/acquire/download.py" not in stage_closure("prepare_imdb")
    # The file an MLflow model is logged from is code the training stage depends on.
    assert "pipeline/charlm/mlflow_model.py" in stage_closure("train_charlm")


def test_the_import_closure_sees_function_level_imports(tmp_path, monkeypatch):
    module = ROOT / "pipeline" / "cli.py"
    assert "pipeline.sentiment.predict" in imported_modules(module)  # inside `predict`
    assert "pipeline.sentiment.predict" not in imported_modules(module, top_level_only=True)


@pytest.mark.slow
def test_committed_lock_reproduces_on_a_fresh_clone(tmp_path):
    """What a new user sees: `dvc status` lists nothing but outputs missing from the
    cache. No changed params, no changed code, no changed command."""
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(ROOT), str(clone)], tmp_path)
    status = json.loads(run(["dvc", "status", "--json"], clone).stdout or "{}")
    stale = {}
    for stage, changes in status.items():
        for change in changes:
            if not isinstance(change, dict):  # "changed command", "always changed"
                stale.setdefault(stage, []).append(change)
                continue
            for kind, entries in change.items():
                for path, what in entries.items():
                    # A missing upstream output reads "deleted"; anything else is stale.
                    if what not in ("deleted", "not in cache") or path == "params.yaml":
                        stale.setdefault(stage, []).append(f"{kind}: {path}: {what}")
    assert not stale, f"dvc status on a fresh clone of {ROOT}: {stale}"
