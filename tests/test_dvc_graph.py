"""The DVC graph tells the truth: every stage depends on exactly the code it runs, no
stage module imports another, and the committed dvc.lock reproduces on a fresh clone."""
from __future__ import annotations

import json

import pytest
import yaml

from tests.import_closure import ROOT, closure, imported_modules, stage_module
from tests.repo import run

STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
STAGE_MODULES = sorted(p.stem for p in (ROOT / "pipeline/stages").glob("*.py")
                       if p.name != "__init__.py")


def code_deps(stage: dict) -> set[str]:
    return {d for d in stage["deps"] if d.startswith("pipeline/")}


def stage_closure(name: str) -> set[str]:
    return closure(stage_module(STAGES[name]["cmd"]))


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_code_deps_are_its_import_closure(name):
    needed, listed = stage_closure(name), code_deps(STAGES[name])
    assert not needed - listed, (f"dvc.yaml stage {name!r} runs but does not depend on: "
                                 f"{', '.join(sorted(needed - listed))}")
    assert not listed - needed, (f"dvc.yaml stage {name!r} depends on code it never runs: "
                                 f"{', '.join(sorted(listed - needed))}")


def test_every_stage_module_is_a_stage():
    assert sorted(stage_module(s["cmd"]).rsplit(".", 1)[1] for s in STAGES.values()) == \
        STAGE_MODULES


@pytest.mark.parametrize("module", STAGE_MODULES)
def test_a_stage_module_imports_no_other_stage_module(module):
    others = {f"pipeline.stages.{m}" for m in STAGE_MODULES if m != module}
    imported = imported_modules(ROOT / "pipeline/stages" / f"{module}.py")
    assert not imported & others, f"pipeline/stages/{module}.py imports {imported & others}"


def test_the_char_model_is_no_dependency_of_the_classifier_stages():
    # The first rule's point: a change to one model's stage code does not retrain another.
    for name in ("train_sentiment", "evaluate_sentiment", "pretrain", "train_baseline"):
        assert not {"pipeline/stages/train_charlm.py",
                    "pipeline/stages/evaluate_charlm.py"} & stage_closure(name)


def test_the_import_closure_sees_function_level_and_relative_imports(tmp_path):
    # The closure the tests above rely on: `from .. import tracking` inside a function.
    assert "pipeline/tracking.py" in stage_closure("evaluate_sentiment")
    assert "pipeline/sources.py" in stage_closure("acquire_imdb")
    assert "pipeline/download.py" not in stage_closure("prepare_imdb")


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
